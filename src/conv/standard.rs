//! Standard (optionally grouped and dilated) 2-D convolution: im2col + GEMM,
//! a direct kernel for few input channels, one GEMM for a plain 1×1.

use ndarray::{Array4, ArrayView4, ArrayViewMut2, ArrayViewMut4, s};

use super::{
    ConvBuilder, ConvCore, bias_activation, check_output, core_accessors, dims4,
    pointwise::gemm_nhwc, with_standard_output,
};
use crate::cost::{self, Cost};
use crate::error::{Error, Result};
use crate::geometry::{ConvGeometry, ConvParams, Padding};
use crate::kernels::direct::{DirectConv, DirectIsa, MAX_CHANNELS};
use crate::layer::{KeptScratch, Layer, LayerInfo, check_scratch, checked_len};
use crate::norm::BatchNorm;
use crate::parallel::{balanced_chunk, chunk_rows, for_each_row_chunk, for_each_row_chunk_pair};
use crate::plan::{GemmKernel, Isa, Plan};
use crate::{Float, reference};

/// A standard 2-D convolution (cross-correlation) with stride, dilation,
/// padding, groups, optional bias and a fused activation.
///
/// Runs as im2col + GEMM (per group, through matrixmultiply), split over
/// threads by output rows; a 1×1, stride-1, unpadded, ungrouped conv skips
/// im2col and is one GEMM on the input as it lies.
///
/// # Shapes
/// weight `[kh, kw, C_in / groups, C_out]` (HWIO), bias `[C_out]`, input
/// `[N, H, W, C_in]`, output `[N, OH, OW, C_out]` with OH, OW from
/// [`Padding`].
///
/// ```
/// use ndarray::Array4;
/// use sepconv::{Activation, Conv2d, Padding};
/// // 3×3 box filter, TensorFlow SAME, stride 2, on a 4×4 image of ones.
/// let conv = Conv2d::builder(Array4::<f32>::ones((3, 3, 1, 1)))
///     .stride(2)
///     .padding(Padding::Same)
///     .activation(Activation::Relu6)
///     .build()?;
/// let y = conv.forward(Array4::ones((1, 4, 4, 1)).view())?;
/// // SAME pads (0, 1): the top-left window is full (9, clamped to 6), the
/// // bottom-right one overlaps the padding (2×2 = 4).
/// assert_eq!(y.shape(), &[1, 2, 2, 1]);
/// assert_eq!(y[[0, 0, 0, 0]], 6.0);
/// assert_eq!(y[[0, 1, 1, 0]], 4.0);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d<F: Float> {
    core: ConvCore<F>,
    groups: usize,
    plan: Plan<ConvKernel>,
    /// The im2col scratch of [`Layer::forward_into`] between calls.
    kept: KeptScratch<F>,
}

/// The kernels a [`Conv2d`] is planned onto.
#[derive(Clone, Debug, PartialEq)]
enum ConvKernel {
    /// A 1×1, stride-1, unpadded, ungrouped conv: one GEMM on the input as
    /// it lies.
    Gemm1x1(GemmKernel),
    /// Few input channels (an RGB stem): the f32 direct kernel (AVX2+FMA or
    /// AVX-512F) reads the input in place.
    Direct(DirectIsa),
    /// im2col patches in cache-sized tiles, then the GEMM.
    Im2col(GemmKernel),
}

/// Builds a [`Conv2d`]; see [`Conv2d::builder`] and [`ConvBuilder`].
pub type Conv2dBuilder<F> = ConvBuilder<F, Conv2d<F>>;

impl<F: Float> ConvBuilder<F, Conv2d<F>> {
    /// Groups (default 1): input and output channels are split into `groups`
    /// independent convolutions.
    pub fn groups(self, g: usize) -> Self {
        self.set_groups(g)
    }

