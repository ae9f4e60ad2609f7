//! f32 GEMM with pre-packed weights and a fused bias + activation epilogue.
//!
//! `C = act(A · B + bias)` where `A` (`M × K`) is read in place, rows of unit
//! column stride (an NHWC activation buffer or an im2col matrix), and `B`
//! (`K × N`, the layer's weights) is packed once, at layer build time, into
//! column panels of `NR` = two vectors: panel `j` holds
//! `B[.., NR·j .. NR·j + NR]` row by row, zero-padded past `N`, with the bias
//! padded the same way.
//!
//! One micro-kernel body, generic over the vector ([`super::simd::Simd`]),
//! keeps an `MR × NR` tile of `C` in registers and, per step of `k`, loads
//! the panel's two vectors, broadcasts `MR` elements of `A` and issues `2·MR`
//! FMAs; the whole `K` is accumulated in registers (no `C` reloads), and the
//! epilogue adds the bias, clamps, and stores. AVX2+FMA runs it as 6 × 16 in
//! twelve of its 16 ymm registers, AVX-512F as 14 × 32 in 28 of its 32 zmm
//! registers (twice the FMAs per broadcast, and 14 × 14 = 196 rows, a 14 × 14
//! layer, in whole tiles). The driver blocks rows so a block of `A` stays in L2 while the
//! panels stream past it, and splits work over threads by rows (and by column
//! panels when there are few rows). Each element of `C` is computed by the
//! same sequence of FMAs whatever the split, so results do not depend on the
//! thread count.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512, Simd};
#[cfg(target_arch = "x86_64")]
use crate::parallel::{for_each_block, for_each_chunk};

use crate::activation::Activation;

/// Columns per panel of the AVX2 kernel (two 8-lane vectors).
pub(crate) const AVX2_NR: usize = 16;
/// Columns per panel of the AVX-512 kernel (two 16-lane vectors).
pub(crate) const AVX512_NR: usize = 32;

/// Weights `K × N` (and an optional bias) packed for [`gemm`].
#[derive(Clone, Debug, PartialEq)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// Columns per panel: the kernel's NR.
    nr: usize,
    /// `ceil(N / nr)` panels of `K × nr`.
    panels: Vec<f32>,
    /// `ceil(N / nr) · nr` bias values, zero-padded (zeros when there is none).
    bias: Vec<f32>,
}

impl PackedB {
    /// Packs `b` (`K × N`, any strides) and `bias` (`N`) into panels of `nr`
    /// columns.
    ///
    /// # Errors
    /// [`Error::TooLarge`](crate::Error::TooLarge) when the panels cannot be
    /// allocated (the sizes are checked, the allocation fallible); the
    /// planner then keeps the portable GEMM on the stored weight.
    pub(crate) fn new(
        b: ArrayView2<'_, f32>,
        bias: Option<&[f32]>,
        nr: usize,
    ) -> crate::Result<Self> {
        let (k, n) = b.dim();
        let np = n.div_ceil(nr);
        let mut panels = crate::layer::try_filled("packed GEMM weight", &[np, k, nr], 0.0)?;
        for (j, panel) in panels
            .chunks_exact_mut((k * nr).max(1))
            .enumerate()
            .take(np)
        {
            for p in 0..k {
                for c in 0..nr.min(n - j * nr) {
                    panel[p * nr + c] = b[[p, j * nr + c]];
                }
            }
        }
        let mut padded = crate::layer::try_filled("packed GEMM bias", &[np, nr], 0.0)?;
        if let Some(bias) = bias {
            padded[..n].copy_from_slice(bias);
        }
        Ok(PackedB {
            k,
            n,
            nr,
            panels,
            bias: padded,
        })
    }

