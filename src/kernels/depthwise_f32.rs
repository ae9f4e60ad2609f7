//! The SIMD depthwise kernel for f32, channel multiplier 1, written once over
//! [`Simd`](super::simd::Simd) and built for AVX2+FMA (8 lanes) and AVX-512F
//! (16 lanes).
//!
//! Loop order: channel tiles (so that the input rows an output row reads
//! stay in L1 for the next row; see [`channel_tile`]), output rows, pixels in
//! blocks along the row, channels in register tiles, then taps. A block of P
//! pixels × V vectors of channels (2 × 4, 4 × 2 or 8 × 1: eight
//! accumulators) stays in registers across all `kh·kw`
//! taps, so each output vector is stored once, with the bias added first and
//! the activation clamped in-register before the store. Per tap, V weight
//! loads serve P·V FMAs, and the eight independent accumulators keep both FMA
//! units busy. Measured on 112×112×32 (1 thread), 2 × 4 ran at 13.5 GMAC/s
//! against 6.5 for 8 × 1 and 4.9 for the generic kernel (AVX2).
//!
//! Rows of 3 taps at stride 1 and dilation 1 (every 3×3 stride-1 depthwise
//! layer of MobileNet) run their interior pixels as sliding windows instead
//! ([`Row::slide`]): per kernel row, the weights of a register tile are
//! loaded once, and each input column once for all the pixels that read it
//! (up to three), so that a tile of 8 pixels loads 10 input vectors per kernel
//! row instead of 24. Against the tap-by-tap tiles, on the AMD EPYC Zen 4
//! (family 25, model 17; 1 thread, the two taking turns, median of the
//! per-pair ratios over 500 pairs), AVX-512 and AVX2 builds: 112×112×32
//! 0.65× and 0.59× the time, 56×56×128 0.67× and 0.78×, 28×28×256 0.75× and
//! 0.88×, 7×7×960 0.85× and 0.86×, 112×112×96 0.73× and 0.65×. At 512 channels
//! AVX-512 gains 2–9% and AVX2 loses 6–16%, so the AVX2 build keeps the tiles
//! from 512 channels. At stride 2 the windows share a third as many columns,
//! and on the Zen 4 measured slower than the tiles (17 against 21 GMAC/s on
//! 56×56×128; the window shape was not recorded), so the AVX2 build keeps the
//! tiles there. The AVX-512 build runs stride-2 rows as windows of 4 pixels
//! (9 input columns) × 4 vectors, or × 2 where the channels are a multiple of
//! 32 but not of 64. On the Intel Xeon model 207 (inside MobileNet v1, 1
//! thread, the kernels taking turns three times) they took 0.89–0.97× the
//! tiles' time on 1.0-224's stride-2 layers with inputs of 56×56×128,
//! 28×28×256 and 14×14×512 (0.97–0.98× on 112×112×64), 0.85× on 0.75-224's
//! with 28×28×192 input and 0.95–0.97× on its 56×56×96 (× 2 vectors);
//! windows of 8 pixels × 2 vectors were no better than the tiles there
//! (0.98–1.16× their time, one layer alone). Not measured on the Zen 4.
//!
//! Interior pixels (every tap inside the image, horizontally) go through the
//! blocked loop; a border pixel runs the same register tiles, one pixel wide,
//! over the contiguous range of taps that land inside the row (the padding
//! taps are skipped, as they add nothing). Rows whose vertical taps
//! leave the image simply run over fewer kernel rows. A channel count that is
//! not a multiple of the lanes ends with a masked vector, so there is no
//! scalar tail.
//!
//! Each output is `bias + Σ x·w` accumulated with FMA in (ky, kx) order,
//! skipping padding taps: the same operations, in the same order, as the
//! generic kernel compiled for AVX2+FMA, so both give the same bits.

use ndarray::ArrayViewMut2;

use super::depthwise::Depthwise;
use super::window;
use crate::activation::Activation;
use crate::geometry::AxisGeometry;

