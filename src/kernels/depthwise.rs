//! Depthwise convolution rows, NHWC, channels innermost.
//!
//! The driver (`conv::depthwise`) hands each call a block of whole output
//! rows. Each row starts as the bias; then for each tap (ky, kx) the kernel
//! takes the range of output columns whose input pixel is inside the image
//! ([`AxisGeometry::valid_outputs`](crate::geometry::AxisGeometry::valid_outputs))
//! and adds `x · w` over the whole contiguous channel vector of each of those
//! pixels. The border is handled by clipping ranges, so no pixel is ever
//! tested for padding, and the inner loop is a plain vector multiply-add over
//! channels.
//!
//! One generic body is compiled twice: portable (what the baseline target
//! vectorizes to), and inside an AVX2+FMA `#[target_feature]` wrapper, where
//! the same loop becomes 8-wide fused multiply-adds. f32 problems with
//! multiplier 1 are planned onto the register-blocked intrinsics kernel of
//! [`super::depthwise_f32`] instead (but for 1024, 2048, … channels at a
//! stride other than 1 in its AVX2 build, on CPUs whose L1 data cache has
//! fewer than 12 ways: see `depthwise_f32::suits`)
//! (written by hand: the compiler did not vectorize the same idea written
//! generically, about 60 instructions per output). [`DepthwiseKernel`] is
//! that choice, made once when the layer is built.

use ndarray::ArrayViewMut2;

use crate::Float;
use crate::activation::Activation;
use crate::geometry::ConvGeometry;

/// The depthwise kernels, one entry per kernel family and ISA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DepthwiseKernel {
    /// The generic body, compiled for the baseline target.
    Portable,
    /// The generic body compiled for AVX2+FMA.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2Fma(super::Avx2Fma),
    /// The register-blocked f32 intrinsics kernel (multiplier 1; see
    /// `depthwise_f32::suits`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2FmaF32(super::Avx2Fma),
    /// The same kernel body built for AVX-512F (16 channels a vector).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx512F32(super::Avx512F),
}

impl DepthwiseKernel {
    /// The kernel for `F` with `channels` × `multiplier` under `isa`, for a
    /// layer with strides other than 1 (`strided`) or not.
    pub(crate) fn plan<F: Float>(
        isa: crate::plan::Isa,
        channels: usize,
        multiplier: usize,
        strided: bool,
    ) -> Self {
        use crate::plan::Isa;
        let f32 = super::cast::same::<F, f32>();
        let blocked =
            |avx512| f32 && super::depthwise_f32_suits(channels, multiplier, avx512, strided);
        match isa {
            Isa::Avx512F(_, wide)
                if blocked(true) && !avx2_vectors_suit(channels, wide.halves_fmas()) =>
            {
                DepthwiseKernel::Avx512F32(wide)
            }
            Isa::Avx2Fma(cpu) | Isa::Avx512F(cpu, _) if blocked(false) => {
                DepthwiseKernel::Avx2FmaF32(cpu)
            }
            Isa::Avx2Fma(cpu) | Isa::Avx512F(cpu, _) => DepthwiseKernel::Avx2Fma(cpu),
            Isa::Portable | Isa::Reference => DepthwiseKernel::Portable,
        }
    }
}

/// Whether `channels` fill whole 8-lane vectors but leave the last 16-lane
/// one half empty (8, 24, 40, …), on a core that runs a 512-bit FMA as two
/// halves (`halves_fmas`, the Zen 4): there the AVX2 build of the blocked
/// kernel wastes no lane, for as many FMAs a cycle, and an AVX-512 plan
/// runs it instead. On the AMD EPYC Zen 4 (family 25, model 17; one layer
/// alone, `Algorithm::Avx2Fma` and `Avx512F` taking turns, medians of 15
/// rounds of 100 calls), AVX2 over AVX-512 at 1 and 2 threads: 64×64×8
/// 0.60× and 0.65×, 112×112×8 0.58× and 0.61× (stride 2: 0.61× and 0.87×),
/// 32×32×8 0.68× and 0.76×, 56×56×24 0.86× and 0.85×, 112×112×24 0.87×
/// and 0.70×, 28×28×40 0.96× and 0.93×. Not where the 8-lane vectors are
/// partial too: 56×56×4 1.36× and 1.27×; nor at 16 channels: 32×32×16
/// 0.99× and 1.25×.
fn avx2_vectors_suit(channels: usize, halves_fmas: bool) -> bool {
    halves_fmas && channels % 16 == 8
}

/// A depthwise problem over a contiguous NHWC input.
pub(crate) struct Depthwise<'a, F> {
    /// Input, standard layout `[N, H, W, C]`.
    pub x: &'a [F],
    /// Weight `[kh·kw, C·m]` (the crate's `[kh, kw, C, m]`, flattened).
    pub weight: &'a [F],
    /// Bias `[C·m]`.
    pub bias: Option<&'a [F]>,
    /// Input channels C.
    pub channels: usize,
    /// Channel multiplier m.
    pub multiplier: usize,
    /// Kernel [kh, kw].
    pub kernel: [usize; 2],
    /// Resolved geometry.
    pub geometry: ConvGeometry,
    /// Fused activation.
    pub activation: Activation,
}