    /// K × N.
    pub(crate) fn dim(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

/// Whether the AVX2+FMA kernel can run on this CPU (detected once).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX-512F kernel can run on this CPU (detected once; AVX2 and
/// FMA are asked for too, as the other kernels of that plan use them).
pub(crate) fn available_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| available() && is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The row stride (in floats) to copy `a` to before [`gemm`] when its rows,
/// `lda` floats apart, would alias in L1; `None` when they can be read in
/// place.
///
/// Rows a multiple of 4 KiB apart map to the same L1 set, so the up to 14
/// rows of a tile, read at the same depth, compete for one set's 8 ways (12
/// on some cores) together with the panel's lines, and miss. Rows one cache
/// line further apart fall into different sets. Measured on the AMD EPYC
/// Zen 4 (family 25, model 17; 1 thread, AVX-512, median of 100):
/// 7×7×1024→1024 at 46 GMAC/s against 54 for 7×7×1040→1024, and
/// 14×14×1024→512 at 40 against 54.
pub(crate) fn staged_lda(lda: usize) -> Option<usize> {
    const SET_SPAN: usize = 4096 / std::mem::size_of::<f32>();
    (lda >= SET_SPAN && lda.is_multiple_of(SET_SPAN)).then_some(lda + 16)
}

/// Whether [`gemm`] takes an `a` and a `c` with these strides, for `k`
/// columns of `a` and `n` of `c`: rows read (and written) as contiguous runs
/// (unit column stride, except where there is a single column) at
/// non-negative row strides. A driver checks this and runs the portable GEMM
/// for the views it refuses.
pub(crate) fn takes(a_strides: &[isize], c_strides: &[isize], k: usize, n: usize) -> bool {
    (a_strides[1] == 1 || k <= 1)
        && (c_strides[1] == 1 || n <= 1)
        && a_strides[0] >= 0
        && c_strides[0] >= 0
}

/// Checks what every kernel assumes of its operands.
fn check(a: &ArrayView2<'_, f32>, b: &PackedB, c: &ArrayViewMut2<'_, f32>, nr: usize) {
    let (m, k) = a.dim();
    assert!(
        k == b.k && c.dim() == (m, b.n),
        "packed gemm shapes do not chain: {m}×{k} · {:?} → {:?}",
        b.dim(),
        c.dim()
    );
    assert_eq!(b.nr, nr, "weights packed for another kernel");
    assert!(
        takes(a.strides(), c.strides(), k, b.n),
        "packed gemm given views it does not take"
    );
}

/// `c = act(a · b + bias)` with the AVX2+FMA kernel (`parallel`: split over
/// threads); `b` packed with [`AVX2_NR`] columns a panel.
///
/// **Panics** if the shapes do not chain, `b` was packed for another kernel,
/// or the views are not ones [`takes`] accepts (bugs in the caller).
pub(crate) fn gemm(
    cpu: super::Avx2Fma,
    a: ArrayView2<'_, f32>,
    b: &PackedB,
    c: ArrayViewMut2<'_, f32>,
    act: Activation,
    parallel: bool,
) {
    check(&a, b, &c, AVX2_NR);
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    run::<Avx2Kernel>(a, b, c, act, parallel);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, c, act, parallel);
}

/// As [`gemm`], with the AVX-512F kernel; `b` packed with [`AVX512_NR`]
/// columns a panel.
pub(crate) fn gemm_avx512(
    cpu: super::Avx512F,
    a: ArrayView2<'_, f32>,
    b: &PackedB,
    c: ArrayViewMut2<'_, f32>,
    act: Activation,
    parallel: bool,
) {
    check(&a, b, &c, AVX512_NR);
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    run::<Avx512Kernel>(a, b, c, act, parallel);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, c, act, parallel);
}

/// The depth blocks of `K`: all of it up to 768, else equal blocks of at
/// most 512, so that a block of a panel (`kc × NR` floats) stays near L1 and
/// a block of `A` fits L2 with enough rows to reuse each panel. The split
/// depends on `K` only, never on threads.
fn depth_block(k: usize) -> usize {
    if k <= 768 {
        k.max(1)
    } else {
        k.div_ceil(k.div_ceil(512))
    }
}

/// Rows of `A` per block, for `m` rows of depth `kc` and tiles of `mr`
/// rows: a block of `A` (`MC × kc` floats) should stay in L2 while the panels
/// stream past it, and blocks are balanced (49 rows of K = 1024 are one
/// block, not 48 + 1: each block streams all of `B` once).
fn block_rows(m: usize, kc: usize, mr: usize) -> usize {
    let most = ((256 * 1024 / 4) / kc.max(1)).max(mr);
    let blocks = m.div_ceil(most).max(1);
    m.div_ceil(blocks).next_multiple_of(mr)
}

/// Where a depth block stands in the sum, and the epilogue of the last.
#[derive(Clone, Copy)]
struct Step {
    first: bool,
    last: bool,
    act: Activation,
    /// Rows of the next panel's depth block (the same `k × NR` layout), which
    /// this tile prefetches into L2 as it reads its own; null for none.
    prefetch: *const f32,
    /// How many rows (of NR floats) from `prefetch` on, at most the tile's
    /// `k`: spread evenly over its steps.
    prefetch_rows: usize,
}

/// An ISA's micro-kernels: its tile shape and the `#[target_feature]`
/// wrappers of the two generic bodies.
#[cfg(target_arch = "x86_64")]
trait Kernel {
    /// Rows per tile.
    const MR: usize;
    /// Columns per panel (two vectors).
    const NR: usize;
    /// Whether a panel's tiles prefetch the next panel (see
    /// `tile_body`): measured faster with AVX-512 on the Intel Xeon; on the
    /// AMD EPYC with AVX2 a next-panel prefetch was up to 18% slower, so the
    /// AVX2 kernel keeps none.
    const PREFETCH: bool;

