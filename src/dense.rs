//! The dense (fully connected) layer, on the pointwise convolution's GEMM.
//!
//! ```
//! use ndarray::{Array1, Array2, Array4};
//! use sepconv::{Dense, Layer};
//! // [N, 1, 1, 3] → [N, 1, 1, 2]: y = x·W + b.
//! let dense = Dense::new(Array2::from_shape_vec((3, 2), vec![1.0_f32, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap(), Some(Array1::from(vec![0.5, -0.5])))?;
//! let x = Array4::from_shape_vec((1, 1, 1, 3), vec![1.0, 2.0, 3.0]).unwrap();
//! assert_eq!(dense.forward(x.view())?.into_raw_vec_and_offset().0, [4.5, 4.5]);
//! # Ok::<(), sepconv::Error>(())
//! ```

use ndarray::{Array1, Array2, ArrayView2, ArrayView4, ArrayViewMut4};

use crate::Float;
use crate::activation::Activation;
use crate::conv::{Algorithm, PointwiseConv2d};
use crate::cost::{self, Cost};
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerInfo, check_scratch, checked_len};

/// A dense (fully connected) layer: `y[n, :] = act(flatten(x[n]) · W + b)`.
///
/// The input image is flattened in NHWC order (feature `(y·W + x)·C + c` is
/// `x[n, y, x, c]`), as Keras' `Flatten` then `Dense` on channels-last data,
/// so an input `[N, 1, 1, C]` (after [`GlobalAvgPool`](crate::pool::GlobalAvgPool))
/// is used as it is. It runs as a [`PointwiseConv2d`] on the input seen as
/// `[N, 1, 1, H·W·C]`: the same GEMM (packed weights, fused bias and
/// activation). When an input view cannot be seen that way without a copy
/// (its images are not contiguous), it is copied into the scratch first.
///
/// # Shapes
/// weight `[in_features, out_features]`, bias `[out_features]`, input
/// `[N, H, W, C]` with `H·W·C = in_features` (any layout), output
/// `[N, 1, 1, out_features]` (any layout).
///
/// # Errors
/// [`Dense::new`]: [`Error::ZeroSize`] for an empty weight,
/// [`Error::ShapeMismatch`] for a bias of the wrong length. The [`Layer`]
/// methods: [`Error::ZeroSize`] for an input with a zero-sized axis,
/// [`Error::ChannelMismatch`] (`"Dense input (H·W·C)"`, with both counts) when
/// `H·W·C ≠ in_features`, [`Error::ShapeMismatch`] for a wrong `out` or a
/// short scratch (`out` is left untouched).
///
/// ```
/// use ndarray::{array, Array4};
/// use sepconv::{Activation, Layer};
/// use sepconv::dense::Dense;
/// // 2 features in, 3 out.
/// let fc = Dense::new(array![[1.0_f32, 0.0, -1.0], [2.0, 1.0, 0.0]], Some(array![0.5, 0.0, 0.0]))?
///     .with_activation(Activation::Relu);
/// let x = Array4::from_shape_vec((1, 1, 2, 1), vec![1.0, 3.0]).unwrap(); // H·W·C = 2
/// let y = fc.forward(x.view())?;
/// assert_eq!(y.shape(), &[1, 1, 1, 3]);
/// assert_eq!(y.into_raw_vec_and_offset().0, [7.5, 3.0, 0.0]);
/// assert_eq!(fc.cost([1, 1, 2, 1])?.mult_adds, 6);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<F: Float> {
    pw: PointwiseConv2d<F>,
}

impl<F: Float> Dense<F> {
    /// A dense layer with weight `[in_features, out_features]` and an
    /// optional bias `[out_features]`; no activation, [`Algorithm::Auto`].
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an empty weight, [`Error::ShapeMismatch`] for a
    /// bias whose length is not `out_features`.
    pub fn new(weight: Array2<F>, bias: Option<Array1<F>>) -> Result<Self> {
        if weight.is_empty() {
            return Err(Error::ZeroSize {
                what: "Dense weight".into(),
                shape: weight.shape().into(),
            });
        }
        if let Some(b) = &bias
            && b.len() != weight.ncols()
        {
            return Err(Error::shape("Dense bias", &[weight.ncols()], b.shape()));
        }
        Ok(Dense {
            pw: PointwiseConv2d::new(weight, bias)?,
        })
    }

    /// Sets the activation fused into the output (default identity).
    pub fn with_activation(self, activation: Activation) -> Self {
        Dense {
            pw: self.pw.with_activation(activation),
        }
    }

    /// Forces an implementation (default [`Algorithm::Auto`]).
    pub fn with_algorithm(self, algorithm: Algorithm) -> Self {
        Dense {
            pw: self.pw.with_algorithm(algorithm),
        }
    }

