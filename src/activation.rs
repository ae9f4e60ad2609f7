//! Element-wise activations, fused into a conv's output by every layer.
//!
//! ```
//! use sepconv::Activation;
//! let mut xs = [-1.0_f32, 0.5, 9.0];
//! Activation::Relu6.apply_slice(&mut xs);
//! assert_eq!(xs, [0.0, 0.5, 6.0]);
//! ```

use crate::Float;

/// The activation a layer applies to its output.
///
/// NaN propagates through every variant (as in PyTorch and TensorFlow).
///
/// ```
/// use sepconv::Activation;
/// assert_eq!(Activation::Relu6.apply(7.5_f32), 6.0);
/// assert_eq!(Activation::Relu.apply(-2.0_f64), 0.0);
/// assert_eq!(Activation::Identity.apply(-2.0_f64), -2.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Activation {
    /// `x` (no activation).
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`: what TF-slim's and Keras' MobileNet use.
    Relu6,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply<F: Float>(self, x: F) -> F {
        match self {
            Activation::Identity => x,
            Activation::Relu => {
                if x < F::zero() {
                    F::zero()
                } else {
                    x
                }
            }
            Activation::Relu6 => {
                let six = F::from_f64_lossy(6.0);
                if x < F::zero() {
                    F::zero()
                } else if x > six {
                    six
                } else {
                    x
                }
            }
        }
    }

    /// Applies the activation in place to a slice.
    #[inline]
    pub fn apply_slice<F: Float>(self, xs: &mut [F]) {
        if self != Activation::Identity {
            xs.iter_mut().for_each(|x| *x = self.apply(*x));
        }
    }

    /// Whether this is `Identity`.
    pub fn is_identity(self) -> bool {
        self == Activation::Identity
    }
}

/// A standalone activation layer: `[N, H, W, C]` → the same shape, each
/// element mapped (no mult-adds, no parameters). Convs and dense layers fuse
/// their activation instead; this is for the places nothing precedes it.
///
/// ```
/// use ndarray::Array4;
/// use sepconv::{Activation, Layer};
/// let y = Layer::<f32>::forward(&Activation::Relu6, Array4::from_elem((1, 1, 2, 1), 7.0).view())?;
/// assert_eq!(y.into_raw_vec_and_offset().0, [6.0, 6.0]);
/// # Ok::<(), sepconv::Error>(())
/// ```
impl<F: Float> crate::Layer<F> for Activation {
    fn output_shape(&self, input: [usize; 4]) -> crate::Result<[usize; 4]> {
        if input.contains(&0) {
            return Err(crate::Error::ZeroSize {
                what: "Activation input".into(),
                shape: input.into(),
            });
        }
        Ok(input)
    }

    fn cost(&self, input: [usize; 4]) -> crate::Result<crate::Cost> {
        crate::Layer::<F>::output_shape(self, input)?;
        Ok(crate::Cost::default())
    }

    fn info(&self) -> crate::LayerInfo {
        crate::LayerInfo::new(match self {
            Activation::Identity => "Identity",
            Activation::Relu => "ReLU",
            Activation::Relu6 => "ReLU6",
        })
    }

    fn forward_with_scratch(
        &self,
        x: ndarray::ArrayView4<'_, F>,
        mut out: ndarray::ArrayViewMut4<'_, F>,
        _scratch: &mut [F],
    ) -> crate::Result<()> {
        let shape = crate::Layer::<F>::output_shape(self, crate::conv::dims4(x.shape()))?;
        crate::conv::check_output("Activation output", out.shape(), shape)?;
        ndarray::Zip::from(&mut out)
            .and(&x)
            .for_each(|o, &v| *o = self.apply(v));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu6_clamps_both_sides_and_keeps_nan() {
        let mut v = [
            -1.0f32,
            0.0,
            3.5,
            6.0,
            6.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        Activation::Relu6.apply_slice(&mut v);
        assert_eq!(v, [0.0, 0.0, 3.5, 6.0, 6.0, 6.0, 0.0]);
        assert!(Activation::Relu6.apply(f32::NAN).is_nan());
        assert!(Activation::Relu.apply(f64::NAN).is_nan());
        let mut v = [-1.0f64, 0.5, 100.0];
        Activation::Relu.apply_slice(&mut v);
        assert_eq!(v, [0.0, 0.5, 100.0]);
    }
}