    /// Validates, plans and builds the layer.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an empty weight, [`Error::InvalidGroups`] when
    /// `groups` is 0 or does not divide C_out, [`Error::ShapeMismatch`] for a
    /// bias of the wrong length, [`Error::InvalidStride`] /
    /// [`Error::InvalidDilation`] for zeros, [`Error::Overflow`].
    pub fn build(self) -> Result<Conv2d<F>> {
        let (core, groups) = self.finish("Conv2d", |shape, groups| {
            let [_, _, cin_g, cout] = dims4(shape);
            if groups == 0 || cout % groups != 0 {
                return Err(Error::InvalidGroups {
                    groups,
                    in_channels: cin_g.saturating_mul(groups),
                    out_channels: cout,
                });
            }
            cin_g
                .checked_mul(groups)
                .ok_or(Error::Overflow("Conv2d input channels"))?;
            Ok(cout)
        })?;
        Ok(Conv2d::assemble(core, groups))
    }
}

impl<F: Float> Conv2d<F> {
    /// The layer from a checked core, planned.
    fn assemble(core: ConvCore<F>, groups: usize) -> Self {
        let mut conv = Conv2d {
            core,
            groups,
            plan: Plan::Reference,
            kept: KeptScratch::new(),
        };
        conv.replan();
        conv
    }

    /// Chooses the kernel for the stored settings, once.
    fn replan(&mut self) {
        let [kh, kw] = self.kernel_size();
        let p = &self.core.params;
        let unpadded = match p.padding {
            // SAME pads nothing for a 1×1 kernel at stride 1.
            Padding::Valid | Padding::Same => true,
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => [top, bottom, left, right] == [0; 4],
        };
        let is_1x1 = [kh, kw] == [1, 1] && self.groups == 1 && p.stride == [1, 1] && unpadded;
        let direct = self.groups == 1
            && self.in_channels() <= MAX_CHANNELS
            && crate::kernels::cast::same::<F, f32>();
        // im2col writes the padding as zeros, and 0 × ±inf is NaN where the
        // oracle (and the direct kernel) skip the padding: a padded conv
        // whose weight is not all finite runs the oracle instead, so that
        // padding contributes nothing on every path (see `crate::conv`).
        let may_pad = match p.padding {
            Padding::Valid => false,
            // SAME pads a 1×1 kernel by nothing at any stride.
            Padding::Same => [kh, kw] != [1, 1],
            Padding::Explicit { .. } => !unpadded,
        };
        let exact_padding = !may_pad || self.core.weight.iter().all(|w| w.is_finite());
        let (core, groups) = (&self.core, self.groups);
        self.plan = Plan::new(core.algorithm, |isa: Isa| {
            let gemm = || match groups {
                1 => GemmKernel::plan(isa, core.matrix(), core.bias_slice()),
                _ => GemmKernel::Portable,
            };
            match isa {
                _ if is_1x1 => ConvKernel::Gemm1x1(gemm()),
                Isa::Avx512F(_, wide) if direct => ConvKernel::Direct(DirectIsa::Avx512(wide)),
                Isa::Avx2Fma(cpu) if direct => ConvKernel::Direct(DirectIsa::Avx2(cpu)),
                _ => ConvKernel::Im2col(gemm()),
            }
        });
        if !exact_padding && matches!(self.plan, Plan::Kernel(ConvKernel::Im2col(_))) {
            self.plan = Plan::Reference;
        }
    }

    /// Starts building a conv with weight `[kh, kw, C_in / groups, C_out]`.
    pub fn builder(weight: Array4<F>) -> Conv2dBuilder<F> {
        ConvBuilder::new(weight)
    }

    core_accessors!();

