//! Direct (im2col-free) convolution for few input channels, NHWC.
//!
//! MobileNet's first layer has 3 input channels: its im2col patch rows are
//! 27 values long, gathered from 9 runs of 3, and building them cost more
//! than the GEMM that reads them. A direct kernel reads the input pixels
//! where they lie instead. Only the AVX2+FMA f32 build exists
//! ([`super::conv_f32`]); other types and CPUs keep im2col + GEMM.

use crate::Float;

use crate::activation::Activation;
use crate::geometry::ConvGeometry;

/// The largest input channel count the direct kernel takes.
pub(crate) const MAX_CHANNELS: usize = 4;

/// An ungrouped convolution over a contiguous NHWC input.
pub(crate) struct DirectConv<'a, F> {
    /// Input, standard layout `[N, H, W, C_in]`.
    pub(crate) x: &'a [F],
    /// Weight `[kh·kw·C_in, C_out]` (the crate's HWIO, flattened).
    pub(crate) weight: &'a [F],
    /// Bias `[C_out]`.
    pub(crate) bias: Option<&'a [F]>,
    /// Input channels (at most [`MAX_CHANNELS`]).
    pub(crate) cin: usize,
    /// Output channels.
    pub(crate) cout: usize,
    /// Resolved geometry.
    pub(crate) geometry: ConvGeometry,
    /// Fused activation.
    pub(crate) activation: Activation,
}

/// The instruction set the direct kernel is planned for (its CPU token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DirectIsa {
    /// The AVX2+FMA build: 6 pixels × 16 channels in 12 ymm registers.
    Avx2(super::Avx2Fma),
    /// The AVX-512F build: 6 pixels × 32 channels in 12 zmm registers.
    Avx512(super::Avx512F),
}

impl<F: Float> DirectConv<'_, F> {
    /// Output rows `first_row..` with the f32 kernel built for `isa`. Planned
    /// only for f32 with at most [`MAX_CHANNELS`] input channels.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn rows(
        &self,
        isa: DirectIsa,
        first_row: usize,
        out: ndarray::ArrayViewMut2<'_, F>,
    ) {
        use super::cast;
        match (
            cast::slice::<F, f32>(self.x),
            cast::slice::<F, f32>(self.weight),
            cast::view2_mut::<F, f32>(out),
        ) {
            (Some(x), Some(weight), Ok(out)) => {
                let p = DirectConv {
                    x,
                    weight,
                    bias: self.bias.map(|b| cast::slice(b).expect("F is f32")),
                    cin: self.cin,
                    cout: self.cout,
                    geometry: self.geometry,
                    activation: self.activation,
                };
                match isa {
                    DirectIsa::Avx2(cpu) => super::conv_f32::rows(cpu, &p, first_row, out),
                    DirectIsa::Avx512(cpu) => super::conv_f32::rows(cpu, &p, first_row, out),
                }
            }
            _ => unreachable!("the direct kernel is planned for f32 only"),
        }
    }
}
