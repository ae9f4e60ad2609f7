//! Depthwise 2-D convolution: a direct NHWC kernel, channels innermost.

use ndarray::{Array4, ArrayView4, ArrayViewMut2, ArrayViewMut4};

use super::{ConvBuilder, ConvCore, check_output, core_accessors, dims4, with_standard_output};
use crate::cost::{self, Cost};
use crate::error::{Error, Result};
use crate::geometry::{ConvGeometry, ConvParams};
use crate::kernels::depthwise::{Depthwise, DepthwiseKernel};
use crate::layer::{Layer, LayerInfo};
use crate::norm::BatchNorm;
use crate::parallel::{chunk_rows, for_each_row_chunk};
use crate::plan::Plan;
use crate::{Float, reference};

/// A depthwise convolution: each input channel `c` is convolved with its own
/// `m` filters (the channel multiplier), giving output channels `c·m + j`.
///
/// Runs as a direct kernel over NHWC rows with the channel vector innermost
/// (never one small convolution per channel); the border is handled by
/// clipping each tap's output range, so the interior loops carry no padding
/// checks. Split over threads by output rows.
///
/// # Shapes
/// weight `[kh, kw, C, m]`, bias `[C·m]`, input `[N, H, W, C]`, output
/// `[N, OH, OW, C·m]`.
///
/// ```
/// use ndarray::Array4;
/// use sepconv::{DepthwiseConv2d, Padding};
/// // Two channels, 3×3 filters of 1 and of 2, SAME padding.
/// let mut w = Array4::<f64>::ones((3, 3, 2, 1));
/// w.slice_mut(ndarray::s![.., .., 1, ..]).fill(2.0);
/// let dw = DepthwiseConv2d::builder(w).padding(Padding::Same).build()?;
/// let y = dw.forward(Array4::ones((1, 5, 5, 2)).view())?;
/// assert_eq!(y[[0, 2, 2, 0]], 9.0); // interior: all 9 taps
/// assert_eq!(y[[0, 0, 0, 1]], 8.0); // corner: 4 taps × 2
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DepthwiseConv2d<F> {
    core: ConvCore<F>,
    plan: Plan<DepthwiseKernel>,
}

/// Builds a [`DepthwiseConv2d`]; see [`DepthwiseConv2d::builder`] and
/// [`ConvBuilder`].
pub type DepthwiseConv2dBuilder<F> = ConvBuilder<F, DepthwiseConv2d<F>>;

impl<F: Float> ConvBuilder<F, DepthwiseConv2d<F>> {
    /// Validates, plans and builds the layer.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an empty weight, [`Error::ShapeMismatch`] for a
    /// bias of the wrong length, [`Error::InvalidStride`] /
    /// [`Error::InvalidDilation`], [`Error::Overflow`].
    pub fn build(self) -> Result<DepthwiseConv2d<F>> {
        let (core, _) = self.finish("DepthwiseConv2d", |shape, _| {
            let [_, _, c, m] = dims4(shape);
            c.checked_mul(m)
                .ok_or(Error::Overflow("depthwise output channels"))
        })?;
        Ok(DepthwiseConv2d::assemble(core))
    }
}

impl<F: Float> DepthwiseConv2d<F> {
    fn assemble(core: ConvCore<F>) -> Self {
        let mut dw = DepthwiseConv2d {
            core,
            plan: Plan::Reference,
        };
        dw.replan();
        dw
    }

    /// Chooses the kernel for the stored settings, once.
    fn replan(&mut self) {
        let (c, m) = (self.channels(), self.multiplier());
        let strided = self.params().stride != [1, 1];
        self.plan = Plan::new(self.core.algorithm, |isa| {
            DepthwiseKernel::plan::<F>(isa, c, m, strided)
        });
    }

    /// Starts building a depthwise conv with weight `[kh, kw, C, m]`.
    pub fn builder(weight: Array4<F>) -> DepthwiseConv2dBuilder<F> {
        ConvBuilder::new(weight)
    }

    core_accessors!();

