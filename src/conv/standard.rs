//! Standard (optionally grouped and dilated) 2-D convolution: im2col + GEMM.

use ndarray::{Array1, Array4, ArrayView4, ArrayViewMut2, ArrayViewMut4, s};

use super::{
    Algorithm, bias_activation, check_bias, check_input, check_output, check_weight, contiguous,
    dims4, pointwise::gemm_nhwc, settings_setters, with_standard_output,
};
use crate::activation::Activation;
use crate::cost::{self, Cost};
use crate::error::{Error, Result};
use crate::geometry::{ConvGeometry, ConvParams, Padding};
use crate::kernels::direct::{DirectConv, MAX_CHANNELS};
use crate::norm::BatchNorm;
use crate::parallel::{chunk_rows, for_each_row_chunk, for_each_row_chunk_pair};
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
    weight: Array4<F>,
    bias: Option<Array1<F>>,
    params: ConvParams,
    groups: usize,
    activation: Activation,
    algorithm: Algorithm,
    /// `[kh·kw·C_in, C_out]` weight and bias packed for the fast GEMM
    /// (ungrouped convs, types and CPUs that have one).
    packed: Option<F::Packed>,
}

/// Builds a [`Conv2d`]; see [`Conv2d::builder`]. Every setting has a default
/// (stride 1, dilation 1, `Valid`, groups 1, no bias, identity, `Auto`).
#[derive(Clone, Debug)]
#[must_use = "call .build()"]
pub struct Conv2dBuilder<F: Float> {
    weight: Array4<F>,
    bias: Option<Array1<F>>,
    params: ConvParams,
    groups: usize,
    activation: Activation,
    algorithm: Algorithm,
}

impl<F: Float> Conv2dBuilder<F> {
    settings_setters!();

    /// Bias `[C_out]` (default none).
    pub fn bias(mut self, b: Array1<F>) -> Self {
        self.bias = Some(b);
        self
    }

    /// Optional bias.
    pub fn bias_opt(mut self, b: Option<Array1<F>>) -> Self {
        self.bias = b;
        self
    }

    /// Groups (default 1): input and output channels are split into `groups`
    /// independent convolutions.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// Validates and builds the layer.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an empty weight, [`Error::InvalidGroups`] when
    /// `groups` is 0 or does not divide C_out, [`Error::ShapeMismatch`] for a
    /// bias of the wrong length, [`Error::InvalidStride`] /
    /// [`Error::InvalidDilation`] for zeros, [`Error::Overflow`].
    pub fn build(self) -> Result<Conv2d<F>> {
        check_weight("Conv2d weight", self.weight.shape())?;
        let [_, _, cin_g, cout] = dims4(self.weight.shape());
        if self.groups == 0 || cout % self.groups != 0 {
            return Err(Error::InvalidGroups {
                groups: self.groups,
                in_channels: cin_g.saturating_mul(self.groups),
                out_channels: cout,
            });
        }
        cin_g
            .checked_mul(self.groups)
            .ok_or(Error::Overflow("Conv2d input channels"))?;
        check_bias("Conv2d bias", self.bias.as_ref().map(|b| b.len()), cout)?;
        check_params(&self.params)?;
        Ok(Conv2d::assemble(
            self.weight.as_standard_layout().into_owned(),
            contiguous(self.bias),
            self.params,
            self.groups,
            self.activation,
            self.algorithm,
        ))
    }
}

/// Rejects zero strides and dilations at build time (the geometry checks them
/// again per input, with the same errors).
pub(crate) fn check_params(p: &ConvParams) -> Result<()> {
    if p.stride.contains(&0) {
        return Err(Error::InvalidStride(p.stride));
    }
    if p.dilation.contains(&0) {
        return Err(Error::InvalidDilation(p.dilation));
    }
    Ok(())
}

impl<F: Float> Conv2d<F> {
    /// The layer from validated parts (standard-layout weight, contiguous bias).
    fn assemble(
        weight: Array4<F>,
        bias: Option<Array1<F>>,
        params: ConvParams,
        groups: usize,
        activation: Activation,
        algorithm: Algorithm,
    ) -> Self {
        let cout = weight.shape()[3];
        let packed = (groups == 1)
            .then(|| {
                let w2 = weight
                    .view()
                    .into_shape_with_order((weight.len() / cout, cout))
                    .expect("standard layout");
                F::pack(w2, bias.as_ref().and_then(|b| b.as_slice()))
            })
            .flatten();
        Conv2d {
            weight,
            bias,
            params,
            groups,
            activation,
            algorithm,
            packed,
        }
    }

    /// Starts building a conv with weight `[kh, kw, C_in / groups, C_out]`.
    pub fn builder(weight: Array4<F>) -> Conv2dBuilder<F> {
        Conv2dBuilder {
            weight,
            bias: None,
            params: ConvParams::default(),
            groups: 1,
            activation: Activation::Identity,
            algorithm: Algorithm::Auto,
        }
    }

