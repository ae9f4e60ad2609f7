//! Direct (im2col-free) convolution for few input channels, NHWC.
//!
//! MobileNet's first layer has 3 input channels: its im2col patch rows are
//! 27 values long, gathered from 9 runs of 3, and building them cost more
//! than the GEMM that reads them. A direct kernel reads the input pixels
//! where they lie instead. Only the AVX2+FMA f32 build exists
//! ([`super::conv_f32`]); other types and CPUs keep im2col + GEMM.

use crate::activation::Activation;
use crate::geometry::ConvGeometry;

/// The largest input channel count the direct kernel takes.
pub(crate) const MAX_CHANNELS: usize = 4;

/// An ungrouped convolution over a contiguous NHWC input. (`pub` only
/// because the sealed [`Scalar`](super::Scalar) trait names it; this module
/// is private to the crate.)
pub struct DirectConv<'a, F> {
    /// Input, standard layout `[N, H, W, C_in]`.
    pub x: &'a [F],
    /// Weight `[kh·kw·C_in, C_out]` (the crate's HWIO, flattened).
    pub weight: &'a [F],
    /// Bias `[C_out]`.
    pub bias: Option<&'a [F]>,
    /// Input channels (at most [`MAX_CHANNELS`]).
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Resolved geometry.
    pub geometry: ConvGeometry,
    /// Fused activation.
    pub activation: Activation,
}
