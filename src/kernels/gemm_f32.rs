//! f32 GEMM with pre-packed weights and a fused bias + activation epilogue.
//!
//! `C = act(A · B + bias)` where `A` (`M × K`) is read in place, rows of unit
//! column stride (an NHWC activation buffer or an im2col matrix), and `B`
//! (`K × N`, the layer's weights) is packed once, at layer build time, into
//! column panels of [`NR`] = 16: panel `j` holds `B[.., 16j .. 16j + 16]`
//! row by row, zero-padded past `N`, with the bias padded the same way.
//!
//! The AVX2+FMA micro-kernel keeps a 6 × 16 tile of `C` in twelve ymm
//! registers and, per step of `k`, loads two vectors of the panel, broadcasts
//! six elements of `A` and issues twelve FMAs; the whole `K` is accumulated in
//! registers (no `C` reloads), and the epilogue adds the bias, clamps, and
//! stores. The driver blocks rows so a block of `A` stays in L2 while the
//! panels stream past it, and splits work over threads by rows (and by column
//! panels when there are few rows). Each element of `C` is computed by the
//! same sequence of FMAs whatever the split, so results do not depend on the
//! thread count.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

#[cfg(target_arch = "x86_64")]
use crate::parallel::for_each_chunk;

use crate::activation::Activation;

/// Columns per panel (two AVX vectors).
pub(crate) const NR: usize = 16;
/// Rows per micro-tile.
pub(crate) const MR: usize = 6;

/// Weights `K × N` (and an optional bias) packed for [`gemm`].
#[derive(Clone, Debug, PartialEq)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// `ceil(N / 16)` panels of `K × 16`.
    panels: Vec<f32>,
    /// `ceil(N / 16) · 16` bias values, zero-padded (zeros when there is none).
    bias: Vec<f32>,
}

