//! Chains of 1×1 and depthwise convs run band by band of rows: each
//! intermediate map lives in a buffer of a few hundred KiB, reused band
//! after band, so it stays in L2, where running the layers one after the
//! other writes every map out to L3 or memory and reads it back.
//!
//! Both kinds of conv are local in rows: an output row of a 1×1 conv reads
//! one input row, one of a depthwise conv `kh` input rows. So a band of the
//! last conv's output rows needs a band of rows of each map before it,
//! which the chain computes first to last. A band keeps the rows of each map
//! that the band before already computed (moved to the front of its buffer)
//! and computes only the fresh ones, so no row is computed twice. Every
//! element is computed by the same operations as layer by layer, so the
//! bits are the same.
//!
//! Used by [`InvertedResidual`](super::InvertedResidual) (expansion →
//! depthwise, then the projection of each band) and by
//! [`Sequential`](super::Sequential) for its runs of 1×1 and depthwise
//! layers with large maps, which may start with a standard conv on the
//! direct kernel (MobileNet v1 1.0-224's stem → `Conv2d_1_depthwise` →
//! `Conv2d_1_pointwise` → `Conv2d_2_depthwise`, whose maps between hold
//! 1.6, 1.6 and 3.2 MB an image, and the four layers after them).

use std::ops::Range;

use ndarray::{ArrayView4, ArrayViewMut2, ArrayViewMut4, s};

use crate::Float;
use crate::conv::{Conv2d, DepthwiseConv2d, PointwiseConv2d};
use crate::error::{Error, Result};
use crate::geometry::AxisGeometry;
use crate::layer::Layer;

/// Maps of at most this many bytes an image are not worth a band: they stay
/// in L2 between two layers anyway. (1 MiB, the L2 of a Zen 4 core.)
pub(crate) const WHOLE_BYTES: usize = 1024 * 1024;
/// About this many bytes of the largest intermediate map a band on one
/// thread: with the other maps' bands and the input rows, within half of L2.
const BAND_BYTES: usize = 256 * 1024;
/// The same on several threads, where each conv of a band is split over
/// them: larger bands pay fewer hand-offs, and each core holds its share.
/// Measured on the Zen 4 (MobileNetV2 1.0-224, in-process A/B against the
/// whole-map pass, medians of 60 forwards): on 2 threads 1 MiB bands gave
/// 0.91–0.94× the time, 2 MiB 0.96–0.97×, 512 KiB 0.97–0.99×, 256 KiB 1.03×;
/// on 1 thread 128 KiB 0.92–0.93×, 256 KiB 0.89–0.92×, 512 KiB 0.93–0.95×.
const BAND_BYTES_PARALLEL: usize = 1024 * 1024;

/// The most convs a chain holds (its row ranges live on the stack).
pub(crate) const MAX_STAGES: usize = 8;

/// One conv of a chain.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stage<'a, F: Float> {
    Pointwise(&'a PointwiseConv2d<F>),
    Depthwise(&'a DepthwiseConv2d<F>),
    /// A standard conv on the direct kernel (an RGB stem), first in a chain
    /// only: it reads the chain's whole input.
    Conv(&'a Conv2d<F>),
}

impl<F: Float> Stage<'_, F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        match self {
            Stage::Pointwise(pw) => pw.output_shape(input),
            Stage::Depthwise(dw) => dw.output_shape(input),
            Stage::Conv(conv) => conv.output_shape(input),
        }
    }

    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        match self {
            Stage::Pointwise(pw) => pw.scratch_len(input),
            Stage::Depthwise(dw) => dw.scratch_len(input),
            Stage::Conv(conv) => conv.scratch_len(input),
        }
    }

    /// The vertical geometry of a depthwise stage on `input` (`None` for a
    /// 1×1 conv, which maps each row to one row, and for a conv), when it
    /// can run on bands: with a kernel (the direct one for a conv), and no
    /// output row that sees only padding (a band of such rows would have no
    /// input rows).
    fn rows(&self, input: [usize; 4]) -> Result<Option<AxisGeometry>> {
        match self {
            Stage::Pointwise(_) => Ok(None),
            // Never read: a conv stage is first, and reads all of its input.
            Stage::Conv(conv) if conv.runs_direct() => Ok(None),
            Stage::Conv(_) => Err(Error::Unsupported(
                "a conv that does not run the direct kernel cannot run on bands".into(),
            )),
            Stage::Depthwise(dw) => {
                let g = dw.geometry(input)?.h;
                match banded_rows(dw, g) {
                    true => Ok(Some(g)),
                    false => Err(Error::Unsupported(
                        "a depthwise conv that cannot run on bands".into(),
                    )),
                }
            }
        }
    }

    /// Whether the stage can run on bands of `input` (see
    /// [`rows`](Self::rows)); allocates nothing (a forward asks).
    pub(crate) fn bands(&self, input: [usize; 4]) -> bool {
        match self {
            Stage::Pointwise(_) => true,
            Stage::Conv(conv) => conv.runs_direct(),
            Stage::Depthwise(dw) => dw.geometry(input).is_ok_and(|g| banded_rows(dw, g.h)),
        }
    }
}