    /// Sets the fused activation.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Forces an implementation.
    pub fn with_algorithm(mut self, a: Algorithm) -> Self {
        self.algorithm = a;
        self
    }

    /// The weight `[kh, kw, C_in / groups, C_out]`.
    pub fn weight(&self) -> ArrayView4<'_, F> {
        self.weight.view()
    }
    /// The bias, if any.
    pub fn bias(&self) -> Option<&Array1<F>> {
        self.bias.as_ref()
    }
    /// Stride, dilation and padding.
    pub fn params(&self) -> &ConvParams {
        &self.params
    }
    /// Groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// Kernel size [kh, kw].
    pub fn kernel_size(&self) -> [usize; 2] {
        [self.weight.shape()[0], self.weight.shape()[1]]
    }
    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.shape()[2] * self.groups
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[3]
    }

    /// The resolved geometry for an input of shape `[N, H, W, C_in]`.
    ///
    /// # Errors
    /// [`Error::ZeroSize`], [`Error::ChannelMismatch`] and the geometry errors
    /// ([`Error::KernelTooLarge`], …).
    pub fn geometry(&self, input: [usize; 4]) -> Result<ConvGeometry> {
        check_input("Conv2d input", &input, self.in_channels())?;
        self.params
            .resolve([input[1], input[2]], self.kernel_size())
    }

    /// The output shape `[N, OH, OW, C_out]` for an input of shape `input`.
    ///
    /// # Errors
    /// As [`geometry`](Self::geometry).
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        let [oh, ow] = self.geometry(input)?.output();
        Ok([input[0], oh, ow, self.out_channels()])
    }

    /// Mult-adds and parameters for an input of shape `input` (whole batch).
    ///
    /// # Errors
    /// As [`geometry`](Self::geometry).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let [n, oh, ow, _] = self.output_shape(input)?;
        cost::conv2d(
            [n, oh, ow],
            self.kernel_size(),
            self.in_channels(),
            self.out_channels(),
            self.groups,
            self.bias.is_some(),
        )
    }

    /// This layer with `bn` folded in (weights scaled per output channel,
    /// bias `scale·b + β − mean·scale`).
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`] if `bn` does not have `C_out` channels.
    pub fn fold_batch_norm(&self, bn: &BatchNorm<F>) -> Result<Self> {
        bn.check_channels("Conv2d", self.out_channels())?;
        let mut weight = self.weight.clone();
        let cout = self.out_channels();
        let cols = weight
            .view_mut()
            .into_shape_with_order((self.weight.len() / cout, cout))
            .expect("standard layout");
        let bias = bn.fold_into(cols, self.bias.as_ref());
        Ok(Conv2d::assemble(
            weight,
            Some(bias),
            self.params,
            self.groups,
            self.activation,
            self.algorithm,
        ))
    }

    /// Runs the layer.
    ///
    /// # Errors
    /// As [`geometry`](Self::geometry).
    pub fn forward(&self, x: ArrayView4<'_, F>) -> Result<Array4<F>> {
        let g = self.geometry(dims4(x.shape()))?;
        let algorithm = self.algorithm.resolve()?;
        let mut out = Array4::zeros((x.shape()[0], g.h.output, g.w.output, self.out_channels()));
        self.run(x, &g, out.view_mut(), algorithm, &mut Vec::new());
        Ok(out)
    }

    /// Runs the layer into `out` (any layout), which must have the output shape.
    ///
    /// # Errors
    /// As [`geometry`](Self::geometry), and [`Error::ShapeMismatch`] for a
    /// wrong `out`; `out` is untouched on error.
    pub fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        self.forward_into_scratch(x, out, &mut Vec::new())
    }

    /// As [`forward_into`](Self::forward_into), with the im2col patch matrix
    /// in `scratch` (grown when too small, else reused: a planned caller
    /// allocates nothing per call).
    pub(crate) fn forward_into_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut Vec<F>,
    ) -> Result<()> {
        let g = self.geometry(dims4(x.shape()))?;
        check_output(
            "Conv2d output",
            out.shape(),
            [x.shape()[0], g.h.output, g.w.output, self.out_channels()],
        )?;
        let algorithm = self.algorithm.resolve()?;
        self.run(x, &g, out, algorithm, scratch);
        Ok(())
    }

    fn run(
        &self,
        x: ArrayView4<'_, F>,
        g: &ConvGeometry,
        mut out: ArrayViewMut4<'_, F>,
        algorithm: Algorithm,
        scratch: &mut Vec<F>,
    ) {
        if algorithm == Algorithm::Reference {
            let y = reference::conv2d(
                x,
                self.weight.view(),
                self.bias.as_ref().map(|b| b.view()),
                &self.params,
                self.groups,
            )
            .expect("validated");
            out.assign(&y);
            out.map_inplace(|v| *v = self.activation.apply(*v));
            return;
        }
        let [kh, kw] = self.kernel_size();
        let cout = self.out_channels();
        let is_1x1 = kh == 1
            && kw == 1
            && self.groups == 1
            && g.h.stride == 1
            && g.w.stride == 1
            && g.h.pad_before + g.h.pad_after + g.w.pad_before + g.w.pad_after == 0;
        with_standard_output(out, |out| {
            let rows = out.len() / cout;
            let out2 = out
                .into_shape_with_order((rows, cout))
                .expect("standard layout");
            let w2 = self
                .weight
                .view()
                .into_shape_with_order((self.weight.len() / cout, cout))
                .expect("standard layout");
            let packed = self
                .packed
                .as_ref()
                .filter(|_| algorithm == Algorithm::Avx2Fma);
            if is_1x1 {
                gemm_nhwc(x, w2, packed, out2, self.bias.as_ref(), self.activation);
            } else if packed.is_some() && self.groups == 1 && self.in_channels() <= MAX_CHANNELS {
                // Few input channels (an RGB stem): read the input in place.
                self.direct(x, g, out2);
            } else {
                self.im2col_gemm(x, g, out2, packed, scratch);
            }
        });
    }

    /// The direct kernel over chunks of output rows (see
    /// [`crate::kernels::direct`]); only called where it exists (f32 with
    /// packed weights, so AVX2+FMA) and takes the problem.
    fn direct(&self, x: ArrayView4<'_, F>, g: &ConvGeometry, out: ArrayViewMut2<'_, F>) {
        let x = super::contiguous_input(&x);
        let problem = DirectConv {
            x: &x,
            weight: self.weight.as_slice().expect("standard layout"),
            bias: super::bias_slice(self.bias.as_ref()),
            cin: self.in_channels(),
            cout: self.out_channels(),
            geometry: *g,
            activation: self.activation,
        };
        let rows = out.nrows() / g.w.output.max(1);
        let out = out
            .into_shape_with_order((rows, g.w.output * self.out_channels()))
            .expect("standard layout");
        for_each_row_chunk(out, chunk_rows(rows, 4, 1), |r0, block| {
            assert!(
                F::direct_conv_rows(&problem, r0, block),
                "the direct kernel exists wherever the GEMM weights are packed"
            );
        });
    }

    /// im2col + GEMM over chunks of output rows: each chunk gathers its
    /// patches `[rows, kh·kw·C_in/g]` per group and multiplies them by that
    /// group's weight columns.
    ///
    /// When the weights are small (`kh·kw·C_in/g · C_out` ≤ 64 Ki values, as
    /// in MobileNet's first conv) a chunk goes through in tiles of
    /// [`tile_rows`] rows, gathered into the same small patch buffer, so the
    /// patches are still in cache when the GEMM reads them. Larger weights
    /// keep one patch matrix per chunk, so the GEMM streams them once.
    fn im2col_gemm(
        &self,
        x: ArrayView4<'_, F>,
        g: &ConvGeometry,
        out: ArrayViewMut2<'_, F>,
        packed: Option<&F::Packed>,
        scratch: &mut Vec<F>,
    ) {
        let batch = x.shape()[0];
        // The patches are gathered from a contiguous copy when the view is not one.
        let x = super::contiguous_input(&x);
        let [kh, kw] = self.kernel_size();
        let (h, w, cin) = (g.h.input, g.w.input, self.in_channels());
        let (cin_g, cout) = (self.weight.shape()[2], self.out_channels());
        let cout_g = cout / self.groups;
        let k = kh * kw * cin_g;
        let w2 = self
            .weight
            .view()
            .into_shape_with_order((k, cout))
            .expect("standard layout");
        let (ow, pixels) = (g.w.output, g.output_pixels());
        let rows = batch * pixels;
        let chunk = chunk_rows(rows, 1, 8);
        let tile = tile_rows(k, cout).unwrap_or(chunk).min(chunk);
        // Each chunk's patch tile [tile, kh·kw·C_in/g] lives in the caller's
        // scratch, grown when too small and otherwise reused as it is.
        let patch_rows = rows.div_ceil(chunk) * tile;
        if scratch.len() < patch_rows * k {
            scratch.resize(patch_rows * k, F::zero());
        }
        let cols = ArrayViewMut2::from_shape((patch_rows, k), &mut scratch[..patch_rows * k])
            .expect("sized above");
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
                    // Ungrouped: the fast kernel, bias and activation fused.
                    if let Some(p) = packed
                        && F::gemm_packed(col.view(), p, oc.view_mut(), self.activation, false)
                    {
                        break;
                    }
                    let cols = s![.., group * cout_g..(group + 1) * cout_g];
                    F::gemm(col.view(), w2.slice(cols), F::zero(), oc.slice_mut(cols));
                    if group + 1 == self.groups {
                        bias_activation(oc.view_mut(), self.bias.as_ref(), self.activation);
                    }
                }
            }
        });
    }
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
        Conv2d::assemble(
            weight,
            pw.bias().cloned(),
            params,
            1,
            pw.activation(),
            Algorithm::Auto,
        )
    }
}