    /// The weight `[kh, kw, C_in / groups, C_out]`.
    pub fn weight(&self) -> ArrayView4<'_, F> {
        self.core.weight.view()
    }
    /// Stride, dilation and padding.
    pub fn params(&self) -> &ConvParams {
        &self.core.params
    }
    /// Groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// Kernel size [kh, kw].
    pub fn kernel_size(&self) -> [usize; 2] {
        self.core.kernel_size()
    }
    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.core.weight.shape()[2] * self.groups
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.core.weight.shape()[3]
    }

    /// The resolved geometry for an input of shape `[N, H, W, C_in]`.
    ///
    /// # Errors
    /// [`Error::ZeroSize`], [`Error::ChannelMismatch`] and the geometry errors
    /// ([`Error::KernelTooLarge`], …); [`Error::Layout`] instead of a channel
    /// mismatch when the input looks NCHW or the weight looks like PyTorch's
    /// OIHW (the message names the [`layout`](crate::layout) converter).
    pub fn geometry(&self, input: [usize; 4]) -> Result<ConvGeometry> {
        self.core
            .geometry("Conv2d input", input, self.in_channels())
            .map_err(|e| super::weight_layout_hint(e, &input, self.core.weight.shape(), false))
    }

    /// This layer with `bn` folded in (weights scaled per output channel,
    /// bias `scale·b + β − mean·scale`).
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`] if `bn` does not have `C_out` channels.
    pub fn fold_batch_norm(&self, bn: &BatchNorm<F>) -> Result<Self> {
        let core = self.core.fold("Conv2d", bn, self.out_channels())?;
        Ok(Conv2d::assemble(core, self.groups))
    }

    super::layer_methods!();

    /// The im2col split of `rows` output rows on `threads` threads: rows per
    /// chunk, rows per patch tile, and the patch rows all chunks need.
    ///
    /// When the weights are small (`kh·kw·C_in/g · C_out` ≤ 64 Ki values, as
    /// in MobileNet's first conv) a chunk goes through in tiles of
    /// [`tile_rows`] rows, gathered into the same small patch buffer, so the
    /// patches are still in cache when the GEMM reads them. Larger weights
    /// keep one patch matrix per chunk, so the GEMM streams them once.
    fn im2col_split(&self, rows: usize, threads: usize) -> (usize, usize, usize) {
        let (k, cout) = (self.core.matrix().nrows(), self.out_channels());
        let chunk = balanced_chunk(rows, threads, 1, 8);
        let tile = tile_rows(k, cout).unwrap_or(chunk).min(chunk);
        (chunk, tile, rows.div_ceil(chunk) * tile)
    }

    /// The threads to split im2col over: this pool's, unless `scratch` is
    /// too short for that split (it was sized for fewer threads), then one.
    fn im2col_threads(&self, rows: usize, scratch: usize) -> usize {
        let k = self.core.matrix().nrows();
        let threads = crate::parallel::threads();
        let fits = |t| self.im2col_split(rows, t).2.saturating_mul(k) <= scratch;
        if fits(threads) { threads } else { 1 }
    }

    fn run(
        &self,
        kernel: &ConvKernel,
        x: ArrayView4<'_, F>,
        g: &ConvGeometry,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let cout = self.out_channels();
        with_standard_output("Conv2d", out, |out| {
            let rows = out.len() / cout;
            let out2 = out
                .into_shape_with_order((rows, cout))
                .expect("standard layout");
            match kernel {
                ConvKernel::Gemm1x1(gemm) => gemm_nhwc(
                    x,
                    self.core.matrix(),
                    gemm,
                    out2,
                    self.core.bias.as_ref(),
                    self.core.activation,
                    &mut [],
                ),
                ConvKernel::Direct(isa) => return self.direct(*isa, x, g, out2),
                ConvKernel::Im2col(gemm) => return self.im2col_gemm(gemm, x, g, out2, scratch),
            }
            Ok(())
        })
    }

    /// Whether forwards run the direct kernel (few input channels, f32).
    pub(crate) fn runs_direct(&self) -> bool {
        matches!(self.plan.kernel(), Ok(Some(ConvKernel::Direct(_))))
    }

    /// Output rows `first_row..` (of the `[N·OH, OW·C_out]` output matrix)
    /// of a forward on `x` (a contiguous input of shape `input`) into `out`,
    /// with the direct kernel, its rows split over the threads.
    ///
    /// # Errors
    /// As [`geometry`](Self::geometry); [`Error::Unsupported`] when the plan
    /// is another kernel (a chain plans only convs that
    /// [`runs_direct`](Self::runs_direct)), with nothing written.
    ///
    /// **Panics** if the buffers do not match (bugs in the caller).
    pub(crate) fn forward_rows_direct(
        &self,
        x: &[F],
        input: [usize; 4],
        first_row: usize,
        out: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        let g = self.geometry(input)?;
        let Some(&ConvKernel::Direct(isa)) = self.plan.kernel()? else {
            return Err(Error::Unsupported(
                "only a conv on the direct kernel runs rows of a chain".into(),
            ));
        };
        assert!(
            x.len() == input.iter().product::<usize>()
                && out.ncols() == g.w.output * self.out_channels()
                && first_row + out.nrows() <= input[0] * g.h.output,
            "conv rows {first_row}.. of a {input:?} input into {:?}",
            out.shape()
        );
        self.direct_rows(isa, x, &g, first_row, out);
        Ok(())
    }

    /// The direct kernel on the whole input `x`, into `out` (`[N·OH·OW,
    /// C_out]`, standard layout).
    fn direct(
        &self,
        isa: DirectIsa,
        x: ArrayView4<'_, F>,
        g: &ConvGeometry,
        out: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        let x = super::contiguous_input("Conv2d", &x)?;
        let rows = out.nrows() / g.w.output.max(1);
        let out = out
            .into_shape_with_order((rows, g.w.output * self.out_channels()))
            .expect("standard layout");
        self.direct_rows(isa, &x, g, 0, out);
        Ok(())
    }

    /// Rows `first_row..` of the `[N·OH, OW·C_out]` output of the direct
    /// kernel on the contiguous input `x` into `out`, in chunks of rows over
    /// the threads.
    fn direct_rows(
        &self,
        isa: DirectIsa,
        x: &[F],
        g: &ConvGeometry,
        first_row: usize,
        out: ArrayViewMut2<'_, F>,
    ) {
        let problem = DirectConv {
            x,
            weight: self.core.weight_slice(),
            bias: self.core.bias_slice(),
            cin: self.in_channels(),
            cout: self.out_channels(),
            geometry: *g,
            activation: self.core.activation,
        };
        let rows = out.nrows();
        #[cfg(target_arch = "x86_64")]
        for_each_row_chunk(out, chunk_rows(rows, 4, 1), |r0, block| {
            problem.rows(isa, first_row + r0, block)
        });
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (isa, problem, out, rows, first_row);
            unreachable!("no SIMD token off x86-64");
        }
    }

    /// im2col + GEMM over chunks of output rows: each chunk gathers its
    /// patches `[rows, kh·kw·C_in/g]` per group, in tiles (see
    /// [`im2col_split`](Self::im2col_split)), and multiplies them by that
    /// group's weight columns. The patch tiles live in `scratch`.
    fn im2col_gemm(
        &self,
        gemm: &GemmKernel,
        x: ArrayView4<'_, F>,
        g: &ConvGeometry,
        out: ArrayViewMut2<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let batch = x.shape()[0];
        // The patches are gathered from a contiguous copy when the view is not one.
        let x = super::contiguous_input("Conv2d", &x)?;
        let [kh, kw] = self.kernel_size();
        let (h, w, cin) = (g.h.input, g.w.input, self.in_channels());
        let (cin_g, cout) = (self.core.weight.shape()[2], self.out_channels());
        let cout_g = cout / self.groups;
        let k = kh * kw * cin_g;
        let w2 = self.core.matrix();
        let (ow, pixels) = (g.w.output, g.output_pixels());
        let rows = batch * pixels;
        // Each chunk's patch tile [tile, kh·kw·C_in/g] lives in the caller's
        // scratch (its length checked by the forward).
        let threads = self.im2col_threads(rows, scratch.len());
        let (chunk, tile, patch_rows) = self.im2col_split(rows, threads);
        let cols = ArrayViewMut2::from_shape((patch_rows, k), &mut scratch[..patch_rows * k])
            .expect("checked by the forward");
        // A whole kernel row of taps is one contiguous run of the input when
        // the conv is ungrouped and undilated along the width.
        let whole_rows = self.groups == 1 && g.w.dilation == 1;
        for_each_row_chunk_pair(out, chunk, cols, tile, |r0, mut oc, mut col| {
            for t0 in (0..oc.nrows()).step_by(tile) {
                let t = tile.min(oc.nrows() - t0);
                let mut col = col.slice_mut(s![..t, ..]);
                let mut oc = oc.slice_mut(s![t0..t0 + t, ..]);
                for group in 0..self.groups {
                    let (mut b, q) = ((r0 + t0) / pixels, (r0 + t0) % pixels);
                    let (mut oy, mut ox) = (q / ow, q % ow);
                    for mut patch in col.rows_mut() {
                        let patch = patch.as_slice_mut().expect("contiguous");
                        // First input column of the patch, when the whole
                        // kernel row lies inside the image.
                        let run = (ox * g.w.stride)
                            .checked_sub(g.w.pad_before)
                            .filter(|&ix| whole_rows && ix + kw <= w);
                        for (ky, dst) in patch.chunks_exact_mut(kw * cin_g).enumerate() {
                            let Some(iy) = g.h.input_index(oy, ky) else {
                                dst.fill(F::zero()); // padding row
                                continue;
                            };
                            let row = (b * h + iy) * w;
                            if let Some(ix) = run {
                                copy_short(dst, &x[(row + ix) * cin..][..kw * cin]);
                                continue;
                            }
                            for (kx, dst) in dst.chunks_exact_mut(cin_g).enumerate() {
                                match g.w.input_index(ox, kx) {
                                    Some(ix) => {
                                        let src = (row + ix) * cin + group * cin_g;
                                        copy_short(dst, &x[src..src + cin_g]);
                                    }
                                    None => dst.fill(F::zero()), // padding
                                }
                            }
                        }
                        // Next output pixel, without dividing.
                        ox += 1;
                        if ox == ow {
                            (ox, oy) = (0, oy + 1);
                            if oy == g.h.output {
                                (oy, b) = (0, b + 1);
                            }
                        }
                    }
                    // Ungrouped and planned: the fast kernel, bias and activation fused.
                    let act = self.core.activation;
                    if gemm
                        .packed(col.view(), oc.view_mut(), act, false, &mut [])
                        .is_ok()
                    {
                        break;
                    }
                    let cols = s![.., group * cout_g..(group + 1) * cout_g];
                    gemm_portable(col.view(), w2.slice(cols), oc.slice_mut(cols));
                    if group + 1 == self.groups {
                        bias_activation(oc.view_mut(), self.core.bias.as_ref(), act);
                    }
                }
            }
        });
        Ok(())
    }
}

