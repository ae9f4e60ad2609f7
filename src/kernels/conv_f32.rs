//! The AVX2+FMA direct convolution for f32 with few input channels.
//!
//! Loop order per output row: 6 pixels along the row, then output channels
//! in tiles of 16, then the taps `(ky, kx, ci)`. The 6 × 16 block lives in 12
//! ymm accumulators across all `kh·kw·C_in` taps; each tap loads two weight
//! vectors and broadcasts one input value per pixel, straight from the input
//! row (no im2col). Output channels that do not fill a tile of 16 end with
//! (masked) 8-channel vectors.
//!
//! Interior pixels (every tap inside the image, horizontally) take the
//! blocked loop; the border pixels of a row take a one-pixel path that skips
//! the taps in the padding, and rows near the top or bottom run over fewer
//! kernel rows. Each output is `(Σ x·w) + bias` with the FMAs in `(ky, kx,
//! ci)` order from zero, then the activation: the order im2col + the packed
//! GEMM uses (which adds explicit zeros for the padding taps instead).

use ndarray::ArrayViewMut2;

use super::direct::{DirectConv, MAX_CHANNELS};
use super::window;
use crate::activation::Activation;
use crate::geometry::AxisGeometry;

/// Runs `p` on output rows `first_row..first_row + out.nrows()` (rows of the
/// `[N·OH, OW·C_out]` output); `cpu` is the proof that AVX2 and FMA exist.
///
/// **Panics** if `C_in` is 0 or above [`MAX_CHANNELS`] or the buffers do not
/// match the problem (bugs in the planner or the caller).
pub(crate) fn rows(
    cpu: super::Avx2Fma,
    p: &DirectConv<'_, f32>,
    first_row: usize,
    mut out: ArrayViewMut2<'_, f32>,
) {
    let _ = cpu;
    assert!(
        (1..=MAX_CHANNELS).contains(&p.cin),
        "direct conv planned for {} input channels",
        p.cin
    );
    let g = &p.geometry;
    let (cin, cout) = (p.cin, p.cout);
    let [kh, kw] = [g.h.kernel, g.w.kernel];
    let image = g.h.input * g.w.input * cin;
    assert!(
        cout > 0 && image > 0 && p.x.len().is_multiple_of(image),
        "direct conv input is not whole images"
    );
    assert!(
        first_row + out.nrows() <= p.x.len() / image * g.h.output,
        "direct conv output rows beyond the batch"
    );
    assert_eq!(
        p.weight.len(),
        kh * kw * cin * cout,
        "direct conv weight length"
    );
    assert!(
        p.bias.is_none_or(|b| b.len() == cout),
        "direct conv bias length"
    );
    assert_eq!(
        out.ncols(),
        g.w.output * cout,
        "direct conv output row length"
    );

    // Horizontally interior outputs: every tap kx reads inside the row.
    let (lo, hi) = window::interior(&g.w);

    for (i, mut orow) in out.rows_mut().into_iter().enumerate() {
        let orow = orow.as_slice_mut().expect("output rows are contiguous");
        let (b, oy) = ((first_row + i) / g.h.output, (first_row + i) % g.h.output);
        let Some((ky0, ky1, iy0)) = window::taps_inside(&g.h, oy) else {
            // No tap inside the image: act(0 + bias).
            for px in orow.chunks_exact_mut(cout) {
                for (j, o) in px.iter_mut().enumerate() {
                    *o = p.activation.apply(0.0 + p.bias.map_or(0.0, |b| b[j]));
                }
            }
            continue;
        };
        let row = Row {
            x: p.x[(b * g.h.input + iy0) * g.w.input * cin..].as_ptr(),
            row_step: g.h.dilation * g.w.input * cin,
            rows: ky1 - ky0,
            weight: p.weight[ky0 * kw * cin * cout..].as_ptr(),
            bias: p.bias.map(<[f32]>::as_ptr),
            cin,
            cout,
            kw,
            cols: g.w,
            activation: p.activation,
        };
        // SAFETY: AVX2 and FMA exist (the `cpu` token). `row.x` points at input
        // row iy0 of image b, and rows iy0 + r·dilation for r < rows are rows
        // of that image (`taps_inside` checked the last one is below H). The
        // weight rows ky0..ky1 lie inside `weight` (length kh·kw·cin·cout, checked),
        // and the bias has cout values (checked). `orow` holds exactly
        // `ow·cout` values (checked). `pixel_checked` reads input columns
        // only for taps it has checked to be inside the row; `interior` reads
        // columns of pixels lo..hi, all inside the row (`window::interior`
        // checked the extremes).
        unsafe {
            for ox in (0..lo).chain(hi..g.w.output) {
                row.pixel_checked(ox, orow.as_mut_ptr().add(ox * cout));
            }
            row.interior(lo, hi, orow.as_mut_ptr());
        }
    }
}