/// Whether this kernel is the one to plan for `channels` channels with
/// multiplier `multiplier`, in its AVX-512 build (`avx512`) or its AVX2
/// one, for a layer with strides other than 1 (`strided`): multiplier 1,
/// and, where pixels lie a multiple of 4 KiB apart (1024, 2048, …
/// channels) in the AVX2 build of a strided layer, an L1 data cache of at
/// least 12 ways ([`l1d_ways`]).
///
/// Such pixels map to the same L1 set, so the input pixels a register block
/// reads (at the same channels) compete for one set's ways. With 12 ways
/// the blocked kernel is unhurt: on the Intel Xeon model 207 (48 KiB, 12
/// ways; one layer, the kernels taking turns, medians of 9 × 200 forwards)
/// it took 0.37–0.49× the generic kernel's time with AVX-512 at 1 thread
/// and 0.31–0.56× at 2 (7×7×1024, 7×7×2048, 7×7×3072, 14×14×1024 at
/// strides 1 and 2, 28×28×1024), and 0.55–0.71× with AVX2; 7×7×1024 ran in
/// 26.5 µs against 25.2 for 7×7×1040, whose pixels do not alias. With 8
/// ways it loses a third (the AMD EPYC Zen 4, family 25, model 17, 32 KiB:
/// 7×7×1024 38 µs against 25 for 7×7×1040 at 1 thread, AVX-512), but still
/// beats the generic kernel, which streams each tap along whole rows: there
/// (one layer alone, each kernel's median of 9 × 100 calls, two runs each)
/// the AVX-512 build took 0.92–0.98× the generic time at 1 thread and
/// 0.89–0.99× at 2 on 7×7×1024, 14×14×1024 (strides 1 and 2), 7×7×2048 and
/// 28×28×1024, and the AVX2 build 0.88–0.92× at 1 thread and 0.85–0.92× at
/// 2 on the stride-1 ones, but 1.15× at 1 thread on 14×14×1024 at stride 2
/// (1.03–1.11× at 2), where it runs tap tiles, not windows: that case keeps
/// the generic kernel. (On 2026-12-02, before the sliding windows reached
/// these counts, the Zen 4 had measured the generic kernel faster:
/// 0.050–0.061 ms on 7×7×1024 with 2 threads against 0.074 blocked.) Other
/// channel counts have no such conflict (7×7×1040, 7×7×1536, 14×14×1280
/// blocked in 0.31–0.51× the generic time on the Xeon); below 1024 the
/// blocked kernel won on both CPUs (Zen 4, 14×14×512 at 1 thread:
/// 0.060–0.069 ms AVX2 blocked against 0.073–0.092 generic). Copying the
/// weights or the input to a padded stride first, so that nothing aliases,
/// did not pay on the Zen 4 (7×7×1024: 37.6 µs with padded weights, 37–43
/// µs with the input copied into a kept buffer, against 38 in place).
pub(crate) fn suits(channels: usize, multiplier: usize, avx512: bool, strided: bool) -> bool {
    // The GEMM stages its rows of A for the same cause (`staged_lda`).
    let aliased = super::gemm_f32::staged_lda(channels).is_some();
    let exempt = avx512 || !strided || l1d_ways().is_some_and(|ways| ways >= 12);
    multiplier == 1 && (!aliased || exempt)
}

/// The ways of this core's L1 data cache, read once from CPUID's
/// deterministic cache parameters (leaf 4 on Intel, leaf 0x8000_001D on
/// AMD); `None` where neither describes it (some hypervisors).
pub(crate) fn l1d_ways() -> Option<u32> {
    use std::sync::OnceLock;
    static WAYS: OnceLock<Option<u32>> = OnceLock::new();
    *WAYS.get_or_init(|| {
        let max = super::cpuid(0, 0).eax;
        let max_extended = super::cpuid(0x8000_0000, 0).eax;
        [(4, max >= 4), (0x8000_001D, max_extended >= 0x8000_001D)]
            .into_iter()
            .filter(|&(_, asked)| asked)
            .find_map(|(leaf, _)| {
                // Subleaves list the caches until type 0 (no more caches);
                // type 1 is data, bits 5–7 the level, EBX 31–22 ways − 1.
                (0..16)
                    .map(|sub| super::cpuid(leaf, sub))
                    .take_while(|r| r.eax & 0x1f != 0)
                    .find(|r| r.eax & 0x1f == 1 && (r.eax >> 5) & 0x7 == 1)
                    .map(|r| (r.ebx >> 22) + 1)
            })
    })
}

pub(crate) use super::simd::RowIsa;