impl<F: Float> Layer<F> for Conv2d<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        let [oh, ow] = self.geometry(input)?.output();
        Ok([input[0], oh, ow, self.out_channels()])
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let [n, oh, ow, _] = Layer::output_shape(self, input)?;
        cost::conv2d(
            [n, oh, ow],
            self.kernel_size(),
            self.in_channels(),
            self.out_channels(),
            self.groups,
            self.core.bias.is_some(),
        )
    }

    fn info(&self) -> LayerInfo {
        let [kh, kw, ci, co] = dims4(self.core.weight.shape());
        let filter = match self.groups {
            1 => format!("{kh}×{kw}×{ci}×{co}"),
            g => format!("{kh}×{kw}×{ci}×{co} g{g}"),
        };
        LayerInfo::new("Conv2d")
            .with_stride(self.core.params.stride)
            .with_filter(filter)
    }

    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        let [n, oh, ow, _] = Layer::output_shape(self, input)?;
        if !matches!(self.plan, Plan::Kernel(ConvKernel::Im2col(_))) {
            return Ok(0);
        }
        // Enough for this pool's split and for one thread's.
        let rows = crate::layer::checked_len("Conv2d output rows", &[n, oh, ow])?;
        let k = self.core.matrix().nrows();
        let patch_rows = [1, crate::parallel::threads()]
            .map(|t| self.im2col_split(rows, t).2)
            .into_iter()
            .max()
            .unwrap_or(0);
        crate::layer::checked_len("Conv2d im2col scratch", &[patch_rows, k])
    }

    /// As the provided method, with the im2col scratch kept between calls
    /// (allocated by the first, or when a larger input needs more).
    fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        self.kept.forward_into(self, "Conv2d scratch", x, out)
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let input = dims4(x.shape());
        let g = self.geometry(input)?;
        check_output(
            "Conv2d output",
            out.shape(),
            Layer::output_shape(self, input)?,
        )?;
        let Some(kernel) = self.plan.kernel()? else {
            let bias = self.core.bias.as_ref().map(|b| b.view());
            let y = reference::conv2d(x, self.weight(), bias, self.params(), self.groups);
            return self.core.reference_into(y, out);
        };
        if let ConvKernel::Im2col(_) = kernel {
            let rows = out.len() / self.out_channels();
            let k = self.core.matrix().nrows();
            let needed = checked_len("Conv2d im2col scratch", &[self.im2col_split(rows, 1).2, k])?;
            check_scratch("Conv2d", scratch.len(), needed)?;
        }
        self.run(kernel, x, &g, out, scratch)
    }

    fn as_conv(&self, _: crate::layer::Token) -> Option<&Conv2d<F>> {
        Some(self)
    }

    fn set_algorithm(&mut self, algorithm: crate::Algorithm) {
        self.core.algorithm = algorithm;
        self.replan();
    }
}

