//! A 1×1 conv and the depthwise conv that reads its output, run band by
//! band of rows: the 1×1 conv's output lives in a buffer of a few hundred
//! KiB that is reused band after band, so it stays in L2, where the
//! whole-map pass writes the map out to L3 or memory and reads it back.
//!
//! Used by [`InvertedResidual`](super::InvertedResidual) (expansion →
//! depthwise, then the projection of each band) and by
//! [`Sequential`](super::Sequential) for a `PointwiseConv2d` followed by a
//! `DepthwiseConv2d` (MobileNet v1's `Conv2d_1_pointwise` → `Conv2d_2_depthwise`
//! and the two after it, whose 1×1 outputs hold 1.6–3.2 MB an image). Every
//! element is computed by the same operations as in the whole-map pass, so
//! the bits are the same.

use ndarray::{ArrayView4, ArrayViewMut2, ArrayViewMut4, s};

use crate::Float;
use crate::conv::{DepthwiseConv2d, PointwiseConv2d};
use crate::error::{Error, Result};
use crate::geometry::AxisGeometry;
use crate::layer::{Layer, checked_len};

/// 1×1 outputs of at most this many bytes an image run whole: they stay in
/// L2 between the two convs anyway. (1 MiB, the L2 of a Zen 4 core.)
const WHOLE_BYTES: usize = 1024 * 1024;
/// About this many bytes of 1×1 output rows a band on one thread: with the
/// depthwise band and the input rows, within half of L2.
const BAND_BYTES: usize = 256 * 1024;
/// The same on several threads, where each conv of a band is split over
/// them: larger bands pay fewer hand-offs, and each core holds its share.
/// Measured on the Zen 4 (MobileNetV2 1.0-224, in-process A/B against the
/// whole-map pass, medians of 60 forwards): on 2 threads 1 MiB bands gave
/// 0.91–0.94× the time, 2 MiB 0.96–0.97×, 512 KiB 0.97–0.99×, 256 KiB 1.03×;
/// on 1 thread 128 KiB 0.92–0.93×, 256 KiB 0.89–0.92×, 512 KiB 0.93–0.95×.
const BAND_BYTES_PARALLEL: usize = 1024 * 1024;

/// Output rows a band for the depthwise conv `dw` on the 1×1 conv's output
/// of shape `expanded` (about `bytes` of its rows a band, at least the rows
/// one output row reads), or `None` when the pair runs whole: a map of at
/// most [`WHOLE_BYTES`] an image, a depthwise plan that runs no kernel, or
/// output rows that see only padding (a band of them would have no input
/// rows).
fn band_rows<F: Float>(
    dw: &DepthwiseConv2d<F>,
    expanded: [usize; 4],
    bytes: usize,
) -> Result<Option<usize>> {
    let [_, h, w, c] = expanded;
    let row_bytes = w
        .saturating_mul(c)
        .saturating_mul(std::mem::size_of::<F>())
        .max(1);
    if !dw.runs_a_kernel() || h.saturating_mul(row_bytes) <= WHOLE_BYTES {
        return Ok(None);
    }
    let g = dw.geometry(expanded)?.h;
    let extent = (g.kernel - 1) * g.dilation + 1;
    if g.pad_before >= extent || g.pad_after >= extent {
        return Ok(None);
    }
    let rows = (bytes / row_bytes).max(extent);
    Ok(Some(((rows - extent) / g.stride + 1).min(g.output)))
}

/// Output rows a band on this many threads (see [`BAND_BYTES_PARALLEL`]).
pub(crate) fn band<F: Float>(
    dw: &DepthwiseConv2d<F>,
    expanded: [usize; 4],
) -> Result<Option<usize>> {
    let bytes = match crate::parallel::threads() {
        1 => BAND_BYTES,
        _ => BAND_BYTES_PARALLEL,
    };
    band_rows(dw, expanded, bytes)
}

/// Output rows of the larger bands (the depthwise band buffer's height).
/// Call only where [`buffer_len`] is `Some`.
pub(crate) fn band_output_rows<F: Float>(
    dw: &DepthwiseConv2d<F>,
    expanded: [usize; 4],
) -> Result<usize> {
    Ok(band_rows(dw, expanded, BAND_BYTES_PARALLEL)?.unwrap_or(0))
}

/// Elements of the band buffer of 1×1 output rows, sized for the larger
/// bands (so that a scratch planned on one thread also serves several), or
/// `None` when the pair runs whole.
pub(crate) fn buffer_len<F: Float>(
    dw: &DepthwiseConv2d<F>,
    expanded: [usize; 4],
) -> Result<Option<usize>> {
    let Some(band) = band_rows(dw, expanded, BAND_BYTES_PARALLEL)? else {
        return Ok(None);
    };
    let [_, _, w, c] = expanded;
    let [kh, _] = dw.kernel_size();
    let p = dw.params();
    let rows = (band - 1)
        .checked_mul(p.stride[0])
        .and_then(|r| r.checked_add((kh - 1).checked_mul(p.dilation[0])? + 1))
        .ok_or(Error::Overflow("a 1×1 → depthwise band"))?;
    checked_len("a 1×1 → depthwise band", &[rows, w, c]).map(Some)
}

/// One band, as [`run`] hands it on: output rows `rows` of image `image`,
/// the depthwise conv's vertical geometry over the band's input rows
/// (`geometry`), and those rows of the 1×1 output (`input`).
pub(crate) struct Band<'a, F> {
    pub image: usize,
    pub rows: std::ops::Range<usize>,
    pub geometry: AxisGeometry,
    pub input: &'a [F],
}

