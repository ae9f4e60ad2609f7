//! Depthwise convolution rows, NHWC, channels innermost.
//!
//! The driver (`conv::depthwise`) hands each call a block of whole output
//! rows. Within a row the output columns split in two:
//!
//! - the **interior**, where every tap reads inside the image: for each pixel
//!   and each block of [`LANES`] channels the accumulators stay in registers
//!   across all kh·kw taps, then bias and activation are applied and the
//!   block is stored once;
//! - the **border**, where some taps fall in the padding: there, for each tap
//!   the kernel takes the range of columns whose input is inside the image
//!   ([`AxisGeometry::valid_outputs`](crate::geometry::AxisGeometry::valid_outputs))
//!   and accumulates in the output row, so no pixel is ever tested.
//!
//! One generic body is compiled twice: portable (what the baseline target
//! vectorizes to), and inside an AVX2+FMA `#[target_feature]` wrapper, where
//! the compiler keeps the channel blocks in ymm registers and fuses the
//! multiply-adds.

use ndarray::ArrayViewMut2;

use crate::Float;
use crate::activation::Activation;
use crate::geometry::ConvGeometry;

/// Channels per register block (one AVX vector of f32).
const LANES: usize = 8;

/// A depthwise problem over a contiguous NHWC input.
pub(crate) struct Depthwise<'a, F> {
    /// Input, standard layout `[N, H, W, C]`.
    pub x: &'a [F],
    /// Weight `[kh·kw, C·m]` (the crate's `[kh, kw, C, m]`, flattened).
    pub weight: &'a [F],
    /// Bias `[C·m]`.
    pub bias: Option<&'a [F]>,
    /// Input channels C.
    pub channels: usize,
    /// Channel multiplier m.
    pub multiplier: usize,
    /// Kernel [kh, kw].
    pub kernel: [usize; 2],
    /// Resolved geometry.
    pub geometry: ConvGeometry,
    /// Fused activation.
    pub activation: Activation,
}

impl<F: Float> Depthwise<'_, F> {
    /// Computes output rows `first_row..first_row + out.nrows()` of the
    /// `[N·OH, OW·C·m]` output matrix, with the AVX2+FMA build of the kernel
    /// when `avx2` is asked for and the CPU has it, else the portable one.
    pub(crate) fn rows(&self, first_row: usize, out: ArrayViewMut2<'_, F>, avx2: bool) {
        #[cfg(target_arch = "x86_64")]
        if avx2 && super::gemm_f32::available() {
            // SAFETY: AVX2 and FMA were detected on this CPU just above.
            unsafe { self.rows_avx2(first_row, out) };
            return;
        }
        let _ = avx2;
        self.rows_body::<false>(first_row, out);
    }

    /// The kernel compiled for AVX2+FMA.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2(&self, first_row: usize, out: ArrayViewMut2<'_, F>) {
        self.rows_body::<true>(first_row, out);
    }

    #[inline(always)]
    fn rows_body<const FMA: bool>(&self, first_row: usize, mut out: ArrayViewMut2<'_, F>) {
        let g = &self.geometry;
        let (c, m) = (self.channels, self.multiplier);
        let cm = c * m;
        let [kh, kw] = self.kernel;
        let (h, w) = (g.h.input, g.w.input);
        // Columns whose every tap is inside the image.
        let interior = (0..kw)
            .map(|kx| g.w.valid_outputs(kx))
            .fold(0..g.w.output, |a, r| a.start.max(r.start)..a.end.min(r.end));
        let interior = interior.start..interior.end.max(interior.start);
        let mul_add = |a: F, x: F, w: F| if FMA { x.mul_add(w, a) } else { a + x * w };
        for (i, mut orow) in out.rows_mut().into_iter().enumerate() {
            let orow = orow.as_slice_mut().expect("output rows are contiguous");
            let (b, oy) = ((first_row + i) / g.h.output, (first_row + i) % g.h.output);
            // Rows of the input this output row reads: (ky, offset of row iy).
            let taps = || {
                (0..kh).filter_map(move |ky| {
                    g.h.input_index(oy, ky).map(|iy| (ky, (b * h + iy) * w * c))
                })
            };
            // Interior, m = 1: registers across all taps.
            if m == 1 && !interior.is_empty() {
                for ox in interior.clone() {
                    let base = ox * g.w.stride;
                    let dst = &mut orow[ox * c..][..c];
                    let mut c0 = 0;
                    while c0 < c {
                        let lanes = LANES.min(c - c0);
                        let mut acc = [F::zero(); LANES];
                        if let Some(bias) = self.bias {
                            acc[..lanes].copy_from_slice(&bias[c0..c0 + lanes]);
                        }
                        for (ky, row) in taps() {
                            for kx in 0..kw {
                                let ix = base + kx * g.w.dilation - g.w.pad_before;
                                let xv = &self.x[row + ix * c + c0..][..lanes];
                                let wv = &self.weight[(ky * kw + kx) * c + c0..][..lanes];
                                if lanes == LANES {
                                    for l in 0..LANES {
                                        acc[l] = mul_add(acc[l], xv[l], wv[l]);
                                    }
                                } else {
                                    for l in 0..lanes {
                                        acc[l] = mul_add(acc[l], xv[l], wv[l]);
                                    }
                                }
                            }
                        }
                        for (d, &a) in dst[c0..c0 + lanes].iter_mut().zip(&acc[..lanes]) {
                            *d = self.activation.apply(a);
                        }
                        c0 += lanes;
                    }
                }
            }
            // Everything else (the border; all columns when m > 1): accumulate
            // tap by tap over each tap's valid range, then finish those columns.
            let border = |ox: usize| m != 1 || !interior.contains(&ox);
            for ox in (0..g.w.output).filter(|&ox| border(ox)) {
                let px = &mut orow[ox * cm..][..cm];
                match self.bias {
                    Some(bias) => px.copy_from_slice(bias),
                    None => px.fill(F::zero()),
                }
            }
            for (ky, row) in taps() {
                for kx in 0..kw {
                    let wv = &self.weight[(ky * kw + kx) * cm..][..cm];
                    for ox in g.w.valid_outputs(kx).filter(|&ox| border(ox)) {
                        let ix = ox * g.w.stride + kx * g.w.dilation - g.w.pad_before;
                        let acc = &mut orow[ox * cm..][..cm];
                        let xi = &self.x[row + ix * c..][..c];
                        if m == 1 {
                            for ((a, &xv), &wv) in acc.iter_mut().zip(xi).zip(wv) {
                                *a = mul_add(*a, xv, wv);
                            }
                        } else {
                            for ((a, wv), &xv) in
                                acc.chunks_exact_mut(m).zip(wv.chunks_exact(m)).zip(xi)
                            {
                                for (a, &wv) in a.iter_mut().zip(wv) {
                                    *a = mul_add(*a, xv, wv);
                                }
                            }
                        }
                    }
                }
            }
            for ox in (0..g.w.output).filter(|&ox| border(ox)) {
                self.activation.apply_slice(&mut orow[ox * cm..][..cm]);
            }
        }
    }
}
