//! Work splitting over rows, with rayon when the `rayon` feature is on.
//!
//! Chunks are processed independently and each output element is computed by
//! exactly the same arithmetic whatever the chunking, so results are bit for
//! bit the same with 1 or N threads.

use ndarray::{ArrayViewMut2, Axis};

/// The number of threads work is split for.
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// Runs `f` (a whole forward) with the pool's other workers kept awake: a
/// job on each spins, taking the chunks of each parallel section as soon as
/// they are split off, until `f` returns, so that no worker falls asleep
/// between two layers and has to be woken for the next (tens of µs a layer,
/// against layers of 20–600 µs). Nested calls (a container inside a
/// container) run `f` as it is.
#[cfg(feature = "rayon")]
pub(crate) fn with_workers_awake<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};
    thread_local! {
        static AWAKE: Cell<bool> = const { Cell::new(false) };
    }
    if AWAKE.with(Cell::get) {
        return f();
    }
    /// Ends the spinning (and the nesting mark) when `f` returns or unwinds.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            AWAKE.with(|a| a.set(false));
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    let others = threads().saturating_sub(1);
    rayon::scope(|s| {
        for _ in 0..others {
            s.spawn(|_| {
                while !done.load(Ordering::Acquire) {
                    match rayon::yield_now() {
                        Some(rayon::Yield::Executed) => {}
                        _ => std::hint::spin_loop(),
                    }
                }
            });
        }
        let _done = Done(&done);
        AWAKE.with(|a| a.set(true));
        f()
    })
}

/// Rows per chunk so that `rows` split into about `threads()·per_thread`
/// chunks, each a multiple of `align` rows (the last may be shorter); see
/// [`balanced_chunk`].
pub(crate) fn chunk_rows(rows: usize, per_thread: usize, align: usize) -> usize {
    balanced_chunk(rows, threads(), per_thread, align)
}

/// The chunk size, a multiple of `align`, for about `threads·p` chunks of
/// `rows`, with `p` from `per_thread` down to 1: the one whose busiest thread
/// gets the fewest rows, and of those the smallest (more chunks even out a
/// core slowed by other load). 14 rows (a 14 × 14 depthwise output) on two
/// threads make 7 chunks of 2 at `p` = 4, one thread doing 8 rows and the
/// other 6; at `p` = 1 they make 2 chunks of 7.
pub(crate) fn balanced_chunk(
    rows: usize,
    threads: usize,
    per_thread: usize,
    align: usize,
) -> usize {
    let (threads, align) = (threads.max(1), align.max(1));
    let mut best = (usize::MAX, 1);
    for p in (1..=per_thread.max(1)).rev() {
        let chunk = rows.div_ceil(threads * p).next_multiple_of(align).max(1);
        // Whole chunks go to threads, so the busiest takes ceil(chunks / threads).
        let busiest = (rows.div_ceil(chunk).div_ceil(threads) * chunk).min(rows);
        if busiest < best.0 {
            best = (busiest, chunk);
        }
    }
    best.1
}