/// `c = a · b` with matrixmultiply.
fn gemm_portable<F: Float>(
    a: ndarray::ArrayView2<'_, F>,
    b: ndarray::ArrayView2<'_, F>,
    c: ArrayViewMut2<'_, F>,
) {
    crate::kernels::gemm::gemm(a, b, F::zero(), c);
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (often 3 or 9
/// values), as an inlined loop instead of a call to `memmove`.
#[inline]
fn copy_short<F: Copy>(dst: &mut [F], src: &[F]) {
    assert_eq!(dst.len(), src.len(), "copy_short lengths");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

/// Rows per patch tile when the weights (`k × cout`) are small enough to be
/// re-read from cache for every tile: about 64 KiB of f32 patches, a multiple
/// of 48 rows (whole 6- and 8-row register blocks). `None`: no tiling.
fn tile_rows(k: usize, cout: usize) -> Option<usize> {
    (k * cout <= 64 * 1024).then(|| ((16 * 1024 / k.max(1)) / 48).max(1) * 48)
}

impl<F: Float> From<&super::PointwiseConv2d<F>> for Conv2d<F> {
    /// The same 1×1 conv as a general [`Conv2d`].
    fn from(pw: &super::PointwiseConv2d<F>) -> Self {
        let (ci, co) = pw.weight().dim();
        let weight = pw
            .weight()
            .to_owned()
            .into_shape_with_order((1, 1, ci, co))
            .expect("standard layout");
        let params = ConvParams {
            padding: Padding::Valid,
            ..ConvParams::default()
        };
        let core = ConvCore::new(
            weight,
            pw.bias().cloned(),
            params,
            pw.activation(),
            pw.algorithm(),
        );
        Conv2d::assemble(core, 1)
    }
}
