//! Plans: the kernel each layer runs, chosen once when the layer is built.
//!
//! [`Algorithm`] is what the caller asks for; [`Isa`] is what it resolves to
//! on this CPU (detected once); each layer turns that into its own kernel
//! enum (a packed GEMM, a direct conv, im2col tiles, a depthwise kernel) and
//! stores it in a [`Plan`]. A forward matches on the stored plan: nothing is
//! re-decided per call or per row chunk. A new instruction set is one more
//! [`Isa`] entry and one more variant in the kernel enums that have a build
//! for it. This table is crate-private: the public [`Float`] carries none of
//! it.

use std::sync::Arc;

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use crate::Float;
use crate::activation::Activation;
use crate::conv::Algorithm;
use crate::error::{Error, Result};
use crate::kernels::{Avx2Fma, Avx512F, cast, gemm_f32};

/// The instruction set a layer's kernels are planned for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The naive oracle of [`crate::reference`].
    Reference,
    /// Portable code only.
    Portable,
    /// x86-64 AVX2 + FMA.
    Avx2Fma(Avx2Fma),
    /// x86-64 AVX-512F, with AVX2 + FMA for the kernels without an AVX-512
    /// build.
    Avx512F(Avx2Fma, Avx512F),
}

/// What `algorithm` runs on this CPU, or why it cannot.
pub(crate) fn isa(algorithm: Algorithm) -> std::result::Result<Isa, String> {
    Ok(match algorithm.resolve().map_err(|e| e.to_string())? {
        Algorithm::Reference => Isa::Reference,
        Algorithm::Avx2Fma => Isa::Avx2Fma(
            Avx2Fma::detect().ok_or("Algorithm::Avx2Fma, but this CPU lacks AVX2 or FMA")?,
        ),
        Algorithm::Avx512F => Isa::Avx512F(
            Avx2Fma::detect().ok_or("Algorithm::Avx512F, but this CPU lacks AVX2 or FMA")?,
            Avx512F::detect().ok_or("Algorithm::Avx512F, but this CPU lacks AVX-512F")?,
        ),
        _ => Isa::Portable,
    })
}

/// A layer's stored plan: the oracle, a kernel of the layer's own kind, or
/// the reason the forced algorithm cannot run here (reported by every
/// forward as [`Error::Unsupported`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plan<K> {
    /// The naive oracle.
    Reference,
    /// The planned kernel.
    Kernel(K),
    /// A forced algorithm this CPU lacks.
    Unavailable(String),
}

impl<K> Plan<K> {
    /// Plans with `kernel` for the instruction set `algorithm` resolves to.
    pub(crate) fn new(algorithm: Algorithm, kernel: impl FnOnce(Isa) -> K) -> Self {
        match isa(algorithm) {
            Ok(Isa::Reference) => Plan::Reference,
            Ok(isa) => Plan::Kernel(kernel(isa)),
            Err(why) => Plan::Unavailable(why),
        }
    }

    /// The kernel, `None` for the oracle, or the error of an unavailable one.
    pub(crate) fn kernel(&self) -> Result<Option<&K>> {
        match self {
            Plan::Reference => Ok(None),
            Plan::Kernel(k) => Ok(Some(k)),
            Plan::Unavailable(why) => Err(Error::Unsupported(why.clone())),
        }
    }
}

/// How a layer multiplies by its `K × N` weight.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum GemmKernel {
    /// matrixmultiply on the stored weight, then the bias and activation.
    Portable,
    /// The AVX2+FMA f32 kernel on weights packed at build time, with the
    /// bias and activation fused.
    Avx2FmaF32 {
        /// The CPU token.
        cpu: Avx2Fma,
        /// The packed weight and bias (shared by clones of the layer).
        packed: Arc<gemm_f32::PackedB>,
    },
    /// The same on AVX-512F: 32-column panels, a 14 × 32 tile.
    Avx512F32 {
        /// The CPU token.
        cpu: Avx512F,
        /// The packed weight and bias.
        packed: Arc<gemm_f32::PackedB>,
    },
}

/// Whether a GEMM of `n` output columns is better run on the AVX2 kernel's
/// 16-column panels than on the AVX-512 kernel's 32-column ones, on an
/// AVX-512 CPU: where it has at most 16 columns, which fill one AVX2 panel
/// but half of an AVX-512 one (the AVX2 kernel then does as many useful FMAs
/// an instruction, and twice as many a cycle on a core that runs a 512-bit
/// FMA as two halves); and, on such a core (`halves_fmas`), where it fills
/// at most half of its last AVX-512 panel: there the AVX-512 tile spends up
/// to half of that panel's FMAs on zero padding, for no more FMAs a cycle.
/// (On the AMD EPYC Zen 4, 1 thread, one build with the rule switched by
/// turns: 0.75-224's 112×112×24→48 layer 0.421–0.441 → 0.323–0.342 ms,
/// MobileNetV2's blocks with 24→144 expansions 0.94–0.96× their time, the
/// 1000-class classifier 0.159–0.194 → 0.138–0.175 ms, the whole 0.75-224
/// 0.987×; the 14×14 layers, in whole panels, run at 95–98% of the peak on
/// the AVX-512 kernel there, above the AVX2 one.)
fn avx2_panels_suit(n: usize, halves_fmas: bool) -> bool {
    let tail = n % gemm_f32::AVX512_NR;
    n <= gemm_f32::AVX2_NR || (halves_fmas && (1..=gemm_f32::AVX2_NR).contains(&tail))
}