    /// [`tile_body`] for `rows` (1–MR) rows.
    ///
    /// # Safety
    /// The ISA is available, and the contract of [`tile_body`] holds.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        k: usize,
        a: *const f32,
        lda: usize,
        rows: usize,
        b: *const f32,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
        step: Step,
    );

    /// [`row_panels4_body`].
    ///
    /// # Safety
    /// The ISA is available, and the contract of [`row_panels4_body`] holds.
    unsafe fn row_panels4(
        k: usize,
        a: *const f32,
        b: *const f32,
        stride: usize,
        bias: *const f32,
        c: *mut f32,
        act: Activation,
    );
}

/// Instantiates the generic bodies for one ISA: a wrapper per row count and
/// the dispatch over them.
#[cfg(target_arch = "x86_64")]
macro_rules! kernel {
    ($kernel:ident, $simd:ty, $features:literal, $mr:literal, $prefetch:literal, [$($r:literal),+]) => {
        struct $kernel;

        impl $kernel {
            /// [`tile_body`] for exactly `R` rows, with the ISA enabled.
            ///
            /// # Safety
            /// As [`tile_body`], on a CPU with the ISA.
            #[inline]
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile_rows<const R: usize>(
                k: usize,
                a: *const f32,
                lda: usize,
                b: *const f32,
                bias: *const f32,
                c: *mut f32,
                ldc: usize,
                cols: usize,
                step: Step,
            ) {
                // SAFETY: passed on from the caller.
                unsafe { tile_body::<$simd, R>(k, a, lda, b, bias, c, ldc, cols, step) }
            }

            /// [`row_panels4_body`] with the ISA enabled.
            ///
            /// # Safety
            /// As [`row_panels4_body`], on a CPU with the ISA.
            #[target_feature(enable = $features)]
            unsafe fn row4(
                k: usize,
                a: *const f32,
                b: *const f32,
                stride: usize,
                bias: *const f32,
                c: *mut f32,
                act: Activation,
            ) {
                // SAFETY: passed on from the caller.
                unsafe { row_panels4_body::<$simd>(k, a, b, stride, bias, c, act) }
            }
        }

        impl Kernel for $kernel {
            const MR: usize = $mr;
            const NR: usize = 2 * <$simd as Simd>::LANES;
            const PREFETCH: bool = $prefetch;

            unsafe fn tile(
                k: usize,
                a: *const f32,
                lda: usize,
                rows: usize,
                b: *const f32,
                bias: *const f32,
                c: *mut f32,
                ldc: usize,
                cols: usize,
                step: Step,
            ) {
                // SAFETY: the contract is passed on unchanged, with R = rows
                // (a short last tile does only its own rows' work).
                unsafe {
                    match rows {
                        $($r => Self::tile_rows::<$r>(k, a, lda, b, bias, c, ldc, cols, step),)+
                        _ => unreachable!("a tile of {rows} rows (1 to MR)"),
                    }
                }
            }

            unsafe fn row_panels4(
                k: usize,
                a: *const f32,
                b: *const f32,
                stride: usize,
                bias: *const f32,
                c: *mut f32,
                act: Activation,
            ) {
                // SAFETY: passed on from the caller.
                unsafe { Self::row4(k, a, b, stride, bias, c, act) }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
kernel!(Avx2Kernel, Avx2, "avx2,fma", 6, false, [6, 5, 4, 3, 2, 1]);
#[cfg(target_arch = "x86_64")]
kernel!(
    Avx512Kernel,
    Avx512,
    "avx512f",
    14,
    true,
    [14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
);

#[cfg(target_arch = "x86_64")]
fn run<K: Kernel>(
    a: ArrayView2<'_, f32>,
    b: &PackedB,
    c: ArrayViewMut2<'_, f32>,
    act: Activation,
    parallel: bool,
) {
    let (m, n) = c.dim();
    if m == 0 || n == 0 {
        return;
    }
    let (mr, nr) = (K::MR, K::NR);
    let panels = n.div_ceil(nr);
    let threads = if parallel {
        crate::parallel::threads()
    } else {
        1
    };
    // Split the column panels when there are fewer rows than a tile a
    // thread, or B is more than four times the size of A (each thread then
    // reads its share of the weights instead of all of them: the late
    // 7×7×1024 layers are bound by reading B); else split rows (multiples of
    // MR). Nothing is allocated. (With one thread both give one block.)
    //
    // In a network a row chunk reads the rows of A that the same core wrote
    // (the depthwise layer before splits rows too), where a column chunk
    // reads all of A, half of it from the other core's cache. The 14×14
    // layers (A 196 × 512, B 512 × 512) split columns when the rule was
    // m < n. On the Intel Xeon (model 207), AVX-512, 2 threads, in-process
    // A/B, 9 pairs of medians: 1.0-224 0.959× and 0.960× the time, 0.75-224
    // 0.947× with rows. (The layer alone, A in this core's cache, is 2–6%
    // slower with rows: measure such rules inside a network.) The same held
    // for the layers of fewer than four tiles a thread, which split columns
    // while the rule was m < 4·MR a thread: 0.5-160's 10×10×256 ones (100
    // rows, 8 tiles of 14) and 0.25-128's 8×8×128 ones (64 rows). On the
    // same Xeon, in-process A/B, 2 threads, blocks of 40 forwards, the
    // median of 9–15 per-pair ratios in three runs: 0.5-160 0.868×, 0.875×,
    // 0.910× the time with rows, 0.25-128 0.857×, 0.946×, 0.903×; networks
    // with no such layer (0.5-224, 0.25-224, 1.0-128) 0.996–1.004×. The AVX2
    // kernel's 6-row tiles split those rows under either rule (0.991× and
    // 0.999×).
    //
    // With more than one thread, about CHUNKS_PER_THREAD chunks a thread,
    // taken as threads free up, rather than one each: a core slowed by other
    // load then does less of the work (row chunks: see below). (In-process
    // A/B, 1.0-224 on 2 threads, ten pairs of medians: 0.4–3% faster in
    // every pair; the 112×112×32→64 pointwise layer 0.90–0.96 → 0.72–0.81
    // ms.) One thread keeps one chunk.
    const CHUNKS_PER_THREAD: usize = 4;
    if (m < threads * mr || 4 * m < n) && panels > 1 {
        // Panels a chunk, as even over the threads as whole panels allow
        // (30 panels on 2 threads: 6 chunks of 5, not 7 of 4 and one of 2).
        let per_chunk = match threads {
            1 => panels,
            _ => crate::parallel::balanced_chunk(panels, threads, CHUNKS_PER_THREAD, 1),
        };
        // Too few column chunks to even out over the threads (MobileNetV2's
        // 7×7 projections, 49 × 960 → 160: 5 panels, of which 2 threads
        // took 3 and 2): each chunk's rows split too, in one part a thread
        // (whole tiles), so that each thread takes the same share. (Those blocks ran
        // 1.18–1.35× ONNX Runtime's time on 2 threads on the Intel Xeon
        // model 207, where the blocks before ran 0.8–0.9×.)
        let uneven = !panels.div_ceil(per_chunk).is_multiple_of(threads);
        let row_chunk = match threads > 1 && uneven && m >= 2 * mr {
            true => m.div_ceil(mr).div_ceil(threads) * mr,
            false => m,
        };
        for_each_block(c, per_chunk * nr, row_chunk, |m0, n0, part| {
            let rows = a.slice(ndarray::s![m0..m0 + part.nrows(), ..]);
            block::<K>(rows, b, n0 / nr, part, act)
        });
    } else {
        // Whole tiles of rows, in chunks as even as the tiles allow (784
        // rows, 56 tiles of 14, on 2 threads: 8 chunks of 7 tiles, 28 a
        // thread), at least 4 tiles a chunk. (A rule of at least 16 tiles a
        // chunk, as each streams all of B, made 16 + 16 + 16 + 8 there: one
        // thread did 32 tiles. On the Zen 4, 2 threads, in-process A/B: that
        // 28×28×256→256 layer 0.530 → 0.463 ms.)
        let tiles = m.div_ceil(mr);
        let chunk = match threads {
            1 => tiles,
            _ => crate::parallel::balanced_chunk(tiles, threads, CHUNKS_PER_THREAD, 1)
                .max(4.min(tiles.div_ceil(threads))),
        };
        for_each_chunk(c, Axis(0), chunk * mr, |m0, part| {
            let rows = a.slice(ndarray::s![m0..m0 + part.nrows(), ..]);
            block::<K>(rows, b, 0, part, act);
        });
    }
}

/// One task: rows `a` (`m × K`) against panels `first_panel..` into `c`
/// (`m × width`, `width` a multiple of NR except at the right edge of `C`).
#[cfg(target_arch = "x86_64")]
fn block<K: Kernel>(
    a: ArrayView2<'_, f32>,
    b: &PackedB,
    first_panel: usize,
    mut c: ArrayViewMut2<'_, f32>,
    act: Activation,
) {
    let (mr, nr) = (K::MR, K::NR);
    let (m, width) = c.dim();
    let k = b.k;
    let lda = a.strides()[0].max(0) as usize;
    let ldc = c.strides()[0].max(0) as usize;
    // A single tile of rows reads each panel once, so there is no panel to
    // keep in L1: take all of K in one pass, reading B in memory order. (The
    // classifier, M = 1 with B from memory: 0.55 ms, against 0.57–0.59 in two
    // depth passes.) Depth blocks never change a result: each output is the
    // same chain of FMAs over k, continued from the value stored in C.
    let kc = if m <= mr { k.max(1) } else { depth_block(k) };
    let mc = block_rows(m, kc, mr);
    let a_ptr = a.as_ptr();
    let c_ptr = c.as_mut_ptr();
    let panels = width.div_ceil(nr);
    for p0 in (0..k).step_by(kc) {
        let depth = kc.min(k - p0);
        // The first depth block starts from zero, later ones add to C; the
        // last one adds the bias and applies the activation.
        let (first, last) = (p0 == 0, p0 + depth == k);
        let step = Step {
            first,
            last,
            act,
            prefetch: std::ptr::null(),
            prefetch_rows: 0,
        };
        for mb in (0..m).step_by(mc) {
            let mb_end = (mb + mc).min(m);
            // A single row in one pass (the classifier): whole panels four
            // at a time, see `row_panels4_body`.
            let mut j0 = 0;
            if mb_end - mb == 1 && first && last {
                while (j0 + 4) * nr <= width {
                    // SAFETY: row mb of `a` has k floats (unit stride); panels
                    // first_panel + j0 .. + 4 exist (their 4·NR columns are
                    // inside `width`), each k × NR floats, k·NR apart, with
                    // 4·NR bias values; `c` row mb holds columns j0·NR..+4·NR.
                    // The ISA was detected (the caller's token).
                    unsafe {
                        K::row_panels4(
                            k,
                            a_ptr.add(mb * lda),
                            b.panels[(first_panel + j0) * k * nr..][..4 * k * nr].as_ptr(),
                            k * nr,
                            b.bias[(first_panel + j0) * nr..][..4 * nr].as_ptr(),
                            c_ptr.add(mb * ldc + j0 * nr),
                            act,
                        );
                    }
                    j0 += 4;
                }
            }
            // Panel j's depth block, its bias, and its columns in `c`.
            let panel = |j: usize| {
                let p = &b.panels[(first_panel + j) * k * nr + p0 * nr..][..depth * nr];
                (
                    p.as_ptr(),
                    b.bias[(first_panel + j) * nr..][..nr].as_ptr(),
                    nr.min(width - j * nr),
                )
            };
            for j in j0..panels {
                let next = if K::PREFETCH && j + 1 < panels {
                    panel(j + 1).0
                } else {
                    std::ptr::null()
                };
                let (panel, bias, cols) = panel(j);
                // The panel's tiles bring the next panel into L2 while they
                // stream their own, each a share of its rows spread over its
                // steps: a layer with few rows (7×7, 49) reads each panel from
                // L3 or memory and would otherwise wait on it (see
                // `tile_body`). (When the first tile prefetched the whole
                // panel, the fetches came in a burst and the other tiles had
                // none in flight. Intel Xeon model 207, AVX-512, in-process
                // A/B, 11–15 pairs of blocks: 1.0-224 0.961×, 0.971×, 0.982×
                // the time on 1 thread and 0.963×, 0.989×, 0.995× on 2; v2
                // 0.985× on both; 0.75-224 and 0.5-160 0.98–1.01×.)
                let count = tiles(mb, mb_end, mr).count();
                for (t, (m0, rows)) in tiles(mb, mb_end, mr).enumerate() {
                    let (lo, hi) = (t * depth / count, (t + 1) * depth / count);
                    let step = Step {
                        prefetch: match next.is_null() || hi == lo {
                            true => std::ptr::null(),
                            false => next.wrapping_add(lo * nr),
                        },
                        prefetch_rows: hi - lo,
                        ..step
                    };
                    // SAFETY: `a` is a view of m × k with row stride lda
                    // ≥ 0 and unit column stride (checked in `gemm`), so
                    // rows m0..m0+rows and columns p0..p0+depth are in
                    // bounds; `panel` holds depth × NR floats and `bias`
                    // NR; `c` is a unique view of m × width with row
                    // stride ldc and unit column stride, and the kernel
                    // reads (when not `first`) and writes only rows
                    // m0..m0+rows, columns j·NR..j·NR+cols of it; the
                    // prefetched rows lo..hi of `next` are null or rows of
                    // panel j + 1's depth × NR floats. The ISA was detected
                    // (the caller's token).
                    unsafe {
                        K::tile(
                            depth,
                            a_ptr.add(m0 * lda + p0),
                            lda,
                            rows,
                            panel,
                            bias,
                            c_ptr.add(m0 * ldc + j * nr),
                            ldc,
                            cols,
                            step,
                        );
                    }
                }
            }
        }
    }
}

/// Rows `start..end` as tiles of at most `mr` rows, as even as can be (49
/// rows of 14-row tiles: 13, 12, 12, 12, not 14, 14, 14, 7; 49 of 6-row
/// tiles: 6 × 4 and 5 × 5, not 6 × 8 and 1, whose last tile would stream a
/// whole panel for one row): `(first row, rows)`.
fn tiles(start: usize, end: usize, mr: usize) -> impl Iterator<Item = (usize, usize)> {
    let m = end - start;
    let n = m.div_ceil(mr).max(1);
    let (base, extra) = (m / n, m % n);
    (0..n)
        .scan(start, move |row, t| {
            let rows = base + usize::from(t < extra);
            let first = *row;
            *row += rows;
            Some((first, rows))
        })
        .filter(|&(_, rows)| rows > 0)
}

/// The widest panel of any kernel, for the stack buffers of partial tiles.
const MAX_NR: usize = AVX512_NR;

/// One row of `A` (all of K) against four consecutive whole panels, bias
/// and activation fused: eight independent accumulators and four streams of
/// `B` at once. A one-row tile has one panel's two FMA chains to wait on and
/// one stream of `B` from memory; the classifier (M = 1, 4 MB of weights) is
/// that case: 1 × 1024 × 1000 went from 0.48–0.53 to 0.31–0.34 ms with caches
/// flushed between calls (interleaved A/B, 1 thread, AVX2). Each output is the
/// same chain of FMAs over k as in the tile, so the bits do not change.
///
/// # Safety
/// `S`'s ISA is enabled; `a` points at k floats; `b` at four panels of
/// k × NR floats (NR = 2·LANES), `stride` floats apart; `bias` at 4·NR
/// floats; `c` at 4·NR writable floats.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn row_panels4_body<S: Simd>(
    k: usize,
    a: *const f32,
    b: *const f32,
    stride: usize,
    bias: *const f32,
    c: *mut f32,
    act: Activation,
) {
    let (l, nr) = (S::LANES, 2 * S::LANES);
    // SAFETY (whole body): offsets stay inside the regions of the contract:
    // p < k, q < 4, lanes < NR.
    unsafe {
        let mut acc = [[S::zero(); 2]; 4];
        for p in 0..k {
            let av = S::splat(a.add(p));
            for (q, acc) in acc.iter_mut().enumerate() {
                let bq = b.add(q * stride + p * nr);
                acc[0] = S::fma(av, S::load(bq), acc[0]);
                acc[1] = S::fma(av, S::load(bq.add(l)), acc[1]);
            }
        }
        for (q, acc) in acc.iter().enumerate() {
            for (h, &v) in acc.iter().enumerate() {
                let o = q * nr + l * h;
                S::store(c.add(o), S::activate(act, S::add(v, S::load(bias.add(o)))));
            }
        }
    }
}

/// The `R × NR` micro-kernel (NR = 2·LANES). Columns past `cols` are
/// computed on the zero padding of the panel and not stored.
///
/// # Safety
/// `S`'s ISA is enabled; `a` points at `R` rows of `k` floats spaced `lda`
/// apart; `b` at `k × NR` floats; `bias` at NR floats; `c` at `R` rows of
/// `cols` (1–NR) writable floats spaced `ldc` apart, which hold the partial
/// sums of the earlier depth blocks unless `step.first`; `step.prefetch` is
/// null or points at `step.prefetch_rows` ≤ `k` rows of NR floats (only
/// prefetched, never read).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_body<S: Simd, const R: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    step: Step,
) {
    let (l, nr) = (S::LANES, 2 * S::LANES);
    debug_assert!(R >= 1 && (1..=nr).contains(&cols) && nr <= MAX_NR);
    // SAFETY (whole body): the pointer offsets stay within the regions the
    // caller guarantees: row r < R, p < k, panel offsets < NR·k; a partial
    // tile reads and writes only its `cols` columns (masked).
    unsafe {
        let mut ar = [a; R];
        for (r, p) in ar.iter_mut().enumerate() {
            *p = a.add(r * lda);
        }
        // Later depth blocks start from what the earlier ones stored. Each
        // loop over the rows here and below has a small body with no branch
        // (the cases are chosen outside it), so that the compiler unrolls it
        // and keeps `acc` in registers from the first row to the last store:
        // with the branches inside, the 11- to 14-row AVX-512 tiles kept
        // `acc` on the stack (zeroed by a call to memset, stored after the
        // last step and read back row by row for the epilogue).
        let mut acc = [[S::zero(); 2]; R];
        if !step.first {
            if cols == nr {
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let src = c.add(r * ldc);
                    *acc_r = [S::load(src), S::load(src.add(l))];
                }
            } else if cols >= l {
                // Masked: the lanes past `cols` read as zero, and no memory
                // past the row's columns is touched.
                let mask = S::first(cols - l);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let src = c.add(r * ldc);
                    *acc_r = [S::load(src), S::load_masked(src.add(l), mask)];
                }
            } else {
                let mask = S::first(cols);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    acc_r[0] = S::load_masked(c.add(r * ldc), mask);
                }
            }
        }
        let (mut pf, mut due) = (step.prefetch, 0usize);
        for p in 0..k {
            // The tile's share of the next panel's rows, one row (two lines
            // of 64 B with AVX-512) every k / prefetch_rows steps.
            // Prefetches do not fault and change no result. (A prefetch of
            // the next panel, measured on the Intel Xeon (model 167),
            // AVX-512, 6 pairs taking turns: 1.0-224 0.940x the time on 1
            // thread, 0.947x on 2; the 7x7x512->1024 layer 0.48-0.53 ->
            // 0.35-0.38 ms, 7x7x1024->1024 1.08-1.16 -> 0.84-0.88; 0.5-160
            // 1.001x. The AVX2 kernel, there: 0.969x on 1.0-224 and 1.026x on
            // 0.25-128; it keeps none, see `Kernel::PREFETCH`.)
            if !pf.is_null() {
                due += step.prefetch_rows;
                if due >= k {
                    due -= k;
                    use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
                    _mm_prefetch::<_MM_HINT_T1>(pf.cast());
                    _mm_prefetch::<_MM_HINT_T1>(pf.add(l).cast());
                    pf = pf.add(nr);
                }
            }
            let b0 = S::load(b.add(p * nr));
            let b1 = S::load(b.add(p * nr + l));
            for (r, ar) in ar.into_iter().enumerate() {
                let av = S::splat(ar.add(p));
                acc[r][0] = S::fma(av, b0, acc[r][0]);
                acc[r][1] = S::fma(av, b1, acc[r][1]);
            }
        }
        if step.last {
            let (bias0, bias1) = (S::load(bias), S::load(bias.add(l)));
            for acc_r in acc.iter_mut() {
                *acc_r = [S::add(acc_r[0], bias0), S::add(acc_r[1], bias1)];
            }
            // The activation keeps NaN as the scalar Activation::apply does.
            match step.act {
                Activation::Identity => {}
                Activation::Relu => activate_rows::<S, R>(&mut acc, Activation::Relu),
                Activation::Relu6 => activate_rows::<S, R>(&mut acc, Activation::Relu6),
            }
        }
        if cols == nr {
            for (r, acc_r) in acc.iter().enumerate() {
                let dst = c.add(r * ldc);
                S::store(dst, acc_r[0]);
                S::store(dst.add(l), acc_r[1]);
            }
        } else if cols >= l {
            // Masked: nothing past the row's columns is written.
            let mask = S::first(cols - l);
            for (r, acc_r) in acc.iter().enumerate() {
                let dst = c.add(r * ldc);
                S::store(dst, acc_r[0]);
                S::store_masked(dst.add(l), mask, acc_r[1]);
            }
        } else {
            let mask = S::first(cols);
            for (r, acc_r) in acc.iter().enumerate() {
                S::store_masked(c.add(r * ldc), mask, acc_r[0]);
            }
        }
    }
}