/// Whether a depthwise conv with vertical geometry `g` runs on bands: with
/// a kernel, and no output row that sees only padding.
fn banded_rows<F: Float>(dw: &DepthwiseConv2d<F>, g: AxisGeometry) -> bool {
    let extent = g.extent();
    dw.runs_a_kernel() && g.pad_before < extent && g.pad_after < extent
}

/// The input rows that output rows `out` of a conv with vertical geometry
/// `g` read (all of them: `g` is `None` for a 1×1 conv), clamped to the
/// image.
fn input_rows(g: Option<&AxisGeometry>, out: Range<usize>) -> Range<usize> {
    let Some(g) = g else { return out };
    let lo = (out.start * g.stride)
        .saturating_sub(g.pad_before)
        .min(g.input);
    let hi = ((out.end - 1) * g.stride + g.extent())
        .saturating_sub(g.pad_before)
        .min(g.input)
        .max(lo);
    lo..hi
}

/// `g` for output rows `out` over input rows `input` (from
/// [`input_rows`]): padding only where the band meets the image's top or
/// bottom.
fn band_geometry(g: &AxisGeometry, out: Range<usize>, input: Range<usize>) -> AxisGeometry {
    let pad_before = g.pad_before + input.start - out.start * g.stride;
    let span = (out.end - out.start - 1) * g.stride + g.extent();
    AxisGeometry {
        input: input.end - input.start,
        pad_before,
        pad_after: span.saturating_sub(input.end - input.start + pad_before),
        output: out.end - out.start,
        ..*g
    }
}

/// A chain's shapes and row geometry for one input shape: everything a
/// band needs, on the stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    stages: usize,
    /// The input shape of each stage, then the last stage's output.
    shapes: [[usize; 4]; MAX_STAGES + 1],
    /// Each depthwise stage's vertical geometry.
    rows: [Option<AxisGeometry>; MAX_STAGES],
}