impl GemmKernel {
    /// The GEMM for weight `w` (`K × N`) and `bias` under `isa`: the portable
    /// one also when the packed copy of the weight cannot be allocated
    /// (it is the size of the weight, rounded up to whole panels).
    pub(crate) fn plan<F: Float>(isa: Isa, w: ArrayView2<'_, F>, bias: Option<&[F]>) -> Self {
        let Some(w) = cast::view2::<F, f32>(w) else {
            return GemmKernel::Portable;
        };
        let bias = bias.map(|b| cast::slice(b).expect("F is f32"));
        let pack = |nr| gemm_f32::PackedB::new(w, bias, nr).map(Arc::new);
        match isa {
            Isa::Avx512F(avx2, wide) if avx2_panels_suit(w.ncols(), wide.halves_fmas()) => {
                match pack(gemm_f32::AVX2_NR) {
                    Ok(packed) => GemmKernel::Avx2FmaF32 { cpu: avx2, packed },
                    Err(_) => GemmKernel::Portable,
                }
            }
            Isa::Avx512F(_, cpu) => match pack(gemm_f32::AVX512_NR) {
                Ok(packed) => GemmKernel::Avx512F32 { cpu, packed },
                Err(_) => GemmKernel::Portable,
            },
            Isa::Avx2Fma(cpu) => match pack(gemm_f32::AVX2_NR) {
                Ok(packed) => GemmKernel::Avx2FmaF32 { cpu, packed },
                Err(_) => GemmKernel::Portable,
            },
            Isa::Portable | Isa::Reference => GemmKernel::Portable,
        }
    }

    /// The scratch [`packed`](Self::packed) wants for `m` contiguous rows of
    /// `k` values: room for a copy of them at a stride that does not alias
    /// in L1 (see `gemm_f32::staged_lda`), or 0.
    pub(crate) fn staging_len(&self, m: usize, k: usize) -> Result<usize> {
        match (self, gemm_f32::staged_lda(k)) {
            (GemmKernel::Portable, _) | (_, None) => Ok(0),
            (_, Some(lda)) => crate::layer::alloc_len::<f32>("GEMM staging copy", &[m, lda]),
        }
    }

    /// Runs `c = act(a · w + bias)` with the packed kernel when this plan has
    /// one and it takes these views (unit column strides, non-negative row
    /// strides); returns `c` back otherwise, untouched, for the portable GEMM.
    /// Rows of `a` whose stride aliases in L1 are first copied into `stage`
    /// at a stride that does not, when it has the
    /// [`staging_len`](Self::staging_len) for them (else read in place);
    /// either way the results are the same.
    pub(crate) fn packed<'c, F: Float>(
        &self,
        a: ArrayView2<'_, F>,
        c: ArrayViewMut2<'c, F>,
        act: Activation,
        parallel: bool,
        stage: &mut [F],
    ) -> std::result::Result<(), ArrayViewMut2<'c, F>> {
        if matches!(self, GemmKernel::Portable)
            || !gemm_f32::takes(a.strides(), c.strides(), a.ncols(), c.ncols())
        {
            return Err(c);
        }
        let c = cast::view2_mut::<F, f32>(c)?;
        let a = cast::view2::<F, f32>(a).expect("planned for f32");
        let (m, k) = a.dim();
        let staged = gemm_f32::staged_lda(a.strides()[0].max(0) as usize).and_then(|lda| {
            let len = m.checked_mul(lda)?;
            let buf = cast::slice_mut::<F, f32>(stage.get_mut(..len)?)?;
            ArrayViewMut2::from_shape((m, k).strides((lda, 1)), &mut *buf)
                .ok()?
                .assign(&a);
            ArrayView2::from_shape((m, k).strides((lda, 1)), &*buf).ok()
        });
        let a = staged.unwrap_or(a);
        match self {
            GemmKernel::Avx2FmaF32 { cpu, packed } => {
                gemm_f32::gemm(*cpu, a, packed, c, act, parallel)
            }
            GemmKernel::Avx512F32 { cpu, packed } => {
                gemm_f32::gemm_avx512(*cpu, a, packed, c, act, parallel)
            }
            GemmKernel::Portable => unreachable!("returned above"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::avx2_panels_suit;

    /// Up to 16 columns take the AVX2 panels on any AVX-512 core; more, only
    /// where the last 32-column panel would be at most half full, and only
    /// on a core that halves its 512-bit FMAs.
    #[test]
    fn which_gemm_panels_an_avx512_core_plans() {
        for n in [1, 8, 15, 16] {
            assert!(
                avx2_panels_suit(n, false) && avx2_panels_suit(n, true),
                "{n}"
            );
        }
        for n in [17, 24, 31, 32, 64, 96, 160, 1020, 1024] {
            assert!(
                !avx2_panels_suit(n, false) && !avx2_panels_suit(n, true),
                "{n}"
            );
        }
        for n in [33, 40, 48, 144, 1000, 1001, 1008] {
            assert!(
                !avx2_panels_suit(n, false) && avx2_panels_suit(n, true),
                "{n}"
            );
        }
        // This machine's answer, for the test log.
        if let Some(cpu) = crate::kernels::Avx512F::detect() {
            eprintln!("512-bit FMAs as two halves here: {}", cpu.halves_fmas());
        } else {
            eprintln!("no AVX-512F here: the AVX-512 plan is not made on this CPU");
        }
    }
}
