//! Element-wise activations, fused into a conv's output by every layer.

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