/// Calls `f(first_row, chunk)` on consecutive chunks of `chunk` rows of `m`,
/// in parallel when the `rayon` feature is on.
pub(crate) fn for_each_row_chunk<T, Fn_>(m: ArrayViewMut2<'_, T>, chunk: usize, f: Fn_)
where
    T: Send + Sync,
    Fn_: Fn(usize, ArrayViewMut2<'_, T>) + Sync + Send,
{
    for_each_chunk(m, Axis(0), chunk, f);
}

/// Calls `f(start, chunk)` on consecutive chunks of `size` indices of `m`
/// along `axis` (`start`: the chunk's first index on that axis), in parallel
/// when the `rayon` feature is on and there is more than one chunk and
/// thread. (With one thread the chunks run here: handing them to a pool from
/// outside it costs ~10 µs a call, measured on 2×2×8 depthwise.)
pub(crate) fn for_each_chunk<T, Fn_>(mut m: ArrayViewMut2<'_, T>, axis: Axis, size: usize, f: Fn_)
where
    T: Send + Sync,
    Fn_: Fn(usize, ArrayViewMut2<'_, T>) + Sync + Send,
{
    let size = size.max(1);
    if m.len_of(axis) <= size {
        return f(0, m);
    }
    #[cfg(feature = "rayon")]
    if threads() > 1 {
        use rayon::prelude::*;
        m.axis_chunks_iter_mut(axis, size)
            .into_par_iter()
            .enumerate()
            .for_each(|(i, c)| f(i * size, c));
        return;
    }
    for (i, c) in m.axis_chunks_iter_mut(axis, size).enumerate() {
        f(i * size, c);
    }
}

/// As [`for_each_row_chunk`], over two matrices at once: chunk `i` of `a`
/// (`chunk_a` rows) with chunk `i` of `b` (`chunk_b` rows), as
/// `f(first_row_of_a_chunk, chunk_of_a, chunk_of_b)`. `b` must have at least
/// as many chunks as `a`; its extra rows are not visited.
pub(crate) fn for_each_row_chunk_pair<T, U, Fn_>(
    mut a: ArrayViewMut2<'_, T>,
    chunk_a: usize,
    mut b: ArrayViewMut2<'_, U>,
    chunk_b: usize,
    f: Fn_,
) where
    T: Send + Sync,
    U: Send + Sync,
    Fn_: Fn(usize, ArrayViewMut2<'_, T>, ArrayViewMut2<'_, U>) + Sync + Send,
{
    let (chunk_a, chunk_b) = (chunk_a.max(1), chunk_b.max(1));
    assert!(
        b.nrows().div_ceil(chunk_b) >= a.nrows().div_ceil(chunk_a),
        "for_each_row_chunk_pair: too few chunks in b"
    );
    if a.nrows() <= chunk_a {
        let rows = b.nrows().min(chunk_b);
        return f(0, a, b.slice_mut(ndarray::s![..rows, ..]));
    }
    #[cfg(feature = "rayon")]
    if threads() > 1 {
        use rayon::prelude::*;
        a.axis_chunks_iter_mut(Axis(0), chunk_a)
            .into_par_iter()
            .zip(b.axis_chunks_iter_mut(Axis(0), chunk_b))
            .enumerate()
            .for_each(|(i, (ca, cb))| f(i * chunk_a, ca, cb));
        return;
    }
    for (i, (ca, cb)) in a
        .axis_chunks_iter_mut(Axis(0), chunk_a)
        .zip(b.axis_chunks_iter_mut(Axis(0), chunk_b))
        .enumerate()
    {
        f(i * chunk_a, ca, cb);
    }
}

#[cfg(test)]
mod tests {
    use super::balanced_chunk;

    #[test]
    fn chunks_balance_the_busiest_thread() {
        // 2 threads, up to 4 chunks each: MobileNet's depthwise output heights.
        let chunk = |rows| balanced_chunk(rows, 2, 4, 1);
        assert_eq!(chunk(112), 14); // 8 chunks, 4 each
        assert_eq!(chunk(56), 7);
        assert_eq!(chunk(28), 7); // 4 chunks of 7, not 7 of 4 (16 rows : 12)
        assert_eq!(chunk(14), 7); // 2 chunks of 7, not 7 of 2 (8 rows : 6)
        assert_eq!(chunk(7), 1); // 4 : 3 whatever the split; the most chunks
        assert_eq!(chunk(1), 1);
        assert_eq!(chunk(0), 1);
        // One thread takes every row in any split: the plain split stays.
        assert_eq!(balanced_chunk(10, 1, 4, 1), 3);
        // Alignment is kept.
        assert!(balanced_chunk(100, 2, 1, 8).is_multiple_of(8));
        for rows in 0..200 {
            for threads in 1..5 {
                for per_thread in 0..5 {
                    for align in [1, 6, 8] {
                        let c = balanced_chunk(rows, threads, per_thread, align);
                        assert!(
                            c >= 1 && (c.is_multiple_of(align) || c == 1),
                            "{rows} {threads} {per_thread} {align}: {c}"
                        );
                        // No worse than the plain split with per_thread chunks each.
                        let plain = rows
                            .div_ceil(threads * per_thread.max(1))
                            .next_multiple_of(align)
                            .max(1);
                        let busiest = |c: usize| (rows.div_ceil(c).div_ceil(threads) * c).min(rows);
                        assert!(
                            busiest(c) <= busiest(plain),
                            "{rows} {threads} {per_thread} {align}"
                        );
                    }
                }
            }
        }
    }
}