/// For each band of `band` depthwise output rows: `pw` on the input rows
/// its taps reach into `buffer` (rows the band before already computed are
/// moved to its front, not computed again), then `f` on the band (which
/// runs the depthwise conv and whatever follows), with `inner` as scratch
/// for both. `expanded` is `pw`'s output shape for `x`; `buffer` holds
/// [`buffer_len`] elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<F: Float>(
    pw: &PointwiseConv2d<F>,
    dw: &DepthwiseConv2d<F>,
    x: ArrayView4<'_, F>,
    expanded: [usize; 4],
    band: usize,
    buffer: &mut [F],
    inner: &mut [F],
    mut f: impl FnMut(Band<'_, F>, &mut [F]) -> Result<()>,
) -> Result<()> {
    let [n, h, w, c] = expanded;
    let g = dw.geometry(expanded)?.h;
    let oh = g.output;
    let row = w * c;
    for b in 0..n {
        // 1×1 output rows lo..hi of image b sit at the front of the buffer.
        let (mut lo, mut hi) = (0, 0);
        for o0 in (0..oh).step_by(band) {
            let o1 = (o0 + band).min(oh);
            // The input rows the band's taps reach, clamped to the image.
            let need_lo = (o0 * g.stride).saturating_sub(g.pad_before).min(h);
            let need_hi = ((o1 - 1) * g.stride + (g.kernel - 1) * g.dilation + 1)
                .saturating_sub(g.pad_before)
                .min(h)
                .max(need_lo);
            let keep = lo.max(need_lo)..hi.max(need_lo);
            buffer.copy_within((keep.start - lo) * row..(keep.end - lo) * row, 0);
            let fresh = keep.end.max(need_lo)..need_hi;
            if !fresh.is_empty() {
                let at = (fresh.start - need_lo) * row;
                let rows = fresh.end - fresh.start;
                let dst =
                    ArrayViewMut4::from_shape([1, rows, w, c], &mut buffer[at..at + rows * row])
                        .expect("sized by buffer_len");
                pw.forward_with_scratch(
                    x.slice(s![b..b + 1, fresh.start..fresh.end, .., ..]),
                    dst,
                    inner,
                )?;
            }
            (lo, hi) = (need_lo, need_hi);
            // The band's vertical geometry: its rows from need_lo, its
            // padding only where it meets the image's top or bottom.
            let pad_before = g.pad_before + need_lo - o0 * g.stride;
            let span = (o1 - o0 - 1) * g.stride + (g.kernel - 1) * g.dilation + 1;
            let geometry = AxisGeometry {
                input: need_hi - need_lo,
                pad_before,
                pad_after: span.saturating_sub(need_hi - need_lo + pad_before),
                output: o1 - o0,
                ..g
            };
            let band = Band {
                image: b,
                rows: o0..o1,
                geometry,
                input: &buffer[..(need_hi - need_lo) * row],
            };
            f(band, inner)?;
        }
    }
    Ok(())
}

/// The scratch a `pw` → `dw` pair needs when it runs band by band on an
/// input of shape `input` (the band buffer, then the larger of the two
/// convs' scratch), or `None` when it runs as two layers.
pub(crate) fn pair_scratch_len<F: Float>(
    pw: &PointwiseConv2d<F>,
    dw: &DepthwiseConv2d<F>,
    input: [usize; 4],
) -> Result<Option<usize>> {
    let expanded = pw.output_shape(input)?;
    let Some(buffer) = buffer_len(dw, expanded)? else {
        return Ok(None);
    };
    let inner = pw.scratch_len(input)?.max(dw.scratch_len(expanded)?);
    buffer
        .checked_add(inner)
        .map(Some)
        .ok_or(Error::Overflow("a 1×1 → depthwise pair's scratch"))
}

/// Runs `dw(pw(x))` band by band into `out` (standard layout, `dw`'s output
/// shape), with `scratch` of at least [`pair_scratch_len`] elements. Returns
/// `false`, with nothing written, when the pair runs as two layers.
pub(crate) fn run_pair<F: Float>(
    pw: &PointwiseConv2d<F>,
    dw: &DepthwiseConv2d<F>,
    x: ArrayView4<'_, F>,
    mut out: ArrayViewMut4<'_, F>,
    scratch: &mut [F],
) -> Result<bool> {
    let input = crate::conv::dims4(x.shape());
    let expanded = pw.output_shape(input)?;
    let (Some(band), Some(len)) = (band(dw, expanded)?, buffer_len(dw, expanded)?) else {
        return Ok(false);
    };
    if !out.is_standard_layout() || scratch.len() < len {
        return Ok(false);
    }
    let [_, _, ow, oc] = dw.output_shape(expanded)?;
    let (buffer, inner) = scratch.split_at_mut(len);
    let row = ow * oc;
    let out = out.as_slice_mut().expect("standard layout");
    run(pw, dw, x, expanded, band, buffer, inner, |band, _| {
        let oh = dw.geometry(expanded)?.h.output;
        let at = (band.image * oh + band.rows.start) * row;
        let rows = band.rows.end - band.rows.start;
        let dst = ArrayViewMut2::from_shape((rows, row), &mut out[at..at + rows * row])
            .expect("rows of the output");
        let ran = dw.forward_band(band.input, expanded, band.geometry, dst)?;
        assert!(ran, "banded pairs run a depthwise kernel");
        Ok(())
    })?;
    Ok(true)
}
