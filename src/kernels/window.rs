//! Where a kernel window lies in the input, for the direct SIMD kernels:
//! which outputs of a row need no bounds checks, and which kernel rows of an
//! output row land inside the image. The unchecked loads of those kernels
//! rest on these two functions, so each checks its answer against the raw
//! index arithmetic.

use crate::geometry::AxisGeometry;

/// The outputs `lo..hi` whose every tap reads inside the input along `g`
/// (an empty range, `lo = hi`, when there are none).
///
/// **Panics** if the range disagrees with `(o·stride + t·dilation) −
/// pad_before` at its extremes (the index grows with `o` and `t`, so the
/// extremes bound every tap of the range).
pub(crate) fn interior(g: &AxisGeometry) -> (usize, usize) {
    let (lo, hi) = (0..g.kernel)
        .map(|t| g.valid_outputs(t))
        .fold((0, g.output), |(lo, hi), r| {
            (lo.max(r.start), hi.min(r.end))
        });
    // A tap may miss the input entirely (wide explicit padding); its range
    // then starts past the last output: clamp.
    let lo = lo.min(g.output);
    let hi = hi.max(lo);
    // The input index `o·stride + t·dilation − pad_before`, with checked
    // arithmetic (no cast to isize, which would wrap above isize::MAX):
    // `None` when it overflows or falls before the input.
    let index = |o: usize, t: usize| {
        o.checked_mul(g.stride)
            .and_then(|i| i.checked_add(t.checked_mul(g.dilation)?))
            .and_then(|i| i.checked_sub(g.pad_before))
    };
    assert!(
        lo == hi
            || (index(lo, 0).is_some() && index(hi - 1, g.kernel - 1).is_some_and(|i| i < g.input)),
        "kernel window interior {lo}..{hi} leaves the input"
    );
    (lo, hi)
}

/// For output `o` along `g`: the taps `t0..t1` that land inside the input
/// (a contiguous range) and the input index of `t0`; `None` when none does.
///
/// **Panics** if the last tap's index is not inside the input.
pub(crate) fn taps_inside(g: &AxisGeometry, o: usize) -> Option<(usize, usize, usize)> {
    let mut inside = (0..g.kernel).filter(|&t| g.input_index(o, t).is_some());
    let t0 = inside.next()?;
    let t1 = inside.next_back().unwrap_or(t0) + 1;
    let first = g.input_index(o, t0).expect("tap inside");
    let last = g.input_index(o, t1 - 1).expect("tap inside");
    assert!(
        first <= last && last < g.input,
        "taps {t0}..{t1} of output {o} leave the input"
    );
    Some((t0, t1, first))
}
