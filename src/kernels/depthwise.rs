//! Depthwise convolution rows, NHWC, channels innermost.
//!
//! The driver (`conv::depthwise`) hands each call a block of whole output
//! rows. For every tap (ky, kx) the kernel computes the range of output
//! columns whose input pixel is inside the image ([`AxisGeometry::valid_outputs`]),
//! so the inner loops run with no padding checks: the border is handled by
//! clipping ranges, not by testing pixels.

use ndarray::ArrayViewMut2;

use crate::Float;
use crate::activation::Activation;
use crate::geometry::ConvGeometry;

/// A depthwise problem over a contiguous NHWC input.
pub(crate) struct Depthwise<'a, F> {
    /// Input, standard layout `[N, H, W, C]`.
    pub x: &'a [F],
    /// Weight `[kh·kw, C·m]` (the crate's `[kh, kw, C, m]`, flattened).
    pub weight: &'a [F],
    /// Bias `[C·m]`.
    pub bias: Option<&'a [F]>,
    /// Channels C and multiplier m.
    pub channels: usize,
    /// Channel multiplier.
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
    /// `[N·OH, OW·C·m]` output matrix.
    pub(crate) fn rows(&self, first_row: usize, mut out: ArrayViewMut2<'_, F>) {
        let g = &self.geometry;
        let (c, m) = (self.channels, self.multiplier);
        let cm = c * m;
        let [kh, kw] = self.kernel;
        let (h, w) = (g.h.input, g.w.input);
        for (i, mut orow) in out.rows_mut().into_iter().enumerate() {
            let orow = orow.as_slice_mut().expect("output rows are contiguous");
            let (b, oy) = ((first_row + i) / g.h.output, (first_row + i) % g.h.output);
            match self.bias {
                Some(bias) => orow
                    .chunks_exact_mut(cm)
                    .for_each(|px| px.copy_from_slice(bias)),
                None => orow.fill(F::zero()),
            }
            for ky in 0..kh {
                let Some(iy) = g.h.input_index(oy, ky) else {
                    continue;
                };
                let xrow = &self.x[(b * h + iy) * w * c..][..w * c];
                for kx in 0..kw {
                    let wv = &self.weight[(ky * kw + kx) * cm..][..cm];
                    for ox in g.w.valid_outputs(kx) {
                        let ix = ox * g.w.stride + kx * g.w.dilation - g.w.pad_before;
                        let acc = &mut orow[ox * cm..][..cm];
                        let xi = &xrow[ix * c..][..c];
                        if m == 1 {
                            for ((a, &xv), &wv) in acc.iter_mut().zip(xi).zip(wv) {
                                *a += xv * wv;
                            }
                        } else {
                            for ((a, wv), &xv) in
                                acc.chunks_exact_mut(m).zip(wv.chunks_exact(m)).zip(xi)
                            {
                                for (a, &wv) in a.iter_mut().zip(wv) {
                                    *a += xv * wv;
                                }
                            }
                        }
                    }
                }
            }
            self.activation.apply_slice(orow);
        }
    }
}