/// One output row's problem, as raw pointers for the inner loops.
struct Row {
    x: *const f32,
    row_step: usize,
    rows: usize,
    weight: *const f32,
    bias: Option<*const f32>,
    cin: usize,
    cout: usize,
    kw: usize,
    /// The horizontal axis: stride, dilation, padding, input width.
    cols: AxisGeometry,
    activation: Activation,
}

mod avx2 {
    use std::arch::x86_64::*;

    use super::Row;
    use crate::kernels::lanes::{Lanes, activate};

    /// Pixels per register block.
    const P: usize = 6;

    impl Row {
        /// `acc + bias` for channels `cb..` (masked), activated, stored at `o`.
        ///
        /// # Safety
        /// AVX2+FMA; the bias (when there is one) and `o` hold the lanes.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn finish(&self, acc: __m256, cb: usize, lanes: Lanes, o: *mut f32) {
            // SAFETY: as the function's contract.
            unsafe {
                let bias = match self.bias {
                    Some(b) => lanes.load(b.add(cb)),
                    None => _mm256_setzero_ps(),
                };
                lanes.store(o, activate(self.activation, _mm256_add_ps(acc, bias)));
            }
        }

        /// Pixels ox..ox+N (interior), channels cb..cb+8·V, N·V accumulators.
        ///
        /// # Safety
        /// AVX2+FMA; every tap of those pixels reads inside the row; the
        /// channels (as masked by `lanes`, only partial with V = 1) are below
        /// cout; `out` points at the output row.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn tile<const N: usize, const V: usize>(
            &self,
            ox: usize,
            cb: usize,
            lanes: Lanes,
            out: *mut f32,
        ) {
            let (cin, cout) = (self.cin, self.cout);
            // SAFETY: as the function's contract.
            unsafe {
                let mut acc = [[_mm256_setzero_ps(); V]; N];
                for r in 0..self.rows {
                    let xr = self.x.add(r * self.row_step);
                    let wr = self.weight.add(r * self.kw * cin * cout + cb);
                    for kx in 0..self.kw {
                        // Input column of pixel ox, tap kx; pixel j is j·stride further.
                        let ix0 =
                            ox * self.cols.stride + kx * self.cols.dilation - self.cols.pad_before;
                        for ci in 0..cin {
                            let wp = wr.add((kx * cin + ci) * cout);
                            let mut w = [_mm256_setzero_ps(); V];
                            for (v, w) in w.iter_mut().enumerate() {
                                *w = lanes.load(wp.add(8 * v));
                            }
                            for (j, a) in acc.iter_mut().enumerate() {
                                let x = _mm256_broadcast_ss(
                                    &*xr.add((ix0 + j * self.cols.stride) * cin + ci),
                                );
                                for (v, a) in a.iter_mut().enumerate() {
                                    *a = _mm256_fmadd_ps(x, w[v], *a);
                                }
                            }
                        }
                    }
                }
                for (j, a) in acc.into_iter().enumerate() {
                    for (v, a) in a.into_iter().enumerate() {
                        let o = out.add((ox + j) * cout + cb + 8 * v);
                        self.finish(a, cb + 8 * v, lanes, o);
                    }
                }
            }
        }

        /// Pixels ox..ox+N (interior), all output channels.
        ///
        /// # Safety
        /// As [`tile`](Self::tile), for all channels.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn block<const N: usize>(&self, ox: usize, out: *mut f32) {
            let cout = self.cout;
            let mut cb = 0;
            // SAFETY: every tile's channels are below cout.
            unsafe {
                while cb + 16 <= cout {
                    self.tile::<N, 2>(ox, cb, Lanes::new(8), out);
                    cb += 16;
                }
                while cb < cout {
                    self.tile::<N, 1>(ox, cb, Lanes::new(cout - cb), out);
                    cb += 8;
                }
            }
        }

        /// Interior pixels lo..hi: blocks of 6, then one by one.
        ///
        /// # Safety
        /// AVX2+FMA; every tap of pixels lo..hi reads inside the row; `out`
        /// points at the output row.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn interior(&self, lo: usize, hi: usize, out: *mut f32) {
            let mut ox = lo;
            // SAFETY: each block covers pixels within lo..hi.
            unsafe {
                while ox + P <= hi {
                    self.block::<P>(ox, out);
                    ox += P;
                }
                while ox < hi {
                    self.block::<1>(ox, out);
                    ox += 1;
                }
            }
        }

        /// One pixel anywhere in the row; taps outside the row are skipped.
        ///
        /// # Safety
        /// AVX2+FMA; `px` points at the pixel's `cout` outputs.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn pixel_checked(&self, ox: usize, px: *mut f32) {
            let (cin, cout) = (self.cin, self.cout);
            let mut cb = 0;
            while cb < cout {
                let lanes = Lanes::new(cout - cb);
                // SAFETY: taps are read only when their column is in
                // 0..width; channel offsets stay below cout.
                unsafe {
                    let mut acc = _mm256_setzero_ps();
                    for r in 0..self.rows {
                        let xr = self.x.add(r * self.row_step);
                        let wr = self.weight.add(r * self.kw * cin * cout + cb);
                        for kx in 0..self.kw {
                            let Some(ix) = self.cols.input_index(ox, kx) else {
                                continue;
                            };
                            for ci in 0..cin {
                                let x = _mm256_broadcast_ss(&*xr.add(ix * cin + ci));
                                let w = lanes.load(wr.add((kx * cin + ci) * cout));
                                acc = _mm256_fmadd_ps(x, w, acc);
                            }
                        }
                    }
                    self.finish(acc, cb, lanes, px.add(cb));
                }
                cb += 8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, Array4, s};

    use super::*;
    use crate::geometry::{ConvGeometry, ConvParams, Padding};

    /// Every channel tail (16-channel tiles, a masked last vector), border
    /// pixels and rows (including taps that miss the image under wide
    /// padding), strides and dilations, against the oracle. Inputs and
    /// weights are dyadic (multiples of 1/8 below 1), so every sum is exact
    /// and the comparison is equality. The output sits inside a larger
    /// buffer of guard values that must stay untouched.
    #[test]
    fn matches_oracle_exactly_and_writes_nothing_else() {
        let Some(cpu) = super::super::Avx2Fma::detect() else {
            eprintln!("skipped: no AVX2+FMA on this CPU (the kernel cannot run here)");
            return;
        };
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 24) % 16) as f32 / 8.0 - 1.0
        };
        let paddings = [
            Padding::Same,
            Padding::Valid,
            Padding::Explicit {
                top: 5,
                bottom: 0,
                left: 0,
                right: 6,
            },
        ];
        let mut cases = 0;
        for (cin, cout) in [(1, 1), (3, 8), (3, 16), (3, 32), (2, 13), (4, 24), (3, 40)] {
            for (h, w) in [(1, 1), (4, 3), (7, 15)] {
                for kernel in [[3, 3], [1, 4]] {
                    for (stride, dilation) in [(1, 1), (2, 1), (2, 2)] {
                        for padding in paddings {
                            let params = ConvParams {
                                stride: [stride, 3 - stride],
                                dilation: [dilation, dilation],
                                padding,
                            };
                            let Ok(g) = ConvGeometry::new(
                                [h, w],
                                kernel,
                                params.stride,
                                params.dilation,
                                padding,
                            ) else {
                                continue;
                            };
                            let batch = 2;
                            let x = Array4::from_shape_fn((batch, h, w, cin), |_| next());
                            let weight =
                                Array4::from_shape_fn((kernel[0], kernel[1], cin, cout), |_| {
                                    next()
                                });
                            let bias = Array1::from_shape_fn(cout, |_| next());
                            let with_bias = cout % 2 == 0;
                            let activation = [Activation::Relu6, Activation::Identity][cout % 2];
                            let expected = crate::reference::conv2d(
                                x.view(),
                                weight.view(),
                                with_bias.then(|| bias.view()),
                                &params,
                                1,
                            )
                            .unwrap()
                            .mapv(|v| activation.apply(v));
                            let p = DirectConv {
                                x: x.as_slice().unwrap(),
                                weight: weight.as_slice().unwrap(),
                                bias: with_bias.then(|| bias.as_slice().unwrap()),
                                cin,
                                cout,
                                geometry: g,
                                activation,
                            };
                            let (nrows, cols) = (batch * g.h.output, g.w.output * cout);
                            let guard = -1234.5f32;
                            let mut buf = Array2::from_elem((nrows + 2, cols + 9), guard);
                            rows(cpu, &p, 0, buf.slice_mut(s![1..nrows + 1, 4..4 + cols]));
                            let got = buf.slice(s![1..nrows + 1, 4..4 + cols]);
                            let want = expected.to_shape((nrows, cols)).unwrap();
                            assert_eq!(
                                got, want,
                                "cin {cin}, cout {cout}, {h}×{w}, kernel {kernel:?}, stride {stride}, \
                                 dilation {dilation}, {padding:?}"
                            );
                            buf.slice_mut(s![1..nrows + 1, 4..4 + cols]).fill(guard);
                            assert!(buf.iter().all(|&v| v == guard), "wrote outside its rows");
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 200, "only {cases} cases ran");
    }
}