/// Runs `p` on output rows `first_row..first_row + out.nrows()` with the
/// kernel built for `cpu`'s instruction set (AVX2+FMA or AVX-512F), which
/// the token proves exists.
///
/// **Panics** if the multiplier is not 1 or the buffers do not match the
/// problem (bugs in the planner or the caller).
pub(crate) fn rows<T: RowIsa>(
    cpu: T,
    p: &Depthwise<'_, f32>,
    first_row: usize,
    mut out: ArrayViewMut2<'_, f32>,
) {
    assert_eq!(
        p.multiplier, 1,
        "depthwise f32 kernel planned for a multiplier"
    );
    let g = &p.geometry;
    let c = p.channels;
    let [kh, kw] = p.kernel;
    let image = g.h.input * g.w.input * c;
    assert!(
        c > 0 && image > 0 && p.x.len().is_multiple_of(image),
        "depthwise input is not whole images"
    );
    let images = p.x.len() / image;
    assert!(
        first_row + out.nrows() <= images * g.h.output,
        "depthwise output rows beyond the batch"
    );
    assert_eq!(p.weight.len(), kh * kw * c, "depthwise weight length");
    assert!(p.bias.is_none_or(|b| b.len() == c), "depthwise bias length");
    assert_eq!(out.ncols(), g.w.output * c, "depthwise output row length");
    assert_eq!(
        (g.h.kernel, g.w.kernel),
        (kh, kw),
        "depthwise geometry kernel"
    );

    // Horizontally interior outputs: every tap kx reads inside the row.
    let (lo, hi) = window::interior(&g.w);

    // Channel tiles outermost, so that the kernel rows of input one output
    // row reads (kh rows × width × tile channels) stay in L1 for the next
    // output row, which reads kh − 1 of them again: each input value then
    // comes from L2 once instead of kh times. Every output is computed as
    // before, so the tiling changes no bits.
    let band_rows = (out.nrows().saturating_mul(g.h.stride))
        .saturating_add(kh)
        .min(images * g.h.input);
    // At most the input's bytes, which exist.
    let band_bytes = band_rows * g.w.input * c * std::mem::size_of::<f32>();
    let tile = channel_tile(c, kh, g.w.input, band_bytes, cpu.lanes());
    let mut c0 = 0;
    while c0 < c {
        let c1 = (c0 + tile).min(c);
        for (i, mut orow) in out.rows_mut().into_iter().enumerate() {
            let orow = orow.as_slice_mut().expect("output rows are contiguous");
            let (b, oy) = ((first_row + i) / g.h.output, (first_row + i) % g.h.output);
            // The kernel rows that land inside the image: a contiguous range.
            let Some((ky0, ky1, iy0)) = window::taps_inside(&g.h, oy) else {
                // No tap inside the image: bias (or zero), then the activation.
                for px in orow.chunks_exact_mut(c) {
                    let px = &mut px[c0..c1];
                    match p.bias {
                        Some(bias) => px.copy_from_slice(&bias[c0..c1]),
                        None => px.fill(0.0),
                    }
                    p.activation.apply_slice(px);
                }
                continue;
            };
            let row = Row {
                // The input row of kernel row ky0 in image b.
                x: p.x[(b * g.h.input + iy0) * g.w.input * c..].as_ptr(),
                // Saturates only for a dilation past the image height (a kernel
                // of height 1 takes any): then no output has two kernel rows
                // inside the image, and the step is never taken.
                row_step: g.h.dilation.saturating_mul(g.w.input * c),
                rows: ky1 - ky0,
                weight: p.weight[ky0 * kw * c..].as_ptr(),
                bias: p.bias.map(<[f32]>::as_ptr),
                c,
                channels: (c0, c1),
                kw,
                cols: g.w,
                activation: p.activation,
            };
            // SAFETY: the ISA exists (the `cpu` token). `row.x` points at input
            // row iy0 of image b, and rows iy0 + r·dilation for r < rows are rows
            // of that image (`taps_inside` checked the last one is below H). The
            // weight rows ky0..ky1 lie inside `weight` (length kh·kw·c, checked),
            // and the bias has c values (checked); the channels c0..c1 are
            // below c. `orow` holds exactly `ow·c` values (checked).
            // `pixel_checked` reads input columns only for the taps that land
            // inside the row; `interior` reads columns of pixels lo..hi, all
            // inside the row (`window::interior` checked the extremes).
            unsafe {
                for ox in (0..lo).chain(hi..g.w.output) {
                    cpu.pixel_checked(&row, ox, orow.as_mut_ptr().add(ox * c));
                }
                cpu.interior(&row, lo, hi, orow.as_mut_ptr());
            }
        }
        c0 = c1;
    }
}

/// Channels a tile: the kernel rows one output row reads (`kh` input rows of
/// `width` pixels) within about 32 KiB of L1 at this tile width, a multiple
/// of four vectors of `lanes` (the widest register block), at least four
/// vectors, and all of `c` when that fits.
///
/// Only when the band of input rows the call reads (`band_bytes`) stays
/// within 1 MiB, half of the L2 of the Xeon this was measured on: each tile
/// passes over the whole band again, which then comes from L2. A larger band
/// is not tiled. Measured there with the border pixels on the register
/// tiles too (1 thread, the builds before and after taking turns, median of
/// 500 forwards each): 14×14×384 34 → 26 µs, 7×7×960 31 → 17.5 µs,
/// 14×14×512 53.5 → 45 µs, 28×28×192 63 → 59 µs; 56×56×128 (1.6 MiB of
/// input, not tiled) 206–229 → 226–244 µs. Tiling that one as well took it
/// to 240 µs, hence the bound.
pub(crate) fn channel_tile(
    c: usize,
    kh: usize,
    width: usize,
    band_bytes: usize,
    lanes: usize,
) -> usize {
    const L1_BUDGET: usize = 32 * 1024;
    const L2_BUDGET: usize = 1024 * 1024;
    if band_bytes > L2_BUDGET {
        return c;
    }
    let per_channel = (kh * width * std::mem::size_of::<f32>()).max(1);
    let block = 4 * lanes;
    let tile = (L1_BUDGET / per_channel / block * block).max(block);
    if tile >= c { c } else { tile }
}

