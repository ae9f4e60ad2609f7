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

#[cfg(feature = "rayon")]
thread_local! {
    /// Set on the thread that runs a forward inside [`with_workers_awake`].
    static AWAKE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set while that thread runs a parallel section on its team: a
    /// section inside one (a chunk that splits again) goes through rayon.
    static IN_SECTION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The job slot the other workers watch while that forward runs.
    static TEAM: crate::kernels::handoff::Team = const { crate::kernels::handoff::Team::new() };
}

/// Runs `f` (a whole forward) with the pool's other workers kept awake: a
/// job on each spins until `f` returns, so that no worker falls asleep
/// between two layers and has to be woken for the next (tens of µs a layer,
/// against layers of 3–600 µs). Each parallel section inside `f` hands its
/// chunks to the spinning workers through one slot
/// ([`handoff::Team`](crate::kernels::handoff::Team)), not as rayon jobs;
/// the workers also run any rayon job meanwhile. Nested calls (a container
/// inside a container) run `f` as it is.
#[cfg(feature = "rayon")]
pub(crate) fn with_workers_awake<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    if AWAKE.with(std::cell::Cell::get) {
        return f();
    }
    /// Ends the spinning (and the mark) when `f` returns or unwinds.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            AWAKE.with(|a| a.set(false));
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    let others = threads().saturating_sub(1);
    TEAM.with(|team| {
        rayon::scope(|s| {
            for _ in 0..others {
                s.spawn(|_| {
                    let mut seen = 0;
                    while !done.load(Ordering::Acquire) {
                        if team.help(&mut seen) {
                            continue;
                        }
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
    })
}

/// Runs `body(false)` on this thread and `body(true)` on the spinning
/// workers of its forward (see [`with_workers_awake`]), returning when
/// every call has ended; `false`, running nothing, outside such a forward
/// or inside a section already (then the caller goes through rayon). Each
/// call of `body` takes chunks from a queue the caller shares until it is
/// empty (see [`take`]).
#[cfg(feature = "rayon")]
fn on_team(body: &(dyn Fn(bool) + Sync)) -> bool {
    if !AWAKE.with(std::cell::Cell::get) || IN_SECTION.with(std::cell::Cell::get) {
        return false;
    }
    /// Clears the section mark however `body` returns.
    struct Section;
    impl Drop for Section {
        fn drop(&mut self) {
            IN_SECTION.with(|s| s.set(false));
        }
    }
    IN_SECTION.with(|s| s.set(true));
    let _section = Section;
    TEAM.with(|team| team.run(body));
    true
}

/// Whether [`on_team`] would run a section here.
#[cfg(feature = "rayon")]
fn team_ready() -> bool {
    AWAKE.with(std::cell::Cell::get) && !IN_SECTION.with(std::cell::Cell::get)
}

/// The next chunk of a queue shared by the calls of a section: from the
/// front on the forward's own thread, from the back on a helper, so that
/// each thread works on one run of rows, as a rayon split in halves does.
/// Then a layer reads mostly the rows that its thread wrote in the layer
/// before, from its own core's cache. (Handing chunks out in turn, the
/// helper taking every other one, made MobileNet v1 0.25-128 on 2 threads
/// 1.10× slower than through rayon on the AMD EPYC Zen 3, where a cache line
/// takes ~0.3 µs from one core to the other.) The lock is released before
/// the chunk is worked on.
#[cfg(feature = "rayon")]
fn take<I: DoubleEndedIterator>(queue: &std::sync::Mutex<I>, helper: bool) -> Option<I::Item> {
    let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
    match helper {
        false => queue.next(),
        true => queue.next_back(),
    }
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
    if threads() > 1 && team_ready() {
        let queue = std::sync::Mutex::new(m.axis_chunks_iter_mut(axis, size).enumerate());
        let ran = on_team(&|helper| {
            while let Some((i, c)) = take(&queue, helper) {
                f(i * size, c);
            }
        });
        debug_assert!(ran, "team_ready and on_team disagree");
        return;
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

/// Calls `f(first_row, first_col, block)` on the blocks of `m` cut into
/// column chunks of `cols` columns and each of those into row chunks of
/// `rows` rows, in parallel when the `rayon` feature is on. Inside a forward
/// (see [`with_workers_awake`]) every block is one task of one section, as
/// a section inside a chunk would run on that chunk's thread alone (the
/// GEMM's column chunks of a 7×7 layer split their rows so that two threads
/// take equal shares of an odd number of chunks).
pub(crate) fn for_each_block<T, Fn_>(m: ArrayViewMut2<'_, T>, cols: usize, rows: usize, f: Fn_)
where
    T: Send + Sync,
    Fn_: Fn(usize, usize, ArrayViewMut2<'_, T>) + Sync + Send,
{
    let (cols, rows) = (cols.max(1), rows.max(1));
    #[cfg(feature = "rayon")]
    if threads() > 1 && team_ready() && m.nrows() > 0 && m.ncols() > 0 {
        let mut m = m;
        let blocks = m
            .axis_chunks_iter_mut(Axis(1), cols)
            .enumerate()
            .flat_map(|(j, part)| {
                RowChunks {
                    rest: Some(part),
                    first: 0,
                    size: rows,
                }
                .map(move |(i, block)| (i, j * cols, block))
            });
        let queue = std::sync::Mutex::new(blocks);
        let ran = on_team(&|helper| {
            while let Some((m0, n0, block)) = take(&queue, helper) {
                f(m0, n0, block);
            }
        });
        debug_assert!(ran, "team_ready and on_team disagree");
        return;
    }
    for_each_chunk(m, Axis(1), cols, |n0, part| {
        for_each_chunk(part, Axis(0), rows, |m0, block| f(m0, n0, block))
    });
}

/// The chunks of `size` rows of a view, from either end (the last may be
/// shorter), each with its first row: `(row, chunk)`.
#[cfg(feature = "rayon")]
struct RowChunks<'a, T> {
    /// The rows not yet handed out.
    rest: Option<ArrayViewMut2<'a, T>>,
    /// The row of the original view where `rest` starts.
    first: usize,
    size: usize,
}

#[cfg(feature = "rayon")]
impl<'a, T> Iterator for RowChunks<'a, T> {
    type Item = (usize, ArrayViewMut2<'a, T>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.take().filter(|r| r.nrows() > 0)?;
        let first = self.first;
        if rest.nrows() <= self.size {
            return Some((first, rest));
        }
        let (chunk, rest) = rest.split_at(Axis(0), self.size);
        (self.rest, self.first) = (Some(rest), first + self.size);
        Some((first, chunk))
    }
}

#[cfg(feature = "rayon")]
impl<T> DoubleEndedIterator for RowChunks<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let rest = self.rest.take().filter(|r| r.nrows() > 0)?;
        // `first` is a multiple of `size` from the view's start, so the
        // chunks cut from the back fall where those from the front do.
        let last = (rest.nrows() - 1) / self.size * self.size;
        let (rest, chunk) = rest.split_at(Axis(0), last);
        if last > 0 {
            self.rest = Some(rest);
        }
        Some((self.first + last, chunk))
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
    if threads() > 1 && team_ready() {
        let pairs = a
            .axis_chunks_iter_mut(Axis(0), chunk_a)
            .zip(b.axis_chunks_iter_mut(Axis(0), chunk_b))
            .enumerate();
        let queue = std::sync::Mutex::new(pairs);
        let ran = on_team(&|helper| {
            while let Some((i, (ca, cb))) = take(&queue, helper) {
                f(i * chunk_a, ca, cb);
            }
        });
        debug_assert!(ran, "team_ready and on_team disagree");
        return;
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

    /// Every element of a matrix is visited once, in the block and at the
    /// place `for_each_block` says, through a team (inside a forward's
    /// awake workers) and through rayon; so are the row chunks and the pairs
    /// of row chunks of a section on a team; and chunks cut from both ends of
    /// a view fall where the chunks from the front do.
    #[cfg(feature = "rayon")]
    #[test]
    fn blocks_cover_the_matrix_once_through_a_team_and_through_rayon() {
        use super::{
            RowChunks, for_each_block, for_each_row_chunk, for_each_row_chunk_pair,
            with_workers_awake,
        };
        use ndarray::Array2;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (m, n, cols, rows) in [
            (49, 80, 16, 24),
            (7, 5, 2, 3),
            (1, 9, 4, 1),
            (30, 30, 30, 7),
        ] {
            for team in [true, false] {
                let mut seen = Array2::<u32>::zeros((m, n));
                let visit = |seen: ndarray::ArrayViewMut2<'_, u32>| {
                    for_each_block(seen, cols, rows, |m0, n0, mut block| {
                        assert!(block.nrows() <= rows && block.ncols() <= cols);
                        assert!(m0.is_multiple_of(rows) && n0.is_multiple_of(cols));
                        for ((i, j), v) in block.indexed_iter_mut() {
                            *v += 1 + ((m0 + i) * n + n0 + j) as u32;
                        }
                    })
                };
                pool.install(|| match team {
                    true => with_workers_awake(|| visit(seen.view_mut())),
                    false => visit(seen.view_mut()),
                });
                for ((i, j), &v) in seen.indexed_iter() {
                    assert_eq!(v, 1 + (i * n + j) as u32, "{m}×{n} team {team}: ({i}, {j})");
                }
                // Row chunks through a team too.
                let mut rows_seen = Array2::<u32>::zeros((m, n));
                pool.install(|| {
                    with_workers_awake(|| {
                        for_each_row_chunk(rows_seen.view_mut(), rows, |r0, mut c| {
                            c.indexed_iter_mut()
                                .for_each(|((i, _), v)| *v += (r0 + i) as u32 + 1)
                        })
                    })
                });
                assert!(
                    rows_seen
                        .indexed_iter()
                        .all(|((i, _), &v)| v == i as u32 + 1)
                );
                // Pairs of row chunks through a team: `b` has a chunk more
                // than `a`, which no call sees.
                let (mut a, mut b) = (
                    Array2::<u32>::zeros((m, n)),
                    Array2::<u32>::zeros((m + rows, 1)),
                );
                pool.install(|| {
                    with_workers_awake(|| {
                        for_each_row_chunk_pair(
                            a.view_mut(),
                            rows,
                            b.view_mut(),
                            rows,
                            |r0, mut ca, mut cb| {
                                assert_eq!(ca.nrows(), cb.nrows().min(ca.nrows()));
                                ca.iter_mut().for_each(|v| *v += r0 as u32 + 1);
                                cb.iter_mut().for_each(|v| *v += r0 as u32 + 1);
                            },
                        )
                    })
                });
                assert!(
                    a.indexed_iter()
                        .all(|((i, _), &v)| v == (i / rows * rows) as u32 + 1)
                );
                assert!(
                    b.indexed_iter()
                        .all(|((i, _), &v)| match i < m.div_ceil(rows) * rows {
                            true => v == (i / rows * rows) as u32 + 1,
                            false => v == 0,
                        })
                );
            }
        }
        for (len, size) in [(10, 3), (9, 3), (1, 4), (7, 1), (8, 8)] {
            let mut data = Array2::<u8>::zeros((len, 1));
            let chunks = |data: &mut Array2<u8>, pattern: &[bool]| {
                let mut it = RowChunks {
                    rest: Some(data.view_mut()),
                    first: 0,
                    size,
                };
                let mut out = Vec::new();
                for &back in pattern.iter().cycle() {
                    let next = if back { it.next_back() } else { it.next() };
                    match next {
                        Some((r, c)) => out.push((r, c.nrows())),
                        None => break,
                    }
                }
                out.sort();
                out
            };
            let front = chunks(&mut data, &[false]);
            assert_eq!(front.iter().map(|c| c.1).sum::<usize>(), len);
            assert_eq!(chunks(&mut data, &[true]), front, "{len} by {size}");
            assert_eq!(
                chunks(&mut data, &[false, true, true]),
                front,
                "{len} by {size}"
            );
        }
    }

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
