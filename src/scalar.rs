//! The element types sepconv computes in.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The element types sepconv computes in: `f32` and `f64`.
///
/// Sealed (only this crate implements it), so that kernels can be chosen per
/// type; f16/bf16 can be added later without breaking the API. It implies
/// [`num_traits::Float`] and [`num_traits::FromPrimitive`], so ndarray's
/// numeric methods work in generic code:
///
/// ```
/// use ndarray::{Array4, Axis};
/// fn channel_means<F: sepconv::Float>(x: &Array4<F>) -> Option<ndarray::Array1<F>> {
///     x.mean_axis(Axis(0))?.mean_axis(Axis(0))?.mean_axis(Axis(0))
/// }
/// assert_eq!(channel_means(&Array4::<f32>::ones((1, 2, 2, 3))).unwrap().to_vec(), [1.0; 3]);
/// ```
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + Sum
    + AddAssign
    + MulAssign
    + DivAssign
    + sealed::Sealed
    + 'static
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Converts from f64, rounding to nearest.
    fn from_f64_lossy(x: f64) -> Self;
    /// Converts to f64 (exact).
    fn to_f64_exact(self) -> f64;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn from_f64_lossy(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn to_f64_exact(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    #[inline]
    fn from_f64_lossy(x: f64) -> Self {
        x
    }
    #[inline]
    fn to_f64_exact(self) -> f64 {
        self
    }
}
