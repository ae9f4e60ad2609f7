//! The SIMD direct convolution for f32 with few input channels, written once
//! over [`Simd`](super::simd::Simd) and built for AVX2+FMA and AVX-512F.
//!
//! Loop order per output row: 6 pixels along the row, then output channels
//! in tiles of two vectors (16 channels with AVX2, 32 with AVX-512), then the
//! taps `(ky, kx, ci)`. The 6-pixel block lives in 12 accumulators across all
//! `kh·kw·C_in` taps; each tap loads two weight vectors and broadcasts one
//! input value per pixel, straight from the input row (no im2col). Output
//! channels that do not fill a tile end with (masked) single vectors.
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

pub(crate) use super::simd::RowIsa;

/// Runs `p` on output rows `first_row..first_row + out.nrows()` (rows of the
/// `[N·OH, OW·C_out]` output) with the kernel built for `cpu`'s instruction
/// set (AVX2+FMA or AVX-512F), which the token proves exists.
///
/// **Panics** if `C_in` is 0 or above [`MAX_CHANNELS`] or the buffers do not
/// match the problem (bugs in the planner or the caller).
pub(crate) fn rows<T: RowIsa>(
    cpu: T,
    p: &DirectConv<'_, f32>,
    first_row: usize,
    mut out: ArrayViewMut2<'_, f32>,
) {
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
            // Saturates only for a dilation past the image height (a kernel
            // of height 1 takes any): then no output has two kernel rows
            // inside the image, and the step is never taken.
            row_step: g.h.dilation.saturating_mul(g.w.input * cin),
            rows: ky1 - ky0,
            weight: p.weight[ky0 * kw * cin * cout..].as_ptr(),
            bias: p.bias.map(<[f32]>::as_ptr),
            cin,
            cout,
            kw,
            cols: g.w,
            activation: p.activation,
        };
        // SAFETY: the ISA exists (the `cpu` token). `row.x` points at input
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
                cpu.pixel_checked(&row, ox, orow.as_mut_ptr().add(ox * cout));
            }
            cpu.interior(&row, lo, hi, orow.as_mut_ptr());
        }
    }
}

/// One output row's problem, as raw pointers for the inner loops.
pub(crate) struct Row {
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

mod body {
    use super::Row;
    use crate::kernels::simd::{Lanes, RowKernel, Simd};

    /// Pixels per register block.
    const P: usize = 6;

    impl Row {
        /// `acc + bias` for channels `cb..` (masked), activated, stored at `o`.
        ///
        /// # Safety
        /// `S`'s ISA is enabled; the bias (when there is one) and `o` hold
        /// the lanes.
        #[inline(always)]
        unsafe fn finish<S: Simd>(&self, acc: S::V, cb: usize, lanes: Lanes<S>, o: *mut f32) {
            // SAFETY: as the function's contract.
            unsafe {
                let bias = match self.bias {
                    Some(b) => lanes.load(b.add(cb)),
                    None => S::zero(),
                };
                lanes.store(o, S::activate(self.activation, S::add(acc, bias)));
            }
        }

        /// Pixels ox..ox+N (interior), channels cb..cb+LANES·V, N·V
        /// accumulators.
        ///
        /// # Safety
        /// `S`'s ISA is enabled; every tap of those pixels reads inside the
        /// row; the channels (as masked by `lanes`, only partial with V = 1)
        /// are below cout; `out` points at the output row.
        #[inline(always)]
        unsafe fn tile<S: Simd, const N: usize, const V: usize>(
            &self,
            ox: usize,
            cb: usize,
            lanes: Lanes<S>,
            out: *mut f32,
        ) {
            let (cin, cout, l) = (self.cin, self.cout, S::LANES);
            // SAFETY: as the function's contract.
            unsafe {
                let mut acc = [[S::zero(); V]; N];
                for r in 0..self.rows {
                    let xr = self.x.add(r * self.row_step);
                    let wr = self.weight.add(r * self.kw * cin * cout + cb);
                    for kx in 0..self.kw {
                        // Input column of pixel ox, tap kx; pixel j is j·stride further.
                        let ix0 =
                            ox * self.cols.stride + kx * self.cols.dilation - self.cols.pad_before;
                        for ci in 0..cin {
                            let wp = wr.add((kx * cin + ci) * cout);
                            let mut w = [S::zero(); V];
                            for (v, w) in w.iter_mut().enumerate() {
                                *w = lanes.load(wp.add(l * v));
                            }
                            for (j, a) in acc.iter_mut().enumerate() {
                                let x = S::splat(xr.add((ix0 + j * self.cols.stride) * cin + ci));
                                for (v, a) in a.iter_mut().enumerate() {
                                    *a = S::fma(x, w[v], *a);
                                }
                            }
                        }
                    }
                }
                for (j, a) in acc.into_iter().enumerate() {
                    for (v, a) in a.into_iter().enumerate() {
                        let o = out.add((ox + j) * cout + cb + l * v);
                        self.finish(a, cb + l * v, lanes, o);
                    }
                }
            }
        }

