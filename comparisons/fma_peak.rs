//! The machine's f32 FMA peak on one core, for the comparison's "share of
//! peak" table: the rate no engine can beat, whatever its kernels.
//!
//! Twelve independent chains of 8-lane (AVX2) or 16-lane (AVX-512F) fused
//! multiply-adds (enough to cover the FMA latency of two FMA units), timed
//! five times; prints the best as JSON, in mult-adds per second, for each ISA
//! the CPU has: `{"isa": "avx2+fma", "gmacs_per_core": 45.6, "avx512f":
//! 91.2}` (`"avx512f": null` without it; a Zen 4 gives about the AVX2 rate,
//! splitting each 512-bit FMA in two). The `isa` and `gmacs_per_core` fields
//! are the AVX2 figures, as before. On a CPU without AVX2+FMA (or not x86-64)
//! it prints `{"isa": null}`.
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
#[target_feature(enable = "avx512f")]
fn chains512(steps: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); 12];
    let (b, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..steps {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    let mut sum = _mm512_setzero_ps();
    for a in acc {
        sum = _mm512_add_ps(sum, a);
    }
    _mm512_reduce_add_ps(sum)
}

/// The best of five timings of `run(steps)`, as GMAC/s for `lanes`-wide chains.
fn best_of_five(lanes: usize, run: impl Fn(usize) -> f32) -> f64 {
    let steps = 20_000_000;
    let mut best = 0f64;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let r = run(steps);
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(r);
        best = best.max((steps * 12 * lanes) as f64 / s / 1e9);
    }
    best
}

#[cfg(target_arch = "x86_64")]
fn peak512() -> Option<f64> {
    if !is_x86_feature_detected!("avx512f") {
        return None;
    }
    // SAFETY: AVX-512F was detected above.
    Some(best_of_five(16, |steps| unsafe { chains512(steps) }))
}

#[cfg(not(target_arch = "x86_64"))]
fn peak512() -> Option<f64> {
    None
}

#[cfg(target_arch = "x86_64")]
fn peak() -> Option<f64> {
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return None;
    }
    // SAFETY: AVX2 and FMA were detected above.
    Some(best_of_five(8, |steps| unsafe { chains(steps) }))
}

#[cfg(not(target_arch = "x86_64"))]
fn peak() -> Option<f64> {
    None
}

fn main() {
    match peak() {
        Some(g) => {
            let wide = peak512().map_or("null".to_owned(), |w| format!("{w:.2}"));
            println!("{{\"isa\": \"avx2+fma\", \"gmacs_per_core\": {g:.2}, \"avx512f\": {wide}}}")
        }
        None => println!("{{\"isa\": null}}"),
    }
}