impl PackedB {
    /// Packs `b` (`K × N`, any strides) and `bias` (`N`).
    pub(crate) fn new(b: ArrayView2<'_, f32>, bias: Option<&[f32]>) -> Self {
        let (k, n) = b.dim();
        let np = n.div_ceil(NR);
        let mut panels = vec![0.0; np * k * NR];
        for (j, panel) in panels
            .chunks_exact_mut((k * NR).max(1))
            .enumerate()
            .take(np)
        {
            for p in 0..k {
                for c in 0..NR.min(n - j * NR) {
                    panel[p * NR + c] = b[[p, j * NR + c]];
                }
            }
        }
        let mut padded = vec![0.0; np * NR];
        if let Some(bias) = bias {
            padded[..n].copy_from_slice(bias);
        }
        PackedB {
            k,
            n,
            panels,
            bias: padded,
        }
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

/// `c = act(a · b + bias)` with the AVX2+FMA kernel (`parallel`: split over
/// threads).
///
/// **Panics** if the shapes do not chain or the views are not ones
/// [`takes`] accepts (bugs in the caller, which checks both).
pub(crate) fn gemm(
    cpu: super::Avx2Fma,
    a: ArrayView2<'_, f32>,
    b: &PackedB,
    c: ArrayViewMut2<'_, f32>,
    act: Activation,
    parallel: bool,
) {
    let (m, k) = a.dim();
    assert!(
        k == b.k && c.dim() == (m, b.n),
        "packed gemm shapes do not chain: {m}×{k} · {:?} → {:?}",
        b.dim(),
        c.dim()
    );
    assert!(
        takes(a.strides(), c.strides(), k, b.n),
        "packed gemm given views it does not take"
    );
    if m == 0 || b.n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    run(a, b, c, act, parallel);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (cpu, a, c, act, parallel);
    #[cfg(target_arch = "x86_64")]
    let _ = cpu;
}

/// The depth blocks of `K`: all of it up to 768, else equal blocks of at
/// most 512, so that a block of a panel (`kc × 16` floats) stays in L1 and a
/// block of `A` fits L2 with enough rows to reuse each panel. The split
/// depends on `K` only, never on threads.
fn depth_block(k: usize) -> usize {
    if k <= 768 {
        k.max(1)
    } else {
        k.div_ceil(k.div_ceil(512))
    }
}

/// Rows of `A` per block, for `m` rows of depth `kc`: a block of `A`
/// (`MC × kc` floats) should stay in L2 while the panels stream past it, and
/// blocks are balanced (49 rows of K = 1024 are one block, not 48 + 1: each
/// block streams all of `B` once).
fn block_rows(m: usize, kc: usize) -> usize {
    let most = ((256 * 1024 / 4) / kc.max(1)).max(MR);
    let blocks = m.div_ceil(most).max(1);
    m.div_ceil(blocks).next_multiple_of(MR)
}

#[cfg(target_arch = "x86_64")]
fn run(
    a: ArrayView2<'_, f32>,
    b: &PackedB,
    c: ArrayViewMut2<'_, f32>,
    act: Activation,
    parallel: bool,
) {
    let (m, n) = c.dim();
    let panels = n.div_ceil(NR);
    let threads = if parallel {
        crate::parallel::threads()
    } else {
        1
    };
    // Split the column panels when there are fewer rows than columns (each
    // thread then reads its share of the weights instead of all of them: the
    // late 7×7×1024 layers are bound by reading B) or too few rows to split;
    // else split rows (multiples of MR). Nothing is allocated.
    //
    // With more than one thread, about CHUNKS_PER_THREAD chunks a thread,
    // taken as threads free up, rather than one each: a core slowed by other
    // load then does less of the work. Row chunks keep at least MIN_ROWS rows,
    // as each streams all of B. (In-process A/B, 1.0-224 on 2 threads, ten
    // pairs of medians: 0.4–3% faster in every pair; the 112×112×32→64
    // pointwise layer 0.90–0.96 → 0.72–0.81 ms.) One thread keeps one chunk.
    const CHUNKS_PER_THREAD: usize = 4;
    const MIN_ROWS: usize = 16 * MR;
    let chunks = if threads > 1 {
        threads * CHUNKS_PER_THREAD
    } else {
        1
    };
    if (m < n || m < threads * 4 * MR) && panels > 1 {
        let col_chunk = panels.div_ceil(chunks.min(panels)) * NR;
        for_each_chunk(c, Axis(1), col_chunk, |n0, part| {
            block(a, b, n0 / NR, part, act)
        });
    } else {
        let row_chunk = m
            .div_ceil(chunks)
            .max(MIN_ROWS.min(m.div_ceil(threads)))
            .next_multiple_of(MR);
        for_each_chunk(c, Axis(0), row_chunk, |m0, part| {
            let rows = a.slice(ndarray::s![m0..m0 + part.nrows(), ..]);
            block(rows, b, 0, part, act);
        });
    }
}

/// One task: rows `a` (`m × K`) against panels `first_panel..` into `c`
/// (`m × width`, `width` a multiple of 16 except at the right edge of `C`).
#[cfg(target_arch = "x86_64")]
fn block(
    a: ArrayView2<'_, f32>,
    b: &PackedB,
    first_panel: usize,
    mut c: ArrayViewMut2<'_, f32>,
    act: Activation,
) {
    let (m, width) = c.dim();
    let k = b.k;
    let lda = a.strides()[0].max(0) as usize;
    let ldc = c.strides()[0].max(0) as usize;
    // A single tile of rows reads each panel once, so there is no panel to
    // keep in L1: take all of K in one pass, reading B in memory order. (The
    // classifier, M = 1 with B from memory: 0.55 ms, against 0.57–0.59 in two
    // depth passes.) Depth blocks never change a result: each output is the
    // same chain of FMAs over k, continued from the value stored in C.
    let kc = if m <= MR { k.max(1) } else { depth_block(k) };
    let mc = block_rows(m, kc);
    let a_ptr = a.as_ptr();
    let c_ptr = c.as_mut_ptr();
    for p0 in (0..k).step_by(kc) {
        let depth = kc.min(k - p0);
        // The first depth block starts from zero, later ones add to C; the
        // last one adds the bias and applies the activation.
        let (first, last) = (p0 == 0, p0 + depth == k);
        for mb in (0..m).step_by(mc) {
            let mb_end = (mb + mc).min(m);
            // A single row in one pass (the classifier): whole panels four
            // at a time, see `row_panels4`.
            let mut j0 = 0;
            if mb_end - mb == 1 && first && last {
                while (j0 + 4) * NR <= width {
                    // SAFETY: row mb of `a` has k floats (unit stride); panels
                    // first_panel + j0 .. + 4 exist (their 64 columns are
                    // inside `width`), each k × 16 floats, `PANEL` apart, with
                    // 64 bias values; `c` row mb holds columns j0·16..+64.
                    unsafe {
                        row_panels4(
                            k,
                            a_ptr.add(mb * lda),
                            b.panels[(first_panel + j0) * k * NR..][..4 * k * NR].as_ptr(),
                            k * NR,
                            b.bias[(first_panel + j0) * NR..][..4 * NR].as_ptr(),
                            c_ptr.add(mb * ldc + j0 * NR),
                            act,
                        );
                    }
                    j0 += 4;
                }
            }
            for j in j0..width.div_ceil(NR) {
                let panel = &b.panels[(first_panel + j) * k * NR + p0 * NR..][..depth * NR];
                let bias = &b.bias[(first_panel + j) * NR..][..NR];
                let cols = NR.min(width - j * NR);
                for m0 in (mb..mb_end).step_by(MR) {
                    let rows = MR.min(mb_end - m0);
                    // SAFETY: `a` is a view of m × k with row stride lda ≥ 0
                    // and unit column stride (checked in `gemm`), so rows
                    // m0..m0+rows and columns p0..p0+depth are in bounds;
                    // `panel` holds depth × 16 floats and `bias` 16; `c` is a
                    // unique view of m × width with row stride ldc and unit
                    // column stride, and the kernel reads (when not `first`)
                    // and writes only rows m0..m0+rows, columns
                    // j·16..j·16+cols of it. The CPU has AVX2 and FMA
                    // (`available()` was checked in `gemm`).
                    unsafe {
                        tile_avx2(
                            depth,
                            a_ptr.add(m0 * lda + p0),
                            lda,
                            rows,
                            panel.as_ptr(),
                            bias.as_ptr(),
                            c_ptr.add(m0 * ldc + j * NR),
                            ldc,
                            cols,
                            Step { first, last, act },
                        );
                    }
                }
            }
        }
    }
}

/// One row of `A` (all of K) against four consecutive whole panels, bias
/// and activation fused: eight independent accumulators and four streams of
/// `B` at once. A one-row tile has one panel's two FMA chains to wait on and
/// one stream of `B` from memory; the classifier (M = 1, 4 MB of weights) is
/// that case: 1 × 1024 × 1000 went from 0.48–0.53 to 0.31–0.34 ms with caches
/// flushed between calls (interleaved A/B, 1 thread). Each output is the same
/// chain of FMAs over k as in the tile, so the bits do not change.
///
/// # Safety
/// AVX2 and FMA are available; `a` points at k floats; `b` at four panels of
/// k × 16 floats, `stride` floats apart; `bias` at 64 floats; `c` at 64
/// writable floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_panels4(
    k: usize,
    a: *const f32,
    b: *const f32,
    stride: usize,
    bias: *const f32,
    c: *mut f32,
    act: Activation,
) {
    use super::lanes::activate;
    use std::arch::x86_64::*;
    // SAFETY (whole body): offsets stay inside the regions of the contract:
    // p < k, q < 4, lanes < 16.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        for p in 0..k {
            let av = _mm256_broadcast_ss(&*a.add(p));
            for (q, acc) in acc.iter_mut().enumerate() {
                let bq = b.add(q * stride + p * NR);
                acc[0] = _mm256_fmadd_ps(av, _mm256_loadu_ps(bq), acc[0]);
                acc[1] = _mm256_fmadd_ps(av, _mm256_loadu_ps(bq.add(8)), acc[1]);
            }
        }
        let finish = |v: __m256| activate(act, v);
        for (q, acc) in acc.iter().enumerate() {
            for (h, &v) in acc.iter().enumerate() {
                let o = q * NR + 8 * h;
                _mm256_storeu_ps(
                    c.add(o),
                    finish(_mm256_add_ps(v, _mm256_loadu_ps(bias.add(o)))),
                );
            }
        }
    }
}