    /// The weight `[in_features, out_features]`.
    pub fn weight(&self) -> ArrayView2<'_, F> {
        self.pw.weight()
    }
    /// The bias `[out_features]`, if any.
    pub fn bias(&self) -> Option<&Array1<F>> {
        self.pw.bias()
    }
    /// Input features, `H·W·C` of the input.
    pub fn in_features(&self) -> usize {
        self.pw.in_channels()
    }
    /// Output features.
    pub fn out_features(&self) -> usize {
        self.pw.out_channels()
    }
    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.pw.activation()
    }

    /// The input seen as one row of features per image, `[N, 1, 1, H·W·C]`.
    fn flat_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        if input.contains(&0) {
            return Err(Error::ZeroSize {
                what: "Dense input".into(),
                shape: input.into(),
            });
        }
        let features = checked_len("Dense input features", &input[1..])?;
        if features != self.in_features() {
            return Err(Error::ChannelMismatch {
                what: "Dense input (H·W·C)".into(),
                expected: self.in_features(),
                got: features,
            });
        }
        Ok([input[0], 1, 1, features])
    }

    /// Elements of scratch for the copy of a non-contiguous input.
    fn copy_len(&self, input: [usize; 4]) -> Result<usize> {
        checked_len("Dense input copy", &self.flat_shape(input)?)
    }
}

impl<F: Float> Layer<F> for Dense<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        let [n, ..] = self.flat_shape(input)?;
        Ok([n, 1, 1, self.out_features()])
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let [n, ..] = self.flat_shape(input)?;
        cost::fully_connected(
            n,
            self.in_features(),
            self.out_features(),
            self.bias().is_some(),
        )
    }

    fn info(&self) -> LayerInfo {
        LayerInfo::new("Dense").with_filter(format!(
            "{}×{}",
            self.in_features(),
            self.out_features()
        ))
    }

    /// `N·H·W·C` for a copy of the input (used only when the input view's
    /// images are not contiguous), plus what the pointwise GEMM needs.
    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        let flat = self.flat_shape(input)?;
        self.copy_len(input)?
            .checked_add(Layer::<F>::scratch_len(&self.pw, flat)?)
            .ok_or(Error::Overflow("Dense scratch"))
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let input = crate::conv::dims4(x.shape());
        let flat = self.flat_shape(input)?;
        let shape = [flat[0], 1, 1, self.out_features()];
        if out.shape() != shape {
            return Err(Error::shape("Dense output", &shape, out.shape()));
        }
        check_scratch("Dense", scratch.len(), self.scratch_len(input)?)?;
        let (copy, pw_scratch) = scratch.split_at_mut(self.copy_len(input)?);
        let xf = match x.into_shape_with_order(flat) {
            Ok(v) => v,
            Err(_) => {
                // Not reshapeable in place: copy in logical (NHWC) order.
                for (d, &v) in copy.iter_mut().zip(x.iter()) {
                    *d = v;
                }
                ArrayView4::from_shape(flat, &*copy).expect("the copy has the flat shape")
            }
        };
        Layer::<F>::forward_with_scratch(&self.pw, xf, out, pw_scratch)
    }

    fn set_algorithm(&mut self, algorithm: Algorithm) {
        Layer::<F>::set_algorithm(&mut self.pw, algorithm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, array, s};

    #[test]
    fn flattens_in_nhwc_order_and_copies_strided_inputs() {
        // weight row r picks out feature r as output r.
        let fc = Dense::<f64>::new(Array2::eye(8), None).unwrap();
        let x = Array4::from_shape_fn((2, 2, 2, 2), |(n, y, x, c)| {
            (1000 * n + 100 * y + 10 * x + c) as f64
        });
        let y = fc.forward(x.view()).unwrap();
        assert_eq!(
            y.slice(s![0, 0, 0, ..]).to_vec(),
            [0.0, 1.0, 10.0, 11.0, 100.0, 101.0, 110.0, 111.0]
        );
        // Columns reversed: not reshapeable, goes through the scratch copy.
        let flipped = x.slice(s![.., .., ..;-1, ..]);
        let y = fc.forward(flipped).unwrap();
        assert_eq!(
            y.slice(s![1, 0, 0, ..]).to_vec(),
            [
                1010.0, 1011.0, 1000.0, 1001.0, 1110.0, 1111.0, 1100.0, 1101.0
            ]
        );
        assert!(Layer::<f64>::scratch_len(&fc, [2, 2, 2, 2]).unwrap() >= 16);
    }

    #[test]
    fn info_and_errors() {
        let fc = Dense::<f32>::new(Array2::ones((6, 4)), Some(Array1::zeros(4))).unwrap();
        assert_eq!(fc.info().filter.as_deref(), Some("6×4"));
        assert_eq!(fc.info().kind, "Dense");
        assert_eq!(
            fc.output_shape([3, 1, 2, 4]).unwrap_err(),
            Error::ChannelMismatch {
                what: "Dense input (H·W·C)".into(),
                expected: 6,
                got: 8
            }
        );
        assert_eq!(
            Dense::<f32>::new(Array2::ones((6, 4)), Some(array![1.0])).unwrap_err(),
            Error::shape("Dense bias", &[4], &[1])
        );
    }
}