impl<F: Float> Depthwise<'_, F> {
    /// Computes output rows `first_row..first_row + out.nrows()` of the
    /// `[N·OH, OW·C·m]` output matrix with `kernel`.
    pub(crate) fn rows(
        &self,
        kernel: DepthwiseKernel,
        first_row: usize,
        out: ArrayViewMut2<'_, F>,
    ) {
        match kernel {
            DepthwiseKernel::Portable => self.rows_body::<false>(first_row, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the token proves AVX2 and FMA exist on this CPU.
            DepthwiseKernel::Avx2Fma(_) => unsafe { self.rows_avx2(first_row, out) },
            #[cfg(target_arch = "x86_64")]
            DepthwiseKernel::Avx2FmaF32(cpu) => self.blocked_f32(cpu, first_row, out),
            #[cfg(target_arch = "x86_64")]
            DepthwiseKernel::Avx512F32(cpu) => self.blocked_f32(cpu, first_row, out),
            #[cfg(not(target_arch = "x86_64"))]
            DepthwiseKernel::Avx2Fma(_)
            | DepthwiseKernel::Avx2FmaF32(_)
            | DepthwiseKernel::Avx512F32(_) => {
                unreachable!("no SIMD token off x86-64")
            }
        }
    }

    /// The register-blocked f32 kernel built for `cpu`'s ISA.
    #[cfg(target_arch = "x86_64")]
    fn blocked_f32<T: super::depthwise_f32::RowIsa>(
        &self,
        cpu: T,
        first_row: usize,
        out: ArrayViewMut2<'_, F>,
    ) {
        // Planned only for f32: these casts are the identity.
        match (
            super::cast::slice::<F, f32>(self.x),
            super::cast::slice::<F, f32>(self.weight),
            super::cast::view2_mut::<F, f32>(out),
        ) {
            (Some(x), Some(weight), Ok(out)) => {
                let p = Depthwise {
                    x,
                    weight,
                    bias: self.bias.map(|b| super::cast::slice(b).expect("F is f32")),
                    channels: self.channels,
                    multiplier: self.multiplier,
                    kernel: self.kernel,
                    geometry: self.geometry,
                    activation: self.activation,
                };
                super::depthwise_f32::rows(cpu, &p, first_row, out);
            }
            _ => unreachable!("the f32 depthwise kernel is planned for f32 only"),
        }
    }

    /// The kernel compiled for AVX2+FMA.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows_avx2(&self, first_row: usize, out: ArrayViewMut2<'_, F>) {
        self.rows_body::<true>(first_row, out);
    }

    #[inline(always)]
    fn rows_body<const FMA: bool>(&self, first_row: usize, mut out: ArrayViewMut2<'_, F>) {
        let g = &self.geometry;
        let (c, m) = (self.channels, self.multiplier);
        let cm = c * m;
        let [kh, kw] = self.kernel;
        let (h, w) = (g.h.input, g.w.input);
        let mul_add = |a: F, x: F, w: F| if FMA { x.mul_add(w, a) } else { a + x * w };
        for (i, mut orow) in out.rows_mut().into_iter().enumerate() {
            let orow = orow.as_slice_mut().expect("output rows are contiguous");
            let (b, oy) = ((first_row + i) / g.h.output, (first_row + i) % g.h.output);
            match self.bias {
                Some(bias) => orow
                    .chunks_exact_mut(cm)
                    .for_each(|px| px.copy_from_slice(bias)),
                None => orow.fill(F::zero()),
            }
            for ky in 0..kh {
                let Some(iy) = g.h.input_index(oy, ky) else {
                    continue;
                };
                let xrow = &self.x[(b * h + iy) * w * c..][..w * c];
                for kx in 0..kw {
                    let wv = &self.weight[(ky * kw + kx) * cm..][..cm];
                    // Only the columns whose tap lands inside the image.
                    for ox in g.w.valid_outputs(kx) {
                        let ix = ox * g.w.stride + kx * g.w.dilation - g.w.pad_before;
                        let acc = &mut orow[ox * cm..][..cm];
                        let xi = &xrow[ix * c..][..c];
                        if m == 1 {
                            for ((a, &xv), &wv) in acc.iter_mut().zip(xi).zip(wv) {
                                *a = mul_add(*a, xv, wv);
                            }
                        } else {
                            for ((a, wv), &xv) in
                                acc.chunks_exact_mut(m).zip(wv.chunks_exact(m)).zip(xi)
                            {
                                for (a, &wv) in a.iter_mut().zip(wv) {
                                    *a = mul_add(*a, xv, wv);
                                }
                            }
                        }
                    }
                }
            }
            self.activation.apply_slice(orow);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::avx2_vectors_suit;

    /// Only channel counts of whole 8-lane vectors and a half-empty last
    /// 16-lane one, and only on a core that halves its 512-bit FMAs.
    #[test]
    fn which_depthwise_build_an_avx512_core_plans() {
        for c in [8, 24, 40, 72, 1000] {
            assert!(avx2_vectors_suit(c, true), "{c}");
            assert!(!avx2_vectors_suit(c, false), "{c}");
        }
        for c in [1, 4, 7, 9, 15, 16, 20, 32, 48, 144, 1024] {
            assert!(
                !avx2_vectors_suit(c, true) && !avx2_vectors_suit(c, false),
                "{c}"
            );
        }
    }
}