/// Where a depth block stands in the sum, and the epilogue of the last.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Step {
    first: bool,
    last: bool,
    act: Activation,
}

/// The 6 × 16 micro-kernel, for `rows` (1–6) rows: dispatches to the build
/// for that row count, so a short last tile (49 = 8·6 + 1 rows) does only
/// its own rows' work. Columns past `cols` are computed on the zero padding
/// of the panel and not stored.
///
/// # Safety
/// AVX2 and FMA are available; `a` points at `rows` (1–6) rows of `k` floats
/// spaced `lda` apart; `b` at `k × 16` floats; `bias` at 16 floats; `c` at
/// `rows` rows of `cols` (1–16) writable floats spaced `ldc` apart, which
/// hold the partial sums of the earlier depth blocks unless `step.first`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2(
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
    // SAFETY: the contract is passed on unchanged, with R = rows.
    unsafe {
        match rows {
            6 => tile_rows::<6>(k, a, lda, b, bias, c, ldc, cols, step),
            5 => tile_rows::<5>(k, a, lda, b, bias, c, ldc, cols, step),
            4 => tile_rows::<4>(k, a, lda, b, bias, c, ldc, cols, step),
            3 => tile_rows::<3>(k, a, lda, b, bias, c, ldc, cols, step),
            2 => tile_rows::<2>(k, a, lda, b, bias, c, ldc, cols, step),
            _ => tile_rows::<1>(k, a, lda, b, bias, c, ldc, cols, step),
        }
    }
}

