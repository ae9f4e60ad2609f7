//! Pointwise (1×1) convolution: one GEMM over the input buffer as it lies.

use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayView4, ArrayViewMut2, ArrayViewMut4, s};

use super::{
    Algorithm, bias_activation, check_bias, check_input, check_output, check_weight, contiguous,
    with_standard_output,
};
use crate::activation::Activation;
use crate::cost::{self, Cost};
use crate::error::Result;
use crate::norm::BatchNorm;
use crate::parallel::{chunk_rows, for_each_row_chunk};
use crate::{Float, reference};

/// A pointwise (1×1, stride 1) convolution: `y[n, y, x, :] = act(x[n, y, x, :] · W + b)`.
///
/// The input `[N, H, W, C_in]` is read as the matrix `(N·H·W) × C_in` with its
/// own strides (no im2col, no copy) and multiplied by `W` through
/// matrixmultiply; when the view's axes cannot be merged (e.g. a column-strided
/// slice) it runs one GEMM per image row instead, still without copying.
///
/// # Shapes
/// weight `[C_in, C_out]`, bias `[C_out]`, input `[N, H, W, C_in]`, output
/// `[N, H, W, C_out]`.
///
/// ```
/// use ndarray::{array, Array4};
/// use sepconv::PointwiseConv2d;
/// let pw = PointwiseConv2d::new(array![[1.0, 2.0], [3.0, 4.0]], Some(array![0.5, 0.0]))?;
/// let x = Array4::from_shape_vec((1, 1, 1, 2), vec![1.0, 1.0]).unwrap();
/// assert_eq!(pw.forward(x.view())?.into_raw_vec_and_offset().0, vec![4.5, 6.0]);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PointwiseConv2d<F: Float> {
    weight: Array2<F>,
    bias: Option<Array1<F>>,
    activation: Activation,
    algorithm: Algorithm,
    /// Weight and bias packed for the fast GEMM, when this type and CPU have one.
    packed: Option<F::Packed>,
}

