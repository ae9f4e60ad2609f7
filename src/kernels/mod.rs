//! The only `unsafe` code in the crate: raw GEMM calls, SIMD kernels and the
//! same-type casts that hand generic buffers to them; and the hand-off of a
//! borrowed job to the helper threads of a forward ([`handoff`]).
//!
//! Everything here sits behind safe functions that check their contracts;
//! callers outside this module never see a raw pointer. Each `unsafe` block
//! carries a `// SAFETY:` comment. A SIMD kernel takes a CPU-feature token
//! ([`Avx2Fma`], [`Avx512F`]) that only run-time detection makes, so a plan
//! that holds one is proof the instructions exist.
#![allow(unsafe_code)]

pub(crate) mod cast;
#[cfg(target_arch = "x86_64")]
pub(crate) mod conv_f32;
pub(crate) mod depthwise;
#[cfg(target_arch = "x86_64")]
pub(crate) mod depthwise_f32;
pub(crate) mod direct;
pub(crate) mod gemm;
pub(crate) mod gemm_f32;
#[cfg(feature = "rayon")]
pub(crate) mod handoff;
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;
#[cfg(target_arch = "x86_64")]
mod window;

/// Proof that this CPU runs AVX2 and FMA: only [`Avx2Fma::detect`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Avx2Fma(());

impl Avx2Fma {
    /// The token, when this CPU has AVX2 and FMA (detected once).
    pub(crate) fn detect() -> Option<Self> {
        gemm_f32::available().then_some(Avx2Fma(()))
    }
}

/// Proof that this CPU runs AVX-512F (and AVX2 and FMA, which every
/// AVX-512 CPU has and the plans that use it also run): only
/// [`Avx512F::detect`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Avx512F(());

impl Avx512F {
    /// The token, when this CPU has AVX-512F, AVX2 and FMA (detected once).
    pub(crate) fn detect() -> Option<Self> {
        gemm_f32::available_avx512().then_some(Avx512F(()))
    }

    /// Whether this core runs a 512-bit FMA as two 256-bit halves, so that
    /// AVX-512 gives it no more FMAs a cycle than AVX2 (`comparisons/fma_peak.rs`
    /// measures the same peak with both there): AMD's family 19h, whose
    /// AVX-512 parts are all Zen 4 (Zen 3, the same family, has no AVX-512),
    /// read once from CPUID. Cores that run them at full width (Intel's
    /// Xeons, AMD's Zen 5, family 1Ah) answer false.
    pub(crate) fn halves_fmas(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::sync::OnceLock;
            static HALVES: OnceLock<bool> = OnceLock::new();
            *HALVES.get_or_init(|| {
                let vendor = cpuid(0, 0);
                let amd = [vendor.ebx, vendor.edx, vendor.ecx]
                    .iter()
                    .flat_map(|r| r.to_le_bytes())
                    .eq(*b"AuthenticAMD");
                let eax = cpuid(1, 0).eax;
                let base = (eax >> 8) & 0xf;
                let family = match base {
                    0xf => base + ((eax >> 20) & 0xff),
                    _ => base,
                };
                amd && family == 0x19
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// CPUID leaf `leaf`, subleaf `sub`.
#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)]
pub(crate) fn cpuid(leaf: u32, sub: u32) -> std::arch::x86_64::CpuidResult {
    // SAFETY: every x86-64 CPU has CPUID, and a leaf past the maximum it
    // reports only returns meaningless values, which the caller does not
    // ask for. (Safe to call on newer toolchains; `unsafe` on older ones.)
    unsafe { std::arch::x86_64::__cpuid_count(leaf, sub) }
}

/// Whether the blocked f32 depthwise kernel is the one to plan (see
/// `depthwise_f32::suits`; false off x86-64, where it does not exist).
pub(crate) fn depthwise_f32_suits(
    channels: usize,
    multiplier: usize,
    avx512: bool,
    strided: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    return depthwise_f32::suits(channels, multiplier, avx512, strided);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (channels, multiplier, avx512, strided);
        false
    }
}