/// One output row's problem, as raw pointers for the inner loops.
pub(crate) struct Row {
    x: *const f32,
    row_step: usize,
    rows: usize,
    weight: *const f32,
    bias: Option<*const f32>,
    /// Channels of a pixel (the step from one pixel to the next).
    c: usize,
    /// The channels this row's calls compute: `c0..c1`.
    channels: (usize, usize),
    kw: usize,
    /// The horizontal axis: stride, dilation, padding, input width.
    cols: AxisGeometry,
    activation: Activation,
}

#[cfg(target_arch = "x86_64")]
mod body {
    use super::Row;
    use crate::kernels::simd::{Lanes, RowKernel, Simd};

    impl Row {
        /// The bias for channels `cb..cb+LANES` (masked), or zero.
        #[inline(always)]
        unsafe fn init<S: Simd>(&self, lanes: Lanes<S>, cb: usize) -> S::V {
            // SAFETY: bias has c values and cb + lanes ≤ c; the ISA is enabled.
            unsafe {
                match self.bias {
                    Some(b) => lanes.load(b.add(cb)),
                    None => S::zero(),
                }
            }
        }

        /// Pixels ox..ox+P (interior), channels cb..cb+LANES·V: P·V
        /// accumulators held in registers across all taps. `lanes` masks
        /// every vector (only ever partial with V = 1, for the last channels).
        ///
        /// # Safety
        /// `S`'s ISA is enabled; every tap of those pixels reads inside the
        /// row; the channels (as masked) are below c; `out` points at the
        /// output row.
        #[inline(always)]
        unsafe fn tile<S: Simd, const P: usize, const V: usize>(
            &self,
            ox: usize,
            cb: usize,
            lanes: Lanes<S>,
            taps: (usize, usize),
            out: *mut f32,
        ) {
            let (c, l) = (self.c, S::LANES);
            // SAFETY: as the function's contract.
            unsafe {
                let mut init = [S::zero(); V];
                for (v, i) in init.iter_mut().enumerate() {
                    *i = self.init(lanes, cb + l * v);
                }
                let mut acc = [init; P];
                for r in 0..self.rows {
                    let xr = self.x.add(r * self.row_step + cb);
                    let wr = self.weight.add(r * self.kw * c + cb);
                    for kx in taps.0..taps.1 {
                        let mut w = [S::zero(); V];
                        for (v, w) in w.iter_mut().enumerate() {
                            *w = lanes.load(wr.add(kx * c + l * v));
                        }
                        // Input column of pixel ox, tap kx; pixel j is j·stride further.
                        let ix0 =
                            ox * self.cols.stride + kx * self.cols.dilation - self.cols.pad_before;
                        for (j, a) in acc.iter_mut().enumerate() {
                            let xp = xr.add((ix0 + j * self.cols.stride) * c);
                            for (v, a) in a.iter_mut().enumerate() {
                                *a = S::fma(lanes.load(xp.add(l * v)), w[v], *a);
                            }
                        }
                    }
                }
                for (j, a) in acc.into_iter().enumerate() {
                    for (v, a) in a.into_iter().enumerate() {
                        let o = out.add((ox + j) * c + cb + l * v);
                        lanes.store(o, S::activate(self.activation, a));
                    }
                }
            }
        }

        /// Pixels ox..ox+P (interior) of a row with horizontal stride `ST`,
        /// dilation 1 and `K` taps a kernel row, channels cb..cb+LANES·V,
        /// as a sliding window: per kernel row the K·V weight vectors are
        /// loaded once, and each of the (P − 1)·ST + K input columns the P
        /// pixels read is loaded once and feeds every pixel it falls under
        /// (up to K), where [`tile`](Self::tile) loads an input vector for
        /// each tap of each pixel. Per pixel the FMAs still run in (ky, kx)
        /// order: input column j reaches pixel q at tap j − q·ST, which
        /// grows with j. So the bits are those of `tile`.
        ///
        /// # Safety
        /// As [`tile`](Self::tile); the row's horizontal stride is `ST`, its
        /// dilation 1 and its kernel width `K`.
        #[inline(always)]
        unsafe fn slide<
            S: Simd,
            const P: usize,
            const V: usize,
            const K: usize,
            const ST: usize,
        >(
            &self,
            ox: usize,
            cb: usize,
            lanes: Lanes<S>,
            out: *mut f32,
        ) {
            let (c, l) = (self.c, S::LANES);
            // SAFETY: as the function's contract: columns ox·ST − pad ..
            // (ox + P − 1)·ST + K − pad are inside the row.
            unsafe {
                let mut init = [S::zero(); V];
                for (v, i) in init.iter_mut().enumerate() {
                    *i = self.init(lanes, cb + l * v);
                }
                let mut acc = [init; P];
                let ix0 = ox * ST - self.cols.pad_before;
                for r in 0..self.rows {
                    let xr = self.x.add(r * self.row_step + ix0 * c + cb);
                    let wr = self.weight.add(r * K * c + cb);
                    let mut w = [[S::zero(); V]; K];
                    for (kx, w) in w.iter_mut().enumerate() {
                        for (v, w) in w.iter_mut().enumerate() {
                            *w = lanes.load(wr.add(kx * c + l * v));
                        }
                    }
                    for j in 0..(P - 1) * ST + K {
                        for v in 0..V {
                            let x = lanes.load(xr.add(j * c + l * v));
                            for (q, a) in acc.iter_mut().enumerate() {
                                // Tap j − q·ST of pixel q, when it is one.
                                if j >= q * ST && j - q * ST < K {
                                    a[v] = S::fma(x, w[j - q * ST][v], a[v]);
                                }
                            }
                        }
                    }
                }
                for (j, a) in acc.into_iter().enumerate() {
                    for (v, a) in a.into_iter().enumerate() {
                        let o = out.add((ox + j) * c + cb + l * v);
                        lanes.store(o, S::activate(self.activation, a));
                    }
                }
            }
        }

