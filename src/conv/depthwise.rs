//! Depthwise 2-D convolution: a direct NHWC kernel, channels innermost.

use ndarray::{Array1, Array4, ArrayView4, ArrayViewMut4};

use super::{
    Algorithm, check_bias, check_input, check_output, check_weight, contiguous, dims4,
    settings_setters, with_standard_output,
};
use crate::activation::Activation;
use crate::conv::standard::check_params;
use crate::cost::{self, Cost};
use crate::error::{Error, Result};
use crate::geometry::{ConvGeometry, ConvParams};
use crate::kernels::depthwise::Depthwise;
use crate::norm::BatchNorm;
use crate::parallel::{chunk_rows, for_each_row_chunk};
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
    weight: Array4<F>,
    bias: Option<Array1<F>>,
    params: ConvParams,
    activation: Activation,
    algorithm: Algorithm,
}

/// Builds a [`DepthwiseConv2d`]; see [`DepthwiseConv2d::builder`]. Defaults:
/// stride 1, dilation 1, `Valid`, no bias, identity, `Auto`.
#[derive(Clone, Debug)]
#[must_use = "call .build()"]
pub struct DepthwiseConv2dBuilder<F> {
    weight: Array4<F>,
    bias: Option<Array1<F>>,
    params: ConvParams,
    activation: Activation,
    algorithm: Algorithm,
}

impl<F: Float> DepthwiseConv2dBuilder<F> {
    settings_setters!();

    /// Bias `[C·m]` (default none).
    pub fn bias(mut self, b: Array1<F>) -> Self {
        self.bias = Some(b);
        self
    }

    /// Optional bias.
    pub fn bias_opt(mut self, b: Option<Array1<F>>) -> Self {
        self.bias = b;
        self
    }

    /// Validates and builds the layer.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an empty weight, [`Error::ShapeMismatch`] for a
    /// bias of the wrong length, [`Error::InvalidStride`] /
    /// [`Error::InvalidDilation`], [`Error::Overflow`].
    pub fn build(self) -> Result<DepthwiseConv2d<F>> {
        check_weight("DepthwiseConv2d weight", self.weight.shape())?;
        let [_, _, c, m] = dims4(self.weight.shape());
        let cm = c
            .checked_mul(m)
            .ok_or(Error::Overflow("depthwise output channels"))?;
        check_bias(
            "DepthwiseConv2d bias",
            self.bias.as_ref().map(|b| b.len()),
            cm,
        )?;
        check_params(&self.params)?;
        Ok(DepthwiseConv2d {
            weight: self.weight.as_standard_layout().into_owned(),
            bias: contiguous(self.bias),
            params: self.params,
            activation: self.activation,
            algorithm: self.algorithm,
        })
    }
}

impl<F: Float> DepthwiseConv2d<F> {
    /// Starts building a depthwise conv with weight `[kh, kw, C, m]`.
    pub fn builder(weight: Array4<F>) -> DepthwiseConv2dBuilder<F> {
        DepthwiseConv2dBuilder {
            weight,
            bias: None,
            params: ConvParams::default(),
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

    /// The weight `[kh, kw, C, m]`.
    pub fn weight(&self) -> ArrayView4<'_, F> {
        self.weight.view()
    }
    /// The bias `[C·m]`, if any.
    pub fn bias(&self) -> Option<&Array1<F>> {
        self.bias.as_ref()
    }
    /// Stride, dilation and padding.
    pub fn params(&self) -> &ConvParams {
        &self.params
    }
    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// Kernel size [kh, kw].
    pub fn kernel_size(&self) -> [usize; 2] {
        [self.weight.shape()[0], self.weight.shape()[1]]
    }
    /// Input channels C.
    pub fn channels(&self) -> usize {
        self.weight.shape()[2]
    }
    /// Channel multiplier m.
    pub fn multiplier(&self) -> usize {
        self.weight.shape()[3]
    }
    /// Output channels C·m.
    pub fn out_channels(&self) -> usize {
        self.channels() * self.multiplier()
    }

    /// The resolved geometry for an input of shape `[N, H, W, C]`.
    ///
    /// # Errors
    /// [`Error::ZeroSize`], [`Error::ChannelMismatch`] and the geometry errors.
    pub fn geometry(&self, input: [usize; 4]) -> Result<ConvGeometry> {
        check_input("DepthwiseConv2d input", &input, self.channels())?;
        self.params
            .resolve([input[1], input[2]], self.kernel_size())
    }

    /// The output shape `[N, OH, OW, C·m]`.
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
        cost::depthwise(
            [n, oh, ow],
            self.kernel_size(),
            self.channels(),
            self.multiplier(),
            self.bias.is_some(),
        )
    }