/// `act` on every accumulator of a tile; called with a constant `act`, so
/// that each loop is one instruction or two a vector, without a branch.
///
/// # Safety
/// `S`'s ISA is enabled.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn activate_rows<S: Simd, const R: usize>(acc: &mut [[S::V; 2]; R], act: Activation) {
    // SAFETY: the ISA is enabled (the contract); no memory is touched.
    unsafe {
        for acc_r in acc.iter_mut() {
            *acc_r = [S::activate(act, acc_r[0]), S::activate(act, acc_r[1])];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    /// A kernel under test: its name, panel width, and the call.
    type Gemm =
        Box<dyn Fn(ArrayView2<f32>, &PackedB, ArrayViewMut2<f32>, Activation, bool) + Send + Sync>;

    /// Every GEMM kernel this CPU runs (saying which it cannot).
    fn kernels() -> Vec<(&'static str, usize, Gemm)> {
        let mut v: Vec<(&'static str, usize, Gemm)> = Vec::new();
        match super::super::Avx2Fma::detect() {
            Some(cpu) => v.push((
                "avx2",
                AVX2_NR,
                Box::new(move |a, b, c, act, par| gemm(cpu, a, b, c, act, par)),
            )),
            None => eprintln!("skipping the AVX2 kernel: no AVX2+FMA on this CPU"),
        }
        match super::super::Avx512F::detect() {
            Some(cpu) => v.push((
                "avx512",
                AVX512_NR,
                Box::new(move |a, b, c, act, par| gemm_avx512(cpu, a, b, c, act, par)),
            )),
            None => eprintln!("skipping the AVX-512 kernel: no AVX-512F on this CPU"),
        }
        v
    }

    fn naive(a: ArrayView2<f32>, b: ArrayView2<f32>, bias: &[f32]) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            bias[j] as f64
                + (0..a.ncols())
                    .map(|p| a[[i, p]] as f64 * b[[p, j]] as f64)
                    .sum::<f64>()
        })
    }

    /// A pool of two threads (whatever the machine has).
    #[cfg(feature = "rayon")]
    fn two_threads() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    }

    /// Every edge: M around the 6- and 14-row tiles, N around the 16- and
    /// 32-column panels (four whole panels of either, which one row takes
    /// together, then a tail), K from 1 up (1030: several depth blocks, or
    /// one pass for a single tile), into a NaN-poisoned wider buffer whose
    /// other columns must stay untouched.
    #[test]
    fn sizes_and_edges_against_naive() {
        #[cfg(feature = "rayon")]
        let pool = two_threads();
        for (name, nr, gemm) in kernels() {
            for m in [1, 5, 6, 7, 11, 12, 13, 14, 15, 25, 28, 29, 50] {
                for n in [1, 15, 16, 17, 31, 33, 70, 135] {
                    for k in [1, 2, 9, 64, 1030] {
                        let a = Array2::from_shape_fn((m, k), |(i, j)| {
                            ((i * 7 + j * 3) % 11) as f32 / 4.0 - 1.0
                        });
                        let b = Array2::from_shape_fn((k, n), |(i, j)| {
                            ((i * 5 + j * 2) % 13) as f32 / 8.0 - 0.75
                        });
                        let bias: Vec<f32> = (0..n).map(|j| j as f32 / 16.0 - 0.5).collect();
                        let packed = PackedB::new(b.view(), Some(&bias), nr).unwrap();
                        let mut big = Array2::from_elem((m, n + 3), f32::NAN);
                        // Even m on 2 threads: row chunks, column chunks, and
                        // column chunks split in rows (5 AVX-512 panels).
                        let run = || {
                            gemm(
                                a.view(),
                                &packed,
                                big.slice_mut(s![.., 1..n + 1]),
                                Activation::Identity,
                                m % 2 == 0,
                            )
                        };
                        #[cfg(feature = "rayon")]
                        pool.install(run);
                        #[cfg(not(feature = "rayon"))]
                        {
                            let mut run = run;
                            run();
                        }
                        let want = naive(a.view(), b.view(), &bias);
                        for i in 0..m {
                            assert!(
                                big[[i, 0]].is_nan()
                                    && big[[i, n + 1]].is_nan()
                                    && big[[i, n + 2]].is_nan()
                            );
                            for j in 0..n {
                                // Dyadic inputs: exact.
                                assert_eq!(
                                    big[[i, j + 1]] as f64,
                                    want[[i, j]],
                                    "{name}: m={m} n={n} k={k} at ({i}, {j})"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// K large enough to split into depth blocks and rows into several L2 blocks.
    #[test]
    fn several_row_blocks() {
        for (name, nr, gemm) in kernels() {
            let (m, k, n) = (400, 1100, 40);
            assert!(
                block_rows(m, depth_block(k), 14) < m,
                "the case must span several row blocks"
            );
            assert!(depth_block(k) < k, "and several depth blocks");
            let a =
                Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 4.0 - 1.0);
            let b =
                Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 2) % 13) as f32 / 8.0 - 0.75);
            let packed = PackedB::new(b.view(), None, nr).unwrap();
            let mut c = Array2::from_elem((m, n), f32::NAN);
            gemm(a.view(), &packed, c.view_mut(), Activation::Identity, true);
            let want = naive(a.view(), b.view(), &[0.0; 40]);
            for ((i, j), &v) in c.indexed_iter() {
                // Multiples of 1/32 below 2^19: exact.
                assert_eq!(v as f64, want[[i, j]], "{name}: ({i}, {j})");
            }
        }
    }

    #[test]
    fn activations_and_refusals() {
        for (name, nr, gemm) in kernels() {
            let a = Array2::from_shape_fn((7, 3), |(i, j)| i as f32 - j as f32 * 2.0);
            let b = Array2::from_elem((3, 2), 1.5f32);
            let packed = PackedB::new(b.view(), None, nr).unwrap();
            let mut c = Array2::zeros((7, 2));
            gemm(a.view(), &packed, c.view_mut(), Activation::Relu6, true);
            for (i, row) in c.rows().into_iter().enumerate() {
                let v = (i as f32 * 3.0 - 6.0) * 1.5;
                assert_eq!(row[0], v.clamp(0.0, 6.0), "{name}");
            }
            // NaN passes through ReLU and ReLU6 as the scalar path lets it.
            let a = Array2::from_elem((2, 1), f32::NAN);
            let b = Array2::from_elem((1, 3), 1.0f32);
            let mut c = Array2::zeros((2, 3));
            for act in [Activation::Relu, Activation::Relu6] {
                gemm(
                    a.view(),
                    &PackedB::new(b.view(), None, nr).unwrap(),
                    c.view_mut(),
                    act,
                    false,
                );
                assert!(c.iter().all(|v| v.is_nan()), "{name}: {act:?} lost a NaN");
            }
        }
        // A column-strided A is handed back to the caller.
        let a = Array2::from_shape_fn((7, 3), |(i, j)| i as f32 - j as f32 * 2.0);
        let c = Array2::<f32>::zeros((7, 2));
        let at = a.t().as_standard_layout().into_owned();
        assert_eq!(at.t().strides(), &[1, 7]);
        assert!(!takes(at.t().strides(), c.strides(), 3, 2));
        assert!(takes(a.strides(), c.strides(), 3, 2));
    }
}