        /// [`slide`](Self::slide) over the channels `self.channels`: tiles of
        /// LANES·V channels, then single masked vectors for the rest.
        ///
        /// # Safety
        /// As [`slide`](Self::slide), for those channels.
        #[inline(always)]
        unsafe fn slide_block<
            S: Simd,
            const P: usize,
            const V: usize,
            const K: usize,
            const ST: usize,
        >(
            &self,
            ox: usize,
            out: *mut f32,
        ) {
            let ((c0, c1), l) = (self.channels, S::LANES);
            let mut cb = c0;
            // SAFETY: every tile's channels are below c1 ≤ c.
            unsafe {
                while cb + l * V <= c1 {
                    self.slide::<S, P, V, K, ST>(ox, cb, Lanes::new(l), out);
                    cb += l * V;
                }
                while cb < c1 {
                    self.slide::<S, P, 1, K, ST>(ox, cb, Lanes::new(c1 - cb), out);
                    cb += l;
                }
            }
        }

        /// Pixels lo..hi of a row with `K` taps, stride `ST` and dilation 1:
        /// sliding windows of P pixels, then of 4, 2 and 1 for the rest.
        ///
        /// # Safety
        /// As [`interior`](Self::interior), for such a row.
        #[inline(always)]
        unsafe fn slides<
            S: Simd,
            const P: usize,
            const V: usize,
            const K: usize,
            const ST: usize,
        >(
            &self,
            lo: usize,
            hi: usize,
            out: *mut f32,
        ) {
            let mut ox = lo;
            // SAFETY: each block covers pixels within lo..hi.
            unsafe {
                while ox + P <= hi {
                    self.slide_block::<S, P, V, K, ST>(ox, out);
                    ox += P;
                }
                if P > 4 && ox + 4 <= hi {
                    self.slide_block::<S, 4, V, K, ST>(ox, out);
                    ox += 4;
                }
                if P > 2 && ox + 2 <= hi {
                    self.slide_block::<S, 2, V, K, ST>(ox, out);
                    ox += 2;
                }
                while ox < hi {
                    self.slide_block::<S, 1, V, K, ST>(ox, out);
                    ox += 1;
                }
            }
        }

        /// Pixels ox..ox+P, channels `self.channels`, taps `taps` of each
        /// kernel row: tiles of LANES·V channels, then single masked vectors
        /// for the rest.
        ///
        /// # Safety
        /// As [`tile`](Self::tile), for those channels and taps.
        #[inline(always)]
        unsafe fn block<S: Simd, const P: usize, const V: usize>(
            &self,
            ox: usize,
            taps: (usize, usize),
            out: *mut f32,
        ) {
            let ((c0, c1), l) = (self.channels, S::LANES);
            let mut cb = c0;
            // SAFETY: every tile's channels are below c1 ≤ c.
            unsafe {
                while cb + l * V <= c1 {
                    self.tile::<S, P, V>(ox, cb, Lanes::new(l), taps, out);
                    cb += l * V;
                }
                while cb < c1 {
                    self.tile::<S, P, 1>(ox, cb, Lanes::new(c1 - cb), taps, out);
                    cb += l;
                }
            }
        }

        /// Pixels lo..hi in blocks of P, the rest one by one.
        ///
        /// # Safety
        /// As [`interior`](Self::interior).
        #[inline(always)]
        unsafe fn blocks<S: Simd, const P: usize, const V: usize>(
            &self,
            lo: usize,
            hi: usize,
            out: *mut f32,
        ) {
            let mut ox = lo;
            let taps = (0, self.kw);
            // SAFETY: each block covers pixels within lo..hi.
            unsafe {
                while ox + P <= hi {
                    self.block::<S, P, V>(ox, taps, out);
                    ox += P;
                }
                while ox < hi {
                    self.block::<S, 1, V>(ox, taps, out);
                    ox += 1;
                }
            }
        }
    }