    /// This layer with `bn` (over the C·m outputs) folded in.
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`] if `bn` does not have C·m channels.
    pub fn fold_batch_norm(&self, bn: &BatchNorm<F>) -> Result<Self> {
        bn.check_channels("DepthwiseConv2d", self.out_channels())?;
        let mut folded = self.clone();
        let [kh, kw] = self.kernel_size();
        let cols = folded
            .weight
            .view_mut()
            .into_shape_with_order((kh * kw, self.out_channels()))
            .expect("standard layout");
        folded.bias = Some(bn.fold_into(cols, self.bias.as_ref()));
        Ok(folded)
    }

    /// Runs the layer.
    ///
    /// # Errors
    /// As [`geometry`](Self::geometry).
    pub fn forward(&self, x: ArrayView4<'_, F>) -> Result<Array4<F>> {
        let g = self.geometry(dims4(x.shape()))?;
        let algorithm = self.algorithm.resolve()?;
        let mut out = Array4::zeros((x.shape()[0], g.h.output, g.w.output, self.out_channels()));
        self.run(x, &g, out.view_mut(), algorithm);
        Ok(out)
    }

    /// Runs the layer into `out` (any layout), which must have the output shape.
    ///
    /// # Errors
    /// As [`geometry`](Self::geometry), and [`Error::ShapeMismatch`] for a
    /// wrong `out`; `out` is untouched on error.
    pub fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        let g = self.geometry(dims4(x.shape()))?;
        check_output(
            "DepthwiseConv2d output",
            out.shape(),
            [x.shape()[0], g.h.output, g.w.output, self.out_channels()],
        )?;
        let algorithm = self.algorithm.resolve()?;
        self.run(x, &g, out, algorithm);
        Ok(())
    }

    fn run(
        &self,
        x: ArrayView4<'_, F>,
        g: &ConvGeometry,
        mut out: ArrayViewMut4<'_, F>,
        algorithm: Algorithm,
    ) {
        if algorithm == Algorithm::Reference {
            let y = reference::depthwise_conv2d(
                x,
                self.weight.view(),
                self.bias.as_ref().map(|b| b.view()),
                &self.params,
            )
            .expect("validated");
            out.assign(&y);
            out.map_inplace(|v| *v = self.activation.apply(*v));
            return;
        }
        // The kernel reads channel vectors from a contiguous input; a strided
        // view is copied once (depthwise is memory-bound either way).
        let x = super::contiguous_input(&x);
        let problem = Depthwise {
            x: &x,
            weight: self.weight.as_slice().expect("standard layout"),
            bias: super::bias_slice(self.bias.as_ref()),
            channels: self.channels(),
            multiplier: self.multiplier(),
            kernel: self.kernel_size(),
            geometry: *g,
            activation: self.activation,
        };
        with_standard_output(out, |out| {
            let [n, oh, ow, cm] = dims4(out.shape());
            let rows = out
                .into_shape_with_order((n * oh, ow * cm))
                .expect("standard layout");
            for_each_row_chunk(rows, chunk_rows(n * oh, 4, 1), |r0, block| {
                problem.rows(r0, block, algorithm == Algorithm::Avx2Fma)
            });
        });
    }
}
