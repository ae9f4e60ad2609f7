//! The only `unsafe` code in the crate: raw GEMM calls and (later) SIMD rows.
//!
//! Everything here sits behind safe functions that check their contracts;
//! callers outside this module never see a raw pointer. Each `unsafe` block
//! carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
pub(crate) mod conv_f32;
pub(crate) mod depthwise;
#[cfg(target_arch = "x86_64")]
pub(crate) mod depthwise_f32;
pub(crate) mod direct;
pub(crate) mod gemm;
pub(crate) mod gemm_f32;
#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
mod window;

pub use gemm::Scalar;
pub(crate) use gemm_f32::available as avx2_fma_available;