        /// Pixels ox..ox+N (interior), all output channels: tiles of two
        /// vectors, then single (masked) vectors.
        ///
        /// # Safety
        /// As [`tile`](Self::tile), for all channels.
        #[inline(always)]
        unsafe fn block<S: Simd, const N: usize>(&self, ox: usize, out: *mut f32) {
            let (cout, l) = (self.cout, S::LANES);
            let mut cb = 0;
            // SAFETY: every tile's channels are below cout.
            unsafe {
                while cb + 2 * l <= cout {
                    self.tile::<S, N, 2>(ox, cb, Lanes::new(l), out);
                    cb += 2 * l;
                }
                while cb < cout {
                    self.tile::<S, N, 1>(ox, cb, Lanes::new(cout - cb), out);
                    cb += l;
                }
            }
        }
    }

    impl RowKernel for Row {
        /// Interior pixels lo..hi: blocks of 6, then one by one.
        ///
        /// # Safety
        /// `S`'s ISA is enabled; every tap of pixels lo..hi reads inside the
        /// row; `out` points at the output row.
        #[inline(always)]
        unsafe fn interior<S: Simd>(&self, lo: usize, hi: usize, out: *mut f32) {
            let mut ox = lo;
            // SAFETY: each block covers pixels within lo..hi.
            unsafe {
                while ox + P <= hi {
                    self.block::<S, P>(ox, out);
                    ox += P;
                }
                while ox < hi {
                    self.block::<S, 1>(ox, out);
                    ox += 1;
                }
            }
        }

        /// One pixel anywhere in the row; taps outside the row are skipped.
        ///
        /// # Safety
        /// `S`'s ISA is enabled; `px` points at the pixel's `cout` outputs.
        #[inline(always)]
        unsafe fn pixel_checked<S: Simd>(&self, ox: usize, px: *mut f32) {
            let (cin, cout) = (self.cin, self.cout);
            let mut cb = 0;
            while cb < cout {
                // SAFETY: the ISA is enabled (the function's contract).
                let lanes = unsafe { Lanes::<S>::new(cout - cb) };
                // SAFETY: taps are read only when their column is in
                // 0..width; channel offsets stay below cout.
                unsafe {
                    let mut acc = S::zero();
                    for r in 0..self.rows {
                        let xr = self.x.add(r * self.row_step);
                        let wr = self.weight.add(r * self.kw * cin * cout + cb);
                        for kx in 0..self.kw {
                            let Some(ix) = self.cols.input_index(ox, kx) else {
                                continue;
                            };
                            for ci in 0..cin {
                                let x = S::splat(xr.add(ix * cin + ci));
                                let w = lanes.load(wr.add((kx * cin + ci) * cout));
                                acc = S::fma(x, w, acc);
                            }
                        }
                    }
                    self.finish(acc, cb, lanes, px.add(cb));
                }
                cb += S::LANES;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, Array4, s};

    use super::*;
    use crate::geometry::{ConvGeometry, ConvParams, Padding};

    /// Every channel tail (two-vector tiles of 16 or 32 channels, a masked
    /// last vector) of both builds, border pixels and rows (including taps that miss the image under wide
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
        let wide = super::super::Avx512F::detect();
        if wide.is_none() {
            eprintln!("not tested here: the AVX-512F build (this CPU lacks AVX-512F)");
        }
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
        for (cin, cout) in [
            (1, 1),
            (3, 8),
            (3, 16),
            (3, 32),
            (2, 13),
            (4, 24),
            (3, 40),
            (3, 17),
            (2, 48),
            (3, 64),
            (1, 70),
        ] {
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
                            let want = expected.to_shape((nrows, cols)).unwrap();
                            let check = |run: &dyn Fn(ArrayViewMut2<'_, f32>), isa: &str| {
                                let mut buf = Array2::from_elem((nrows + 2, cols + 9), guard);
                                run(buf.slice_mut(s![1..nrows + 1, 4..4 + cols]));
                                let got = buf.slice(s![1..nrows + 1, 4..4 + cols]);
                                assert_eq!(
                                    got, want,
                                    "{isa}: cin {cin}, cout {cout}, {h}×{w}, kernel {kernel:?}, \
                                     stride {stride}, dilation {dilation}, {padding:?}"
                                );
                                buf.slice_mut(s![1..nrows + 1, 4..4 + cols]).fill(guard);
                                assert!(
                                    buf.iter().all(|&v| v == guard),
                                    "{isa}: wrote outside its rows"
                                );
                            };
                            check(&|o| rows(cpu, &p, 0, o), "avx2");
                            if let Some(wide) = wide {
                                check(&|o| rows(wide, &p, 0, o), "avx512");
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 200, "only {cases} cases ran");
    }
}
