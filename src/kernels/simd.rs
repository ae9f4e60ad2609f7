//! f32 vectors of one instruction set, for kernel bodies written once.
//!
//! A kernel body is an `#[inline(always)]` function generic over [`Simd`];
//! each instruction set instantiates it inside a thin `#[target_feature]`
//! wrapper (matrixmultiply's pattern), where the vector operations below,
//! themselves `#[inline(always)]`, become single instructions. The AVX2
//! instantiation's tests then cover the index, tile and tail logic that the
//! AVX-512 one shares.

use std::arch::x86_64::*;

use crate::activation::Activation;

/// One ISA's f32 vector and the operations the kernels use.
///
/// # Safety
/// Every method may only run where the ISA's features are enabled (inside
/// its `#[target_feature]` wrapper, on a CPU that has them); the pointer
/// methods read or write [`LANES`](Self::LANES) floats.
pub(crate) trait Simd: Copy {
    /// The vector.
    type V: Copy;
    /// f32 lanes in a vector.
    const LANES: usize;
    /// All zeros.
    unsafe fn zero() -> Self::V;
    /// `LANES` floats from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `v` to `LANES` floats at `p` (unaligned).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `*p` in every lane.
    unsafe fn splat(p: *const f32) -> Self::V;
    /// `a · b + c`, fused (one rounding).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `act` lane by lane, NaN kept as [`Activation::apply`] keeps it
    /// (max/min return their second operand when one is NaN).
    unsafe fn activate(act: Activation, v: Self::V) -> Self::V;

    /// A lane mask.
    type Mask: Copy;
    /// The first `n` (< LANES) lanes.
    unsafe fn first(n: usize) -> Self::Mask;
    /// The masked lanes from `p` (the others zero); only they are read.
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self::V;
    /// The masked lanes of `v` to `p`; only they are written.
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self::V);
}

/// A vector of `LANES` channels, or the masked first `n < LANES` of them.
#[derive(Clone, Copy)]
pub(crate) struct Lanes<S: Simd> {
    mask: Option<S::Mask>,
}

impl<S: Simd> Lanes<S> {
    /// The first `min(n, LANES)` lanes.
    ///
    /// # Safety
    /// `S`'s ISA is enabled.
    #[inline(always)]
    pub(super) unsafe fn new(n: usize) -> Self {
        // SAFETY: passed on from the caller.
        let mask = (n < S::LANES).then(|| unsafe { S::first(n) });
        Lanes { mask }
    }

    /// Loads the lanes from `p`.
    ///
    /// # Safety
    /// `S`'s ISA is enabled; `p` has as many readable floats as lanes.
    #[inline(always)]
    pub(super) unsafe fn load(self, p: *const f32) -> S::V {
        // SAFETY: passed on from the caller.
        unsafe {
            match self.mask {
                None => S::load(p),
                Some(m) => S::load_masked(p, m),
            }
        }
    }

    /// Stores the lanes of `v` to `p`.
    ///
    /// # Safety
    /// As [`load`](Self::load), for writable floats.
    #[inline(always)]
    pub(super) unsafe fn store(self, p: *mut f32, v: S::V) {
        // SAFETY: passed on from the caller.
        unsafe {
            match self.mask {
                None => S::store(p, v),
                Some(m) => S::store_masked(p, m, v),
            }
        }
    }
}

/// AVX2 + FMA: 8 lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2;

impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: AVX is enabled where this runs (the trait's contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller passes 8 readable floats.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller passes 8 writable floats.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        // SAFETY: the caller passes a readable float.
        unsafe { _mm256_broadcast_ss(&*p) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA is enabled where this runs.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is enabled where this runs.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn activate(act: Activation, v: __m256) -> __m256 {
        // SAFETY: AVX is enabled where this runs.
        unsafe {
            match act {
                Activation::Identity => v,
                Activation::Relu => _mm256_max_ps(_mm256_setzero_ps(), v),
                Activation::Relu6 => {
                    _mm256_min_ps(_mm256_set1_ps(6.0), _mm256_max_ps(_mm256_setzero_ps(), v))
                }
            }
        }
    }

    type Mask = __m256i;
    #[inline(always)]
    unsafe fn first(n: usize) -> __m256i {
        const IDX: [i32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
        // SAFETY: IDX is 8 i32s, an unaligned 256-bit load; AVX2 is enabled.
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n as i32),
                _mm256_loadu_si256(IDX.as_ptr().cast()),
            )
        }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: the masked lanes of `p` are readable (the caller's contract).
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: the masked lanes of `p` are writable.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
}

/// AVX-512F: 16 lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512;

impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: AVX-512F is enabled where this runs (the trait's contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller passes 16 readable floats.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller passes 16 writable floats.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        // SAFETY: the caller passes a readable float.
        unsafe { _mm512_set1_ps(*p) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F is enabled where this runs.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is enabled where this runs.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn activate(act: Activation, v: __m512) -> __m512 {
        // SAFETY: AVX-512F is enabled where this runs. vmaxps/vminps return
        // their second operand when one is NaN, as the AVX2 forms do.
        unsafe {
            match act {
                Activation::Identity => v,
                Activation::Relu => _mm512_max_ps(_mm512_setzero_ps(), v),
                Activation::Relu6 => {
                    _mm512_min_ps(_mm512_set1_ps(6.0), _mm512_max_ps(_mm512_setzero_ps(), v))
                }
            }
        }
    }

    type Mask = __mmask16;
    #[inline(always)]
    unsafe fn first(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: the masked lanes of `p` are readable (the caller's
        // contract); AVX-512 masked loads do not touch the others.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: the masked lanes of `p` are writable.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
}

/// A row kernel written once over [`Simd`]: the interior pixels of an
/// output row in register blocks, and one border pixel with its taps checked.
/// The depthwise and the direct conv kernels each implement it for their
/// row problem; [`RowIsa`] runs it on an instruction set.
pub(crate) trait RowKernel {
    /// Interior pixels `lo..hi` of the row into `out` (the output row).
    ///
    /// # Safety
    /// `S`'s ISA is enabled; every tap of pixels `lo..hi` reads inside the
    /// row; `out` points at the output row.
    unsafe fn interior<S: Simd>(&self, lo: usize, hi: usize, out: *mut f32);
    /// Pixel `ox`, anywhere in the row, into `px` (its outputs); taps
    /// outside the row are skipped.
    ///
    /// # Safety
    /// `S`'s ISA is enabled; `px` points at the pixel's outputs.
    unsafe fn pixel_checked<S: Simd>(&self, ox: usize, px: *mut f32);
}

/// The instruction sets the row kernels are built for, by their CPU tokens:
/// thin `#[target_feature]` wrappers around the generic bodies.
pub(crate) trait RowIsa: Copy {
    /// f32 lanes of this ISA's vectors.
    fn lanes(self) -> usize;
    /// [`RowKernel::interior`] on this ISA.
    ///
    /// # Safety
    /// As [`RowKernel::interior`]; `self` proves the ISA exists.
    unsafe fn interior<R: RowKernel>(self, row: &R, lo: usize, hi: usize, out: *mut f32);
    /// [`RowKernel::pixel_checked`] on this ISA.
    ///
    /// # Safety
    /// As [`RowKernel::pixel_checked`]; `self` proves the ISA exists.
    unsafe fn pixel_checked<R: RowKernel>(self, row: &R, ox: usize, px: *mut f32);
}

macro_rules! row_isa {
    ($token:ty, $simd:ty, $features:literal, $interior:ident, $pixel:ident) => {
        #[target_feature(enable = $features)]
        unsafe fn $interior<R: RowKernel>(row: &R, lo: usize, hi: usize, out: *mut f32) {
            // SAFETY: passed on; the ISA is enabled here.
            unsafe { row.interior::<$simd>(lo, hi, out) }
        }
        #[target_feature(enable = $features)]
        unsafe fn $pixel<R: RowKernel>(row: &R, ox: usize, px: *mut f32) {
            // SAFETY: passed on; the ISA is enabled here.
            unsafe { row.pixel_checked::<$simd>(ox, px) }
        }
        impl RowIsa for $token {
            fn lanes(self) -> usize {
                <$simd as Simd>::LANES
            }
            unsafe fn interior<R: RowKernel>(self, row: &R, lo: usize, hi: usize, out: *mut f32) {
                // SAFETY: the token proves the ISA; the rest is passed on.
                unsafe { $interior(row, lo, hi, out) }
            }
            unsafe fn pixel_checked<R: RowKernel>(self, row: &R, ox: usize, px: *mut f32) {
                // SAFETY: as above.
                unsafe { $pixel(row, ox, px) }
            }
        }
    };
}
row_isa!(super::Avx2Fma, Avx2, "avx2,fma", interior_avx2, pixel_avx2);
row_isa!(
    super::Avx512F,
    Avx512,
    "avx512f",
    interior_avx512,
    pixel_avx512
);