    impl RowKernel for Row {
        /// Interior pixels lo..hi: rows of 3 taps and dilation 1 at stride 1
        /// (AVX2: under 512 channels) and, on AVX-512, at stride 2 for
        /// channels in whole pairs of vectors as sliding windows; the rest
        /// in register blocks of 8 vectors: 2 pixels × 4 vectors of
        /// channels, 4 × 2 or 8 × 1, the widest that divides the channel
        /// count (a count that is not a multiple of LANES ends with masked
        /// 8 × 1).
        ///
        /// # Safety
        /// `S`'s ISA is enabled; every tap of pixels lo..hi reads inside the
        /// row; `out` points at the output row.
        #[inline(always)]
        unsafe fn interior<S: Simd>(&self, lo: usize, hi: usize, out: *mut f32) {
            let l = S::LANES;
            let width = self.channels.1 - self.channels.0;
            let (k, stride) = (self.kw, self.cols.stride);
            // SAFETY: each block covers pixels within lo..hi; the sliding
            // windows run only on rows of their kernel width, stride and
            // dilation 1.
            unsafe {
                // AVX2 keeps the tiles from 512 channels, where the windows measured
                // slower (14×14×512: 1.06–1.16× the time).
                let slides = k == 3 && self.cols.dilation == 1 && stride == 1;
                if slides && (l == 16 || self.c < 512) {
                    // Accumulators P·V and weights 3·V in registers: 16 + 6
                    // of AVX-512's 32, 8 + 6 of AVX2's 16.
                    match (width.is_multiple_of(2 * l), l == 16) {
                        (true, true) => self.slides::<S, 8, 2, 3, 1>(lo, hi, out),
                        (true, false) => self.slides::<S, 4, 2, 3, 1>(lo, hi, out),
                        (false, _) => self.slides::<S, 8, 1, 3, 1>(lo, hi, out),
                    }
                    return;
                }
                // Stride 2 on AVX-512: windows of 4 pixels (9 input columns)
                // × 4 or 2 vectors, in 16 or 8 accumulators beside 12 or 6
                // weights (see the module docs for what was measured).
                let stride2_windows = k == 3 && self.cols.dilation == 1 && stride == 2 && l == 16;
                if stride2_windows && width.is_multiple_of(4 * l) {
                    return self.slides::<S, 4, 4, 3, 2>(lo, hi, out);
                }
                if stride2_windows && width.is_multiple_of(2 * l) {
                    return self.slides::<S, 4, 2, 3, 2>(lo, hi, out);
                }
                if width.is_multiple_of(4 * l) {
                    self.blocks::<S, 2, 4>(lo, hi, out);
                } else if width.is_multiple_of(2 * l) {
                    self.blocks::<S, 4, 2>(lo, hi, out);
                } else {
                    self.blocks::<S, 8, 1>(lo, hi, out);
                }
            }
        }