    /// The weight `[kh, kw, C, m]`.
    pub fn weight(&self) -> ArrayView4<'_, F> {
        self.core.weight.view()
    }
    /// Stride, dilation and padding.
    pub fn params(&self) -> &ConvParams {
        &self.core.params
    }
    /// Kernel size [kh, kw].
    pub fn kernel_size(&self) -> [usize; 2] {
        self.core.kernel_size()
    }
    /// Input channels C.
    pub fn channels(&self) -> usize {
        self.core.weight.shape()[2]
    }
    /// Channel multiplier m.
    pub fn multiplier(&self) -> usize {
        self.core.weight.shape()[3]
    }
    /// Output channels C·m.
    pub fn out_channels(&self) -> usize {
        self.channels() * self.multiplier()
    }

    /// The resolved geometry for an input of shape `[N, H, W, C]`.
    ///
    /// # Errors
    /// [`Error::ZeroSize`], [`Error::ChannelMismatch`] and the geometry errors;
    /// [`Error::Layout`] instead of a channel mismatch when the input looks
    /// NCHW or the weight like PyTorch's depthwise `[C·m, 1, kh, kw]` (the
    /// message names the [`layout`](crate::layout) converter).
    pub fn geometry(&self, input: [usize; 4]) -> Result<ConvGeometry> {
        self.core
            .geometry("DepthwiseConv2d input", input, self.channels())
            .map_err(|e| super::weight_layout_hint(e, &input, self.core.weight.shape(), true))
    }

    /// Whether forwards run a kernel (SIMD or portable), not the oracle,
    /// which only runs whole tensors.
    pub(crate) fn runs_a_kernel(&self) -> bool {
        matches!(self.plan.kernel(), Ok(Some(_)))
    }

    /// The forward of one band of rows of one image: `x` holds the band's
    /// input rows (`h.input` rows of an image of shape `input`, contiguous
    /// NHWC), `h` the vertical geometry of the band (its padding where it
    /// meets the image's edge, none inside), `out` its `h.output` rows as
    /// `[rows, OW·C·m]`, standard layout. Each output gets the bits it has in
    /// a whole forward.
    ///
    /// # Errors
    /// As [`geometry`](Self::geometry); [`Error::Unsupported`] when the plan
    /// is the oracle's, which runs only whole tensors (a chain never plans
    /// such a conv: see [`runs_a_kernel`](Self::runs_a_kernel)), with
    /// nothing written.
    ///
    /// **Panics** if the buffers do not match the band (bugs in the caller).
    pub(crate) fn forward_band(
        &self,
        x: &[F],
        input: [usize; 4],
        h: crate::geometry::AxisGeometry,
        out: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        let mut g = self.geometry(input)?;
        let Some(&kernel) = self.plan.kernel()? else {
            return Err(Error::Unsupported(
                "a depthwise conv on the oracle runs whole tensors, not bands".into(),
            ));
        };
        g.h = h;
        assert!(
            x.len() == h.input * g.w.input * self.channels()
                && out.nrows() == h.output
                && out.ncols() == g.w.output * self.out_channels()
                && out.is_standard_layout(),
            "depthwise band {h:?} of a {input:?} input into {:?}",
            out.shape()
        );
        self.run_rows(kernel, x, g, out);
        Ok(())
    }

    /// All rows of `out` (the `[N·OH, OW·C·m]` rows of the forward on the
    /// contiguous NHWC input `x` of geometry `g`) with `kernel`, over threads.
    fn run_rows(
        &self,
        kernel: DepthwiseKernel,
        x: &[F],
        g: ConvGeometry,
        out: ArrayViewMut2<'_, F>,
    ) {
        let problem = Depthwise {
            x,
            weight: self.core.weight_slice(),
            bias: self.core.bias_slice(),
            channels: self.channels(),
            multiplier: self.multiplier(),
            kernel: self.kernel_size(),
            geometry: g,
            activation: self.core.activation,
        };
        let n = out.nrows();
        for_each_row_chunk(out, chunk_rows(n, 4, 1), |r0, block| {
            problem.rows(kernel, r0, block)
        });
    }

    /// This layer with `bn` (over the C·m outputs) folded in.
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`] if `bn` does not have C·m channels.
    pub fn fold_batch_norm(&self, bn: &BatchNorm<F>) -> Result<Self> {
        let core = self.core.fold("DepthwiseConv2d", bn, self.out_channels())?;
        Ok(DepthwiseConv2d::assemble(core))
    }

    super::layer_methods!();
}

impl<F: Float> Layer<F> for DepthwiseConv2d<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        let [oh, ow] = self.geometry(input)?.output();
        Ok([input[0], oh, ow, self.out_channels()])
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let [n, oh, ow, _] = Layer::output_shape(self, input)?;
        cost::depthwise(
            [n, oh, ow],
            self.kernel_size(),
            self.channels(),
            self.multiplier(),
            self.core.bias.is_some(),
        )
    }

    fn info(&self) -> LayerInfo {
        let [kh, kw, c, m] = dims4(self.core.weight.shape());
        let filter = match m {
            1 => format!("{kh}×{kw}×{c} dw"),
            m => format!("{kh}×{kw}×{c}×{m} dw"),
        };
        LayerInfo::new("DepthwiseConv2d")
            .with_stride(self.core.params.stride)
            .with_filter(filter)
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        _scratch: &mut [F],
    ) -> Result<()> {
        let input = dims4(x.shape());
        let g = self.geometry(input)?;
        check_output(
            "DepthwiseConv2d output",
            out.shape(),
            Layer::output_shape(self, input)?,
        )?;
        let Some(&kernel) = self.plan.kernel()? else {
            let bias = self.core.bias.as_ref().map(|b| b.view());
            let y = reference::depthwise_conv2d(x, self.weight(), bias, self.params());
            return self.core.reference_into(y, out);
        };
        // The kernel reads channel vectors from a contiguous input; a strided
        // view is copied once (depthwise is memory-bound either way).
        let x = super::contiguous_input("DepthwiseConv2d", &x)?;
        with_standard_output("DepthwiseConv2d", out, |out| {
            let [n, oh, ow, cm] = dims4(out.shape());
            let rows = out
                .into_shape_with_order((n * oh, ow * cm))
                .expect("standard layout");
            self.run_rows(kernel, &x, g, rows);
            Ok(())
        })
    }

    fn as_depthwise(&self, _: crate::layer::Token) -> Option<&DepthwiseConv2d<F>> {
        Some(self)
    }

    fn set_algorithm(&mut self, algorithm: crate::Algorithm) {
        self.core.algorithm = algorithm;
        self.replan();
    }
}