impl<F: Float> PointwiseConv2d<F> {
    /// A pointwise conv with weight `[C_in, C_out]` and an optional bias `[C_out]`.
    ///
    /// # Errors
    /// [`Error::ZeroSize`](crate::Error::ZeroSize) for an empty weight,
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) for a bias of the wrong length.
    pub fn new(weight: Array2<F>, bias: Option<Array1<F>>) -> Result<Self> {
        check_weight("PointwiseConv2d weight", weight.shape())?;
        check_bias(
            "PointwiseConv2d bias",
            bias.as_ref().map(|b| b.len()),
            weight.ncols(),
        )?;
        let weight = weight.as_standard_layout().into_owned();
        let bias = contiguous(bias);
        Ok(PointwiseConv2d {
            packed: F::pack(weight.view(), bias.as_ref().and_then(|b| b.as_slice())),
            weight,
            bias,
            activation: Activation::Identity,
            algorithm: Algorithm::Auto,
        })
    }

    /// Sets the fused activation.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Forces an implementation.
    pub fn with_algorithm(mut self, a: Algorithm) -> Self {
        self.algorithm = a;
        self
    }

    /// The weight `[C_in, C_out]`.
    pub fn weight(&self) -> ArrayView2<'_, F> {
        self.weight.view()
    }
    /// The bias `[C_out]`, if any.
    pub fn bias(&self) -> Option<&Array1<F>> {
        self.bias.as_ref()
    }
    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.nrows()
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.ncols()
    }

    /// The output shape for an input of shape `[N, H, W, C_in]`.
    ///
    /// # Errors
    /// [`Error::ZeroSize`](crate::Error::ZeroSize),
    /// [`Error::ChannelMismatch`](crate::Error::ChannelMismatch).
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_input("PointwiseConv2d input", &input, self.in_channels())?;
        Ok([input[0], input[1], input[2], self.out_channels()])
    }

    /// Mult-adds and parameters for an input of shape `input` (whole batch).
    ///
    /// # Errors
    /// As [`output_shape`](Self::output_shape).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let [n, h, w, _] = self.output_shape(input)?;
        cost::pointwise(
            [n, h, w],
            self.in_channels(),
            self.out_channels(),
            self.bias.is_some(),
        )
    }

    /// This layer with `bn` folded in: weight columns scaled by γ/√(var+ε),
    /// bias `scale·b + β − mean·scale`.
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`](crate::Error::ChannelMismatch) if `bn` does
    /// not have `C_out` channels.
    pub fn fold_batch_norm(&self, bn: &BatchNorm<F>) -> Result<Self> {
        bn.check_channels("PointwiseConv2d", self.out_channels())?;
        let mut weight = self.weight.clone();
        let bias = bn.fold_into(weight.view_mut(), self.bias.as_ref());
        Ok(PointwiseConv2d::new(weight, Some(bias))?
            .with_activation(self.activation)
            .with_algorithm(self.algorithm))
    }

    /// Runs the layer.
    ///
    /// # Errors
    /// As [`output_shape`](Self::output_shape).
    pub fn forward(&self, x: ArrayView4<'_, F>) -> Result<Array4<F>> {
        let shape = self.output_shape(super::dims4(x.shape()))?;
        let algorithm = self.algorithm.resolve()?;
        let mut out = Array4::zeros(shape);
        self.run(x, out.view_mut(), algorithm);
        Ok(out)
    }

    /// Runs the layer into `out` (any layout), which must have the output shape.
    ///
    /// # Errors
    /// As [`output_shape`](Self::output_shape), and
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) for a wrong `out`;
    /// `out` is untouched on error.
    pub fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        let shape = self.output_shape(super::dims4(x.shape()))?;
        check_output("PointwiseConv2d output", out.shape(), shape)?;
        let algorithm = self.algorithm.resolve()?;
        self.run(x, out, algorithm);
        Ok(())
    }

    fn run(&self, x: ArrayView4<'_, F>, mut out: ArrayViewMut4<'_, F>, algorithm: Algorithm) {
        if algorithm == Algorithm::Reference {
            let y = reference::pointwise_conv2d(
                x,
                self.weight.view(),
                self.bias.as_ref().map(|b| b.view()),
            )
            .expect("validated");
            out.assign(&y);
            out.map_inplace(|v| *v = self.activation.apply(*v));
            return;
        }
        with_standard_output(out, |out| {
            let [n, h, w, _] = super::dims4(out.shape());
            let rows = out
                .into_shape_with_order((n * h * w, self.out_channels()))
                .expect("standard layout");
            let packed = self
                .packed
                .as_ref()
                .filter(|_| algorithm == Algorithm::Avx2Fma);
            gemm_nhwc(
                x,
                self.weight.view(),
                packed,
                rows,
                self.bias.as_ref(),
                self.activation,
            );
        });
    }
}

/// `out = act(x · w + bias)` with `x` an NHWC view read as `(N·H·W) × C_in`
/// in place, `out` the standard-layout `(N·H·W) × C_out` rows; split over
/// threads by rows. With `packed` (the same weight and bias, packed) the fast
/// kernel tries first and hands back the cases it does not take.
pub(crate) fn gemm_nhwc<F: Float>(
    x: ArrayView4<'_, F>,
    w: ArrayView2<'_, F>,
    packed: Option<&F::Packed>,
    mut out: ArrayViewMut2<'_, F>,
    bias: Option<&Array1<F>>,
    act: Activation,
) {
    let [n, h, wd, c] = super::dims4(x.shape());
    let m = n * h * wd;
    let merged = x.into_shape_with_order((m, c)).ok();
    if let (Some(p), Some(x2)) = (packed, &merged)
        && F::gemm_packed(x2.view(), p, out.view_mut(), act, true)
    {
        return;
    }
    let align = if merged.is_some() { 8 } else { wd };
    for_each_row_chunk(out, chunk_rows(m, 1, align), |r0, mut oc| {
        match &merged {
            Some(x2) => F::gemm(
                x2.slice(s![r0..r0 + oc.nrows(), ..]),
                w,
                F::zero(),
                oc.view_mut(),
            ),
            None => {
                // One GEMM per image row; chunks hold whole rows.
                for (i, start) in (r0..r0 + oc.nrows()).step_by(wd).enumerate() {
                    let (b, y) = (start / (h * wd), (start / wd) % h);
                    F::gemm(
                        x.slice(s![b, y, .., ..]),
                        w,
                        F::zero(),
                        oc.slice_mut(s![i * wd..(i + 1) * wd, ..]),
                    );
                }
            }
        }
        bias_activation(oc, bias, act);
    });
}
