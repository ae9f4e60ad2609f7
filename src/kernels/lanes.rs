//! 8-lane f32 vectors for the AVX2+FMA kernels: a possibly masked vector of
//! channels, and the fused activation.

use std::arch::x86_64::*;

use crate::activation::Activation;

/// Lane mask for the first `n ≤ 8` lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lane_mask(n: usize) -> __m256i {
    const IDX: [i32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
    // SAFETY: IDX is 8 i32s, an unaligned 256-bit load.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_loadu_si256(IDX.as_ptr().cast()),
        )
    }
}

/// A vector of 8 channels, or the masked last `n < 8` of them.
#[derive(Clone, Copy)]
pub(super) struct Lanes {
    mask: Option<__m256i>,
}

impl Lanes {
    /// The first `min(n, 8)` lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn new(n: usize) -> Self {
        // SAFETY: AVX2 is enabled on this function.
        let mask = if n < 8 {
            Some(unsafe { lane_mask(n) })
        } else {
            None
        };
        Lanes { mask }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: the caller passes a pointer with 8 readable floats, or
        // (masked) as many as the mask's set lanes.
        unsafe {
            match self.mask {
                None => _mm256_loadu_ps(p),
                Some(m) => _mm256_maskload_ps(p, m),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: as `load`, for writable floats.
        unsafe {
            match self.mask {
                None => _mm256_storeu_ps(p, v),
                Some(m) => _mm256_maskstore_ps(p, m, v),
            }
        }
    }
}

/// Clamps `v` as `act` does (NaN kept: max/min return the second operand on NaN).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn activate(act: Activation, v: __m256) -> __m256 {
    match act {
        Activation::Identity => v,
        Activation::Relu => _mm256_max_ps(_mm256_setzero_ps(), v),
        Activation::Relu6 => {
            _mm256_min_ps(_mm256_set1_ps(6.0), _mm256_max_ps(_mm256_setzero_ps(), v))
        }
    }
}