/// [`tile_avx2`] for exactly `R` rows.
///
/// # Safety
/// As [`tile_avx2`] with `rows = R`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
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
    use super::lanes::activate;
    use std::arch::x86_64::*;
    debug_assert!((1..=MR).contains(&R) && (1..=NR).contains(&cols));
    // SAFETY (whole body): the pointer offsets stay within the regions the
    // caller guarantees: row r < R, p < k, panel offsets < 16·k.
    unsafe {
        let mut ar = [a; R];
        for (r, p) in ar.iter_mut().enumerate() {
            *p = a.add(r * lda);
        }
        // Later depth blocks start from what the earlier ones stored.
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        if !step.first {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let src = c.add(r * ldc);
                if cols == NR {
                    acc_r[0] = _mm256_loadu_ps(src);
                    acc_r[1] = _mm256_loadu_ps(src.add(8));
                } else {
                    let mut tmp = [0f32; NR];
                    std::ptr::copy_nonoverlapping(src, tmp.as_mut_ptr(), cols);
                    acc_r[0] = _mm256_loadu_ps(tmp.as_ptr());
                    acc_r[1] = _mm256_loadu_ps(tmp.as_ptr().add(8));
                }
            }
        }
        for p in 0..k {
            let b0 = _mm256_loadu_ps(b.add(p * NR));
            let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
            for (r, ar) in ar.into_iter().enumerate() {
                let av = _mm256_broadcast_ss(&*ar.add(p));
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
        }
        let zero = _mm256_setzero_ps();
        let (bias0, bias1) = if step.last {
            (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8)))
        } else {
            (zero, zero)
        };
        // The activation keeps NaN as the scalar Activation::apply does
        // (`lanes::activate`: max/min return their second operand on NaN).
        let act = if step.last {
            step.act
        } else {
            Activation::Identity
        };
        let finish = |v: __m256| activate(act, v);
        for (r, acc_r) in acc.iter().enumerate() {
            let (v0, v1) = if step.last {
                (
                    finish(_mm256_add_ps(acc_r[0], bias0)),
                    finish(_mm256_add_ps(acc_r[1], bias1)),
                )
            } else {
                (acc_r[0], acc_r[1])
            };
            let dst = c.add(r * ldc);
            if cols == NR {
                _mm256_storeu_ps(dst, v0);
                _mm256_storeu_ps(dst.add(8), v1);
            } else {
                let mut tmp = [0f32; NR];
                _mm256_storeu_ps(tmp.as_mut_ptr(), v0);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), v1);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, cols);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    fn naive(a: ArrayView2<f32>, b: ArrayView2<f32>, bias: &[f32]) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            bias[j] as f64
                + (0..a.ncols())
                    .map(|p| a[[i, p]] as f64 * b[[p, j]] as f64)
                    .sum::<f64>()
        })
    }

    /// Every edge: M around the 6-row tile, N around the 16-column panel, K
    /// from 1 up (1030: several depth blocks, or one pass when M ≤ 6), into a
    /// NaN-poisoned wider buffer whose other columns must stay untouched.
    #[test]
    fn sizes_and_edges_against_naive() {
        let Some(cpu) = super::super::Avx2Fma::detect() else {
            eprintln!("skipping: no AVX2+FMA on this CPU (the portable path is tested elsewhere)");
            return;
        };
        for m in [1, 5, 6, 7, 12, 13, 50] {
            // 70: four whole panels (one row takes them together), then 6 columns.
            for n in [1, 15, 16, 17, 33, 70] {
                for k in [1, 2, 9, 64, 1030] {
                    let a = Array2::from_shape_fn((m, k), |(i, j)| {
                        ((i * 7 + j * 3) % 11) as f32 / 4.0 - 1.0
                    });
                    let b = Array2::from_shape_fn((k, n), |(i, j)| {
                        ((i * 5 + j * 2) % 13) as f32 / 8.0 - 0.75
                    });
                    let bias: Vec<f32> = (0..n).map(|j| j as f32 / 16.0 - 0.5).collect();
                    let packed = PackedB::new(b.view(), Some(&bias));
                    let mut big = Array2::from_elem((m, n + 3), f32::NAN);
                    gemm(
                        cpu,
                        a.view(),
                        &packed,
                        big.slice_mut(s![.., 1..n + 1]),
                        Activation::Identity,
                        m % 2 == 0,
                    );
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
                                "m={m} n={n} k={k} at ({i}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// K large enough to split into depth blocks and rows into several L2 blocks.
    #[test]
    fn several_row_blocks() {
        let Some(cpu) = super::super::Avx2Fma::detect() else {
            eprintln!("skipping: no AVX2+FMA on this CPU");
            return;
        };
        let (m, k, n) = (400, 1100, 20);
        assert!(
            block_rows(m, depth_block(k)) < m,
            "the case must span several row blocks"
        );
        assert!(depth_block(k) < k, "and several depth blocks");
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 4.0 - 1.0);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 2) % 13) as f32 / 8.0 - 0.75);
        let packed = PackedB::new(b.view(), None);
        let mut c = Array2::from_elem((m, n), f32::NAN);
        gemm(
            cpu,
            a.view(),
            &packed,
            c.view_mut(),
            Activation::Identity,
            true,
        );
        let want = naive(a.view(), b.view(), &[0.0; 20]);
        for ((i, j), &v) in c.indexed_iter() {
            assert_eq!(v as f64, want[[i, j]], "({i}, {j})"); // multiples of 1/32 below 2^19: exact
        }
    }

    #[test]
    fn activations_and_refusals() {
        let Some(cpu) = super::super::Avx2Fma::detect() else {
            eprintln!("skipping: no AVX2+FMA on this CPU");
            return;
        };
        let a = Array2::from_shape_fn((7, 3), |(i, j)| i as f32 - j as f32 * 2.0);
        let b = Array2::from_elem((3, 2), 1.5f32);
        let packed = PackedB::new(b.view(), None);
        let mut c = Array2::zeros((7, 2));
        gemm(
            cpu,
            a.view(),
            &packed,
            c.view_mut(),
            Activation::Relu6,
            true,
        );
        for (i, row) in c.rows().into_iter().enumerate() {
            let v = (i as f32 * 3.0 - 6.0) * 1.5;
            assert_eq!(row[0], v.clamp(0.0, 6.0));
        }
        // A column-strided A is handed back to the caller.
        let at = a.t().as_standard_layout().into_owned();
        assert_eq!(at.t().strides(), &[1, 7]);
        assert!(!takes(at.t().strides(), c.strides(), 3, 2));
        assert!(takes(a.strides(), c.strides(), 3, 2));
    }
}
