//! The machine's f32 FMA peak on one core, for the comparison's "share of
//! peak" table: the rate no engine can beat, whatever its kernels.
//!
//! Twelve independent chains of 8-lane fused multiply-adds (enough to cover
//! the FMA latency of two FMA units), timed five times; prints the best as
//! JSON, in mult-adds per second: `{"isa": "avx2+fma", "gmacs_per_core": 45.6}`.
//! On a CPU without AVX2+FMA (or not x86-64) it prints `{"isa": null}`.
//! Built by run.sh with plain `rustc -O`: the kernel enables its ISA itself,
//! after asking the CPU, as sepconv's kernels do.

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chains(steps: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); 12];
    let (b, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..steps {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    let mut sum = _mm256_setzero_ps();
    for a in acc {
        sum = _mm256_add_ps(sum, a);
    }
    let mut out = [0f32; 8];
    // SAFETY: `out` has room for the 8 lanes stored.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out.iter().sum()
}

#[cfg(target_arch = "x86_64")]
fn peak() -> Option<f64> {
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return None;
    }
    let steps = 20_000_000;
    let mut best = 0f64;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        // SAFETY: AVX2 and FMA were detected above.
        let r = unsafe { chains(steps) };
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(r);
        best = best.max((steps * 12 * 8) as f64 / s / 1e9);
    }
    Some(best)
}

#[cfg(not(target_arch = "x86_64"))]
fn peak() -> Option<f64> {
    None
}

fn main() {
    match peak() {
        Some(g) => println!("{{\"isa\": \"avx2+fma\", \"gmacs_per_core\": {g:.2}}}"),
        None => println!("{{\"isa\": null}}"),
    }
}
