#![deny(unsafe_code)]
#![warn(missing_docs)]
//! sepconv (crate docs come with the layers).

pub mod activation;
pub mod conv;
pub mod cost;
pub mod error;
pub mod geometry;
#[cfg(feature = "tf")]
pub mod io;
mod kernels;
pub mod layout;
pub mod mobilenet;
pub mod norm;
mod parallel;
pub mod preprocess;
pub mod reference;

pub use activation::Activation;
pub use conv::{
    Algorithm, Conv2d, Conv2dBuilder, DepthwiseConv2d, DepthwiseConv2dBuilder, PointwiseConv2d,
    SeparableConv2d, SeparableConv2dBuilder,
};
pub use cost::{Cost, Params};
pub use error::{Error, Result, Shape};
pub use geometry::{ConvGeometry, ConvParams, Padding, Size2};
pub use norm::BatchNorm;

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign};

/// The element types sepconv computes in: `f32` and `f64`.
///
/// Sealed (only this crate implements it), so that kernels can be specialised
/// per type; f16/bf16 can be added later without breaking the API.
pub trait Float:
    num_traits::Float
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
    + kernels::Scalar
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