        /// One pixel anywhere in the row; taps outside the row are skipped:
        /// the taps that land inside it are a contiguous range of kx, so the
        /// pixel runs the register tiles of the interior over that range
        /// (four vectors of channels at a time, as the channels allow).
        ///
        /// # Safety
        /// `S`'s ISA is enabled; `px` points at the pixel's `c` outputs.
        #[inline(always)]
        unsafe fn pixel_checked<S: Simd>(&self, ox: usize, px: *mut f32) {
            let inside = |kx: usize| self.cols.input_index(ox, kx).is_some();
            let kx0 = (0..self.kw).find(|&kx| inside(kx)).unwrap_or(self.kw);
            let kx1 = (kx0..self.kw).find(|&kx| !inside(kx)).unwrap_or(self.kw);
            let taps = (kx0, kx1);
            let (l, width) = (S::LANES, self.channels.1 - self.channels.0);
            // SAFETY: `px` is pixel ox of the output row, so the row starts
            // ox·c values before it; taps kx0..kx1 read inside the row, and
            // none outside that range is read.
            unsafe {
                let row = px.sub(ox * self.c);
                if width.is_multiple_of(4 * l) {
                    self.block::<S, 1, 4>(ox, taps, row);
                } else if width.is_multiple_of(2 * l) {
                    self.block::<S, 1, 2>(ox, taps, row);
                } else {
                    self.block::<S, 1, 1>(ox, taps, row);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, s};

    use super::*;
    use crate::geometry::{ConvGeometry, Padding};
    use crate::kernels::depthwise::DepthwiseKernel;

    /// Every register-block shape of both builds (AVX2: 8-lane, AVX-512:
    /// 16-lane vectors), masked channel tails, border-only rows and columns
    /// (including taps that miss the image entirely under wide padding),
    /// strides and dilations: each build must give the generic AVX2 kernel's
    /// bits and write nothing outside the rows it was given.
    #[test]
    fn same_bits_as_generic_kernel_and_no_write_outside() {
        let Some(cpu) = super::super::Avx2Fma::detect() else {
            eprintln!("skipped: no AVX2+FMA on this CPU (the kernel cannot run here)");
            return;
        };
        let wide = super::super::Avx512F::detect();
        if wide.is_none() {
            eprintln!("not tested here: the AVX-512F build (this CPU lacks AVX-512F)");
        }
        let mut seed = 1u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let paddings = [
            Padding::Same,
            Padding::Valid,
            Padding::symmetric(1),
            Padding::Explicit {
                top: 0,
                bottom: 6,
                left: 7,
                right: 0,
            },
        ];
        let mut cases = 0;
        for c in [
            1, 3, 8, 13, 16, 17, 24, 32, 40, 48, 64, 80, 96, 128, 512, 520,
        ] {
            // 16 wide at horizontal stride 2: 7 interior pixels, so the
            // stride-2 windows run their 4-, 2- and 1-pixel blocks.
            for (h, w) in [(1, 1), (3, 2), (5, 12), (4, 19), (2, 16)] {
                for kernel in [[3, 3], [2, 5]] {
                    for (stride, dilation) in [(1, 1), (2, 1), (1, 2), (3, 2)] {
                        for padding in paddings {
                            let Ok(g) = ConvGeometry::new(
                                [h, w],
                                kernel,
                                [stride, 1 + stride % 2],
                                [dilation, dilation],
                                padding,
                            ) else {
                                continue; // kernel larger than the padded input
                            };
                            let (batch, [kh, kw]) = (2, kernel);
                            let x: Vec<f32> = (0..batch * h * w * c).map(|_| next()).collect();
                            let weight: Vec<f32> = (0..kh * kw * c).map(|_| next()).collect();
                            let bias: Vec<f32> = (0..c).map(|_| next()).collect();
                            let p = Depthwise {
                                x: &x,
                                weight: &weight,
                                bias: (c % 2 == 0).then_some(&bias[..]),
                                channels: c,
                                multiplier: 1,
                                kernel,
                                geometry: g,
                                activation: [Activation::Identity, Activation::Relu6][c % 2],
                            };
                            let (nrows, cols) = (batch * g.h.output, g.w.output * c);
                            let mut expected = Array2::from_elem((nrows, cols), f32::NAN);
                            p.rows(DepthwiseKernel::Avx2FmaF32(cpu), 0, expected.view_mut());
                            // Generic kernel: the same call with the f32 kernel bypassed.
                            let mut generic = Array2::from_elem((nrows, cols), f32::NAN);
                            // SAFETY (test): AVX2+FMA checked at the top.
                            unsafe { p.rows_avx2(0, generic.view_mut()) };
                            // The output inside a larger buffer full of guards;
                            // rows 1.. are given, starting at row 1 of the output.
                            let guard = -1234.5f32;
                            let check = |run: &dyn Fn(ArrayViewMut2<'_, f32>), isa: &str| {
                                let mut buf = Array2::from_elem((nrows + 2, cols + 9), guard);
                                run(buf.slice_mut(s![2..nrows + 1, 4..4 + cols]));
                                assert_eq!(
                                    buf.slice(s![2..nrows + 1, 4..4 + cols]),
                                    generic.slice(s![1.., ..]),
                                    "{isa}: c {c}, {h}×{w}, kernel {kernel:?}, stride {stride}, \
                                     dilation {dilation}, {padding:?}"
                                );
                                let mut inner = buf.slice_mut(s![2..nrows + 1, 4..4 + cols]);
                                inner.fill(guard);
                                assert!(
                                    buf.iter().all(|&v| v == guard),
                                    "{isa}: wrote outside its rows"
                                );
                            };
                            check(&|o| rows(cpu, &p, 1, o), "avx2");
                            if let Some(wide) = wide {
                                check(&|o| rows(wide, &p, 1, o), "avx512");
                            }
                            assert_eq!(expected, generic);
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 500, "only {cases} cases ran");
    }

    /// Pixels a multiple of 4 KiB apart (1024 and 2048 channels), where the
    /// plan takes this kernel only on CPUs with a 12-way L1: both builds give
    /// the generic kernel's bits there too, on the 3×3 shapes of MobileNet
    /// (sliding windows at stride 1, tiles at stride 2) and with a channel
    /// tile (rows 14 wide).
    #[test]
    fn same_bits_as_generic_kernel_where_pixels_alias() {
        let Some(cpu) = super::super::Avx2Fma::detect() else {
            eprintln!("skipped: no AVX2+FMA on this CPU (the kernel cannot run here)");
            return;
        };
        let wide = super::super::Avx512F::detect();
        if wide.is_none() {
            eprintln!("not tested here: the AVX-512F build (this CPU lacks AVX-512F)");
        }
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        for (c, [h, w], stride) in [
            (1024, [7, 7], 1),
            (1024, [6, 14], 1),
            (1024, [7, 8], 2),
            (2048, [3, 5], 1),
        ] {
            let g = ConvGeometry::new([h, w], [3, 3], [stride, stride], [1, 1], Padding::Same)
                .expect("a valid geometry");
            let x: Vec<f32> = (0..h * w * c).map(|_| next()).collect();
            let weight: Vec<f32> = (0..9 * c).map(|_| next()).collect();
            let bias: Vec<f32> = (0..c).map(|_| next()).collect();
            let p = Depthwise {
                x: &x,
                weight: &weight,
                bias: Some(&bias),
                channels: c,
                multiplier: 1,
                kernel: [3, 3],
                geometry: g,
                activation: Activation::Relu6,
            };
            let shape = (g.h.output, g.w.output * c);
            let mut generic = Array2::from_elem(shape, f32::NAN);
            // SAFETY (test): AVX2+FMA checked at the top.
            unsafe { p.rows_avx2(0, generic.view_mut()) };
            assert!(generic.iter().all(|v| v.is_finite()));
            let mut out = Array2::from_elem(shape, f32::NAN);
            rows(cpu, &p, 0, out.view_mut());
            assert_eq!(out, generic, "avx2: c {c}, {h}×{w}, stride {stride}");
            if let Some(wide) = wide {
                let mut out = Array2::from_elem(shape, f32::NAN);
                rows(wide, &p, 0, out.view_mut());
                assert_eq!(out, generic, "avx512: c {c}, {h}×{w}, stride {stride}");
            }
        }
    }

    /// The plan's choice: any multiplier but 1 goes to the generic kernel;
    /// channel counts whose pixels alias go to this one in the AVX-512 build
    /// and at stride 1, and in the AVX2 build of a strided layer only with a
    /// 12-way L1 (as CPUID gives it, which natively on Linux must agree with
    /// sysfs); the rest always.
    #[test]
    fn planned_by_channels_and_l1_ways() {
        let ways = l1d_ways();
        // valgrind answers CPUID from its own table (8 ways on the Xeon model
        // 207, whose L1 has 12), so sysfs, which Linux read from the hardware,
        // is the reference only for a native run.
        let under_valgrind = std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"));
        match std::fs::read_to_string(
            "/sys/devices/system/cpu/cpu0/cache/index0/ways_of_associativity",
        ) {
            Ok(_) if under_valgrind => {
                eprintln!("not checked against sysfs: valgrind emulates CPUID ({ways:?} ways)")
            }
            Ok(sys) => {
                let level =
                    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index0/level");
                let kind =
                    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index0/type");
                if level.is_ok_and(|l| l.trim() == "1") && kind.is_ok_and(|t| t.trim() == "Data") {
                    assert_eq!(ways, sys.trim().parse().ok(), "CPUID against sysfs");
                }
            }
            Err(e) => eprintln!("not checked against sysfs ({e}); CPUID says {ways:?} ways"),
        }
        eprintln!("L1 data cache: {ways:?} ways");
        let wide = ways.is_some_and(|w| w >= 12);
        let builds = [(true, false), (true, true), (false, false), (false, true)];
        for (avx512, strided) in builds {
            let what = |c| format!("{c} channels, AVX-512 {avx512}, strided {strided}");
            for c in [1, 16, 512, 960, 1023, 1040, 1280, 1536, 3000] {
                assert!(suits(c, 1, avx512, strided), "{}", what(c));
                assert!(!suits(c, 2, avx512, strided), "{} × 2", what(c));
            }
            for c in [1024, 2048, 3072] {
                let want = avx512 || !strided || wide;
                assert_eq!(suits(c, 1, avx512, strided), want, "{}", what(c));
                assert!(!suits(c, 3, avx512, strided), "{} × 3", what(c));
            }
        }
    }

    /// Tiles are whole register blocks, within the channels, and only where
    /// the band of input rows fits the L2 budget; 512 and 520 channels on
    /// the rows above (19 wide) are tiled, so the test above runs tiles.
    #[test]
    fn channel_tiles() {
        for lanes in [8, 16] {
            for c in [1, 16, 64, 144, 384, 512, 520, 960, 1024] {
                for width in [1, 7, 14, 19, 56, 112] {
                    let t = channel_tile(c, 3, width, 300 << 10, lanes);
                    assert!(t >= 1 && t <= c, "{c} {width}: {t}");
                    assert!(t == c || t.is_multiple_of(4 * lanes), "{c} {width}: {t}");
                    assert_eq!(channel_tile(c, 3, width, 2 << 20, lanes), c);
                }
            }
            assert!(channel_tile(512, 3, 19, 3 * 19 * 512 * 4, lanes) < 512);
            assert!(channel_tile(960, 3, 7, 3 * 7 * 960 * 4, lanes) < 960);
        }
    }
}