impl Plan {
    /// The plan of `stages` (2 to [`MAX_STAGES`], the last a depthwise conv,
    /// each able to run on bands) on `input`.
    ///
    /// # Errors
    /// A stage's error on its input shape, as [`new_at`](Self::new_at).
    pub(crate) fn new<F: Float>(stages: &[Stage<'_, F>], input: [usize; 4]) -> Result<Self> {
        Self::new_at(stages, input).map_err(|(_, e)| e)
    }

    /// As [`new`](Self::new), an error paired with the index of the stage
    /// that failed (a `Sequential` names that layer).
    pub(crate) fn new_at<F: Float>(
        stages: &[Stage<'_, F>],
        input: [usize; 4],
    ) -> std::result::Result<Self, (usize, Error)> {
        assert!(
            (2..=MAX_STAGES).contains(&stages.len())
                && matches!(stages.last(), Some(Stage::Depthwise(_))),
            "a chain of {} stages",
            stages.len()
        );
        let mut plan = Plan {
            stages: stages.len(),
            shapes: [[0; 4]; MAX_STAGES + 1],
            rows: [None; MAX_STAGES],
        };
        assert!(
            !stages[1..].iter().any(|s| matches!(s, Stage::Conv(_))),
            "a conv stage is first in its chain"
        );
        plan.shapes[0] = input;
        for (j, stage) in stages.iter().enumerate() {
            let at = |e| (j, e);
            plan.rows[j] = stage.rows(plan.shapes[j]).map_err(at)?;
            plan.shapes[j + 1] = stage.output_shape(plan.shapes[j]).map_err(at)?;
        }
        Ok(plan)
    }

    /// The output shape of stage `j`.
    fn output(&self, j: usize) -> [usize; 4] {
        self.shapes[j + 1]
    }

    /// Elements of one row of stage `j`'s output.
    fn row(&self, j: usize) -> usize {
        let [_, _, w, c] = self.output(j);
        w * c
    }

    /// The rows of each stage's output that output rows `out` of the last
    /// stage need (the last stage's own: `out`).
    fn needs(&self, out: Range<usize>) -> [Range<usize>; MAX_STAGES] {
        let mut need: [Range<usize>; MAX_STAGES] = Default::default();
        let last = self.stages - 1;
        need[last] = out;
        for j in (1..=last).rev() {
            need[j - 1] = input_rows(self.rows[j].as_ref(), need[j].clone());
        }
        need
    }

    /// At most how many rows of stage `j`'s output a band of `band` output
    /// rows needs (unclamped, so never fewer than [`needs`](Self::needs)).
    fn band_rows(&self, j: usize, band: usize) -> Option<usize> {
        let mut rows = band;
        for g in self.rows[j + 1..self.stages].iter().rev().flatten() {
            rows = (rows - 1)
                .checked_mul(g.stride)?
                .checked_add((g.kernel - 1).checked_mul(g.dilation)? + 1)?;
        }
        Some(rows)
    }

    /// Output rows a band: about `bytes` of the largest intermediate map a
    /// band, at least one row.
    fn band(&self, bytes: usize, elem: usize) -> usize {
        let oh = self.output(self.stages - 1)[1];
        let fits = |band: usize| {
            (0..self.stages - 1).all(|j| {
                self.band_rows(j, band)
                    .and_then(|r| r.checked_mul(self.row(j))?.checked_mul(elem))
                    .is_some_and(|b| b <= bytes)
            })
        };
        // The largest that fits (more rows never need fewer bytes).
        let (mut lo, mut hi) = (1, oh.max(1));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        lo
    }

    /// Output rows a band on this many threads.
    fn band_now(&self, elem: usize) -> usize {
        let bytes = match crate::parallel::threads() {
            1 => BAND_BYTES,
            _ => BAND_BYTES_PARALLEL,
        };
        self.band(bytes, elem)
    }

    /// Elements of each intermediate map's band buffer, sized for the larger
    /// bands (so that a scratch planned on one thread also serves several).
    fn buffers(&self, elem: usize) -> Result<[usize; MAX_STAGES]> {
        let band = self.band(BAND_BYTES_PARALLEL, elem);
        let mut lens = [0; MAX_STAGES];
        for (j, len) in lens.iter_mut().enumerate().take(self.stages - 1) {
            let rows = self
                .band_rows(j, band)
                .ok_or(Error::Overflow("a band of a chain of convs"))?;
            *len = rows
                .checked_mul(self.row(j))
                .ok_or(Error::Overflow("a band of a chain of convs"))?;
        }
        Ok(lens)
    }

    /// Elements of scratch the chain needs: its band buffers, then the
    /// largest scratch of its convs and of `extra` (what [`run`]'s `f` needs).
    pub(crate) fn scratch_len<F: Float>(
        &self,
        stages: &[Stage<'_, F>],
        extra: usize,
    ) -> Result<usize> {
        let inner = stages.iter().enumerate().try_fold(extra, |m, (j, s)| {
            Ok::<_, Error>(m.max(s.scratch_len(self.shapes[j])?))
        })?;
        self.buffers(std::mem::size_of::<F>())?
            .into_iter()
            .try_fold(inner, usize::checked_add)
            .ok_or(Error::Overflow("a chain of convs' scratch"))
    }

    /// Output rows of the larger bands (at most what a band hands to `f`).
    pub(crate) fn max_band(&self, elem: usize) -> usize {
        self.band(BAND_BYTES_PARALLEL, elem)
    }

    /// Whether some intermediate map passes [`WHOLE_BYTES`] an image.
    pub(crate) fn worth_it(&self, elem: usize) -> bool {
        (0..self.stages - 1).any(|j| {
            let [_, h, _, _] = self.output(j);
            h.saturating_mul(self.row(j)).saturating_mul(elem) > WHOLE_BYTES
        })
    }
}

/// One band of the last stage, as [`run`] hands it on: its output rows
/// `rows` of image `image`, its vertical geometry over the band's input
/// rows (`geometry`), and those rows of the map before it (`input`).
pub(crate) struct Band<'a, F> {
    pub image: usize,
    pub rows: Range<usize>,
    pub geometry: AxisGeometry,
    pub input: &'a [F],
}

/// For each band of the last stage's output rows, stages `..last` on the
/// rows the band needs, each into its band buffer, then `f` on the band
/// (which runs the last stage, a depthwise conv, and whatever follows),
/// with `inner` as scratch for all. `x` is the chain's input (in standard
/// layout when the first stage is a depthwise conv or a conv), `scratch` holds
/// [`Plan::scratch_len`] elements.
pub(crate) fn run<F: Float>(
    stages: &[Stage<'_, F>],
    plan: &Plan,
    x: ArrayView4<'_, F>,
    scratch: &mut [F],
    mut f: impl FnMut(Band<'_, F>, &mut [F]) -> Result<()>,
) -> Result<()> {
    let elem = std::mem::size_of::<F>();
    let lens = plan.buffers(elem)?;
    let last = plan.stages - 1;
    let need = lens
        .iter()
        .try_fold(0usize, |n, &l| n.checked_add(l))
        .ok_or(Error::Overflow("a chain of convs' band buffers"))?;
    crate::layer::check_scratch("a chain of convs' bands", scratch.len(), need)?;
    let (mut bufs, mut inner): ([&mut [F]; MAX_STAGES], &mut [F]) = (Default::default(), scratch);
    for (j, &len) in lens.iter().enumerate().take(last) {
        let (buf, rest) = std::mem::take(&mut inner).split_at_mut(len);
        (bufs[j], inner) = (buf, rest);
    }
    let band = plan.band_now(elem);
    let oh = plan.output(last)[1];
    let [n, h, w, c] = plan.shapes[0];
    let x_slice = match stages[0] {
        Stage::Depthwise(_) | Stage::Conv(_) => Some(x.as_slice().expect(
            "a chain that starts with a depthwise conv or a conv reads a standard-layout input",
        )),
        Stage::Pointwise(_) => None,
    };
    for b in 0..n {
        // Stage j's output rows held[j] of image b sit at the front of
        // bufs[j].
        let mut held: [Range<usize>; MAX_STAGES] = Default::default();
        for o0 in (0..oh).step_by(band) {
            let need = plan.needs(o0..(o0 + band).min(oh));
            for j in 0..last {
                let row = plan.row(j);
                let keep = held[j].start.max(need[j].start)..held[j].end.max(need[j].start);
                // (None to keep where the taps skip rows: a 1×1 depthwise
                // conv of stride 2.)
                if !keep.is_empty() {
                    bufs[j].copy_within(
                        (keep.start - held[j].start) * row..(keep.end - held[j].start) * row,
                        0,
                    );
                }
                let fresh = keep.end.max(need[j].start)..need[j].end;
                held[j] = need[j].clone();
                if fresh.is_empty() {
                    continue;
                }
                let (before, after) = bufs.split_at_mut(j);
                let dst = &mut after[0][(fresh.start - need[j].start) * row..][..fresh.len() * row];
                // Stage j's input: x, or the band of the map before.
                let (src, src_lo): (&[F], usize) = match j {
                    0 => (
                        x_slice.map_or(&[][..], |x| &x[b * h * w * c..][..h * w * c]),
                        0,
                    ),
                    _ => (&before[j - 1][..], need[j - 1].start),
                };
                let input_shape = plan.shapes[j];
                match stages[j] {
                    Stage::Pointwise(pw) => {
                        let [_, _, ow, oc] = plan.output(j);
                        let dst = ArrayViewMut4::from_shape([1, fresh.len(), ow, oc], dst)
                            .expect("sized by the plan");
                        let [_, _, iw, ic] = input_shape;
                        let rows = fresh.start - src_lo..fresh.end - src_lo;
                        match j {
                            0 => pw.forward_with_scratch(
                                x.slice(s![b..b + 1, fresh.start..fresh.end, .., ..]),
                                dst,
                                inner,
                            )?,
                            _ => {
                                let src = ArrayView4::from_shape(
                                    [1, rows.len(), iw, ic],
                                    &src[rows.start * iw * ic..rows.end * iw * ic],
                                )
                                .expect("held by the band before");
                                pw.forward_with_scratch(src, dst, inner)?;
                            }
                        }
                    }
                    Stage::Conv(conv) => {
                        // Rows of image b from the whole input, as in a
                        // whole forward.
                        let oh0 = plan.output(0)[1];
                        let dst = ArrayViewMut2::from_shape((fresh.len(), row), dst)
                            .expect("sized by the plan");
                        let x = x_slice.expect("a standard-layout input (checked)");
                        conv.forward_rows_direct(x, input_shape, b * oh0 + fresh.start, dst)?;
                    }
                    Stage::Depthwise(dw) => {
                        let g = plan.rows[j].as_ref().expect("planned");
                        let rows = input_rows(Some(g), fresh.clone());
                        let [_, _, iw, ic] = input_shape;
                        let src =
                            &src[(rows.start - src_lo) * iw * ic..(rows.end - src_lo) * iw * ic];
                        let dst = ArrayViewMut2::from_shape((fresh.len(), row), dst)
                            .expect("sized by the plan");
                        dw.forward_band(src, input_shape, band_geometry(g, fresh, rows), dst)?;
                    }
                }
            }
            let g = plan.rows[last]
                .as_ref()
                .expect("the last stage is a depthwise conv");
            let rows = input_rows(Some(g), need[last].clone());
            let [_, _, iw, ic] = plan.shapes[last];
            let input = match last {
                0 => unreachable!("chains have two stages or more"),
                _ => {
                    &bufs[last - 1][(rows.start - need[last - 1].start) * iw * ic..]
                        [..rows.len() * iw * ic]
                }
            };
            f(
                Band {
                    image: b,
                    rows: need[last].clone(),
                    geometry: band_geometry(g, need[last].clone(), rows),
                    input,
                },
                inner,
            )?;
        }
    }
    Ok(())
}

/// Runs `stages` band by band on `x` into `out` (standard layout, the last
/// stage's output shape), with `scratch` of at least [`Plan::scratch_len`]
/// elements.
pub(crate) fn run_into<F: Float>(
    stages: &[Stage<'_, F>],
    plan: &Plan,
    x: ArrayView4<'_, F>,
    mut out: ArrayViewMut4<'_, F>,
    scratch: &mut [F],
) -> Result<()> {
    let last = plan.stages - 1;
    let Stage::Depthwise(dw) = stages[last] else {
        unreachable!("the last stage is a depthwise conv")
    };
    let [_, oh, ow, oc] = plan.output(last);
    let row = ow * oc;
    let input_shape = plan.shapes[last];
    let out = out
        .as_slice_mut()
        .expect("a chain writes a standard-layout output");
    run(stages, plan, x, scratch, |band, _| {
        let at = (band.image * oh + band.rows.start) * row;
        let dst = ArrayViewMut2::from_shape(
            (band.rows.len(), row),
            &mut out[at..at + band.rows.len() * row],
        )
        .expect("rows of the output");
        dw.forward_band(band.input, input_shape, band.geometry, dst)
    })
}
