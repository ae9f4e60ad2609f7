//! The depthwise separable convolution: depthwise → (BN, act) → pointwise → (BN, act).

use ndarray::{Array1, Array2, Array4, ArrayView4, ArrayViewMut4};

use super::{
    Algorithm, Conv2d, DepthwiseConv2d, PointwiseConv2d, check_output, dims4, settings_setters,
};
use crate::Float;
use crate::activation::Activation;
use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::geometry::ConvParams;
use crate::layer::{KeptScratch, Layer, LayerInfo};
use crate::norm::BatchNorm;

/// A depthwise separable convolution, the MobileNet block: a depthwise conv
/// (optionally followed by BatchNorm and an activation) then a pointwise conv
/// (optionally followed by BatchNorm and an activation).
///
/// BatchNorms are folded into the convs and activations fused into their
/// outputs when the block is built, so a forward pass is exactly two layer
/// passes. Its cost is 1/N + 1/(kh·kw) of the standard conv it factorizes.
///
/// # Shapes
/// depthwise weight `[kh, kw, C, m]`, pointwise weight `[C·m, N]`, input
/// `[N_b, H, W, C]`, output `[N_b, OH, OW, N]`.
///
/// ```
/// use ndarray::{Array2, Array4};
/// use sepconv::{Activation, BatchNorm, Padding, SeparableConv2d};
/// let c = 8;
/// let bn = |n| BatchNorm::new(Array1::ones(n), Array1::zeros(n), Array1::zeros(n), Array1::ones(n), 1e-3);
/// # use ndarray::Array1;
/// let block = SeparableConv2d::builder(Array4::<f32>::ones((3, 3, c, 1)), Array2::ones((c, 16)))
///     .padding(Padding::Same)
///     .depthwise_norm(bn(c)?)
///     .depthwise_activation(Activation::Relu6)
///     .pointwise_norm(bn(16)?)
///     .activation(Activation::Relu6)
///     .build()?;
/// let y = block.forward(Array4::ones((1, 7, 7, c)).view())?;
/// assert_eq!(y.shape(), &[1, 7, 7, 16]);
/// let cost = block.cost([1, 7, 7, c])?;
/// assert_eq!(cost.mult_adds, 7 * 7 * (9 * 8 + 8 * 16));
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SeparableConv2d<F: Float> {
    depthwise: DepthwiseConv2d<F>,
    pointwise: PointwiseConv2d<F>,
    depthwise_norm: Option<BatchNorm<F>>,
    pointwise_norm: Option<BatchNorm<F>>,
    depthwise_bias: bool,
    pointwise_bias: bool,
    /// The depthwise output (and the convs' scratch) of
    /// [`Layer::forward_into`] between calls.
    kept: KeptScratch<F>,
}

/// Builds a [`SeparableConv2d`]; see [`SeparableConv2d::builder`].
/// Defaults: stride 1, dilation 1, `Valid`, no biases, no BatchNorms, identity
/// activations, `Auto`. `stride`, `dilation` and `padding` are the depthwise
/// conv's; `activation` is the block's output (after the pointwise conv).
#[derive(Clone, Debug)]
#[must_use = "call .build()"]
pub struct SeparableConv2dBuilder<F: Float> {
    depthwise_weight: Array4<F>,
    pointwise_weight: Array2<F>,
    depthwise_bias: Option<Array1<F>>,
    pointwise_bias: Option<Array1<F>>,
    depthwise_norm: Option<BatchNorm<F>>,
    pointwise_norm: Option<BatchNorm<F>>,
    depthwise_activation: Activation,
    params: ConvParams,
    activation: Activation,
    algorithm: Algorithm,
}

impl<F: Float> SeparableConv2dBuilder<F> {
    settings_setters!();

    /// Bias of the depthwise conv, `[C·m]`.
    pub fn depthwise_bias(mut self, b: Array1<F>) -> Self {
        self.depthwise_bias = Some(b);
        self
    }
    /// Bias of the pointwise conv, `[N]`.
    pub fn pointwise_bias(mut self, b: Array1<F>) -> Self {
        self.pointwise_bias = Some(b);
        self
    }
    /// BatchNorm after the depthwise conv (C·m channels).
    pub fn depthwise_norm(mut self, bn: BatchNorm<F>) -> Self {
        self.depthwise_norm = Some(bn);
        self
    }
    /// BatchNorm after the pointwise conv (N channels).
    pub fn pointwise_norm(mut self, bn: BatchNorm<F>) -> Self {
        self.pointwise_norm = Some(bn);
        self
    }
    /// Activation between the depthwise and the pointwise conv.
    pub fn depthwise_activation(mut self, a: Activation) -> Self {
        self.depthwise_activation = a;
        self
    }

    /// Validates, folds the BatchNorms, and builds the block.
    ///
    /// # Errors
    /// Those of [`DepthwiseConv2d`] and [`PointwiseConv2d`];
    /// [`Error::ChannelMismatch`] when the pointwise weight does not take C·m
    /// inputs or a BatchNorm has the wrong channel count.
    pub fn build(self) -> Result<SeparableConv2d<F>> {
        let dw = DepthwiseConv2d::builder(self.depthwise_weight)
            .bias_opt(self.depthwise_bias)
            .params(self.params)
            .algorithm(self.algorithm)
            .build()?;
        let pw = PointwiseConv2d::new(self.pointwise_weight, self.pointwise_bias)?
            .with_algorithm(self.algorithm);
        if pw.in_channels() != dw.out_channels() {
            return Err(Error::ChannelMismatch {
                what: "SeparableConv2d pointwise weight (rows = depthwise outputs C·m)".into(),
                expected: dw.out_channels(),
                got: pw.in_channels(),
            });
        }
        let (depthwise_bias, pointwise_bias) = (dw.bias().is_some(), pw.bias().is_some());
        let depthwise = match &self.depthwise_norm {
            Some(bn) => dw.fold_batch_norm(bn)?,
            None => dw,
        }
        .with_activation(self.depthwise_activation);
        let pointwise = match &self.pointwise_norm {
            Some(bn) => pw.fold_batch_norm(bn)?,
            None => pw,
        }
        .with_activation(self.activation);
        Ok(SeparableConv2d {
            depthwise,
            pointwise,
            depthwise_norm: self.depthwise_norm,
            pointwise_norm: self.pointwise_norm,
            depthwise_bias,
            pointwise_bias,
            kept: KeptScratch::new(),
        })
    }
}

impl<F: Float> SeparableConv2d<F> {
    /// Starts building a block from a depthwise weight `[kh, kw, C, m]` and a
    /// pointwise weight `[C·m, N]`.
    pub fn builder(depthwise: Array4<F>, pointwise: Array2<F>) -> SeparableConv2dBuilder<F> {
        SeparableConv2dBuilder {
            depthwise_weight: depthwise,
            pointwise_weight: pointwise,
            depthwise_bias: None,
            pointwise_bias: None,
            depthwise_norm: None,
            pointwise_norm: None,
            depthwise_activation: Activation::Identity,
            params: ConvParams::default(),
            activation: Activation::Identity,
            algorithm: Algorithm::Auto,
        }
    }

    /// The depthwise layer as it runs (BatchNorm folded, activation fused).
    pub fn depthwise(&self) -> &DepthwiseConv2d<F> {
        &self.depthwise
    }
    /// The pointwise layer as it runs (BatchNorm folded, activation fused).
    pub fn pointwise(&self) -> &PointwiseConv2d<F> {
        &self.pointwise
    }

    /// Forces an implementation for both layers.
    pub fn with_algorithm(mut self, a: Algorithm) -> Self {
        self.depthwise = self.depthwise.with_algorithm(a);
        self.pointwise = self.pointwise.with_algorithm(a);
        self
    }

    super::layer_methods!();

    /// The equivalent standard convolution, for a linear block (both
    /// activations identity; BatchNorms allowed, they are affine):
    /// `W[kh, kw, ci, co] = Σ_j D[kh, kw, ci, j] · P[ci·m + j, co]` and bias
    /// `Pᵀ·b_dw + b_pw`, computed in f64.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when an activation is not the identity.
    pub fn to_standard(&self) -> Result<Conv2d<F>> {
        if !self.depthwise.activation().is_identity() || !self.pointwise.activation().is_identity()
        {
            return Err(Error::Unsupported(format!(
                "SeparableConv2d::to_standard needs a linear block, but its activations are {:?} and {:?}",
                self.depthwise.activation(),
                self.pointwise.activation()
            )));
        }
        let d = self.depthwise.weight();
        let p = self.pointwise.weight();
        let [kh, kw, c, m] = dims4(d.shape());
        let n = p.ncols();
        let w = Array4::from_shape_fn((kh, kw, c, n), |(y, x, ci, co)| {
            let s: f64 = (0..m)
                .map(|j| d[[y, x, ci, j]].to_f64_exact() * p[[ci * m + j, co]].to_f64_exact())
                .sum();
            F::from_f64_lossy(s)
        });
        let bias = match (self.depthwise.bias(), self.pointwise.bias()) {
            (None, None) => None,
            (bd, bp) => Some(Array1::from_shape_fn(n, |co| {
                let from_dw: f64 = bd.map_or(0.0, |bd| {
                    (0..c * m)
                        .map(|k| bd[k].to_f64_exact() * p[[k, co]].to_f64_exact())
                        .sum()
                });
                F::from_f64_lossy(from_dw + bp.map_or(0.0, |bp| bp[co].to_f64_exact()))
            })),
        };
        Conv2d::builder(w)
            .bias_opt(bias)
            .params(*self.depthwise.params())
            .build()
    }
}

impl<F: Float> Layer<F> for SeparableConv2d<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.pointwise
            .output_shape(self.depthwise.output_shape(input)?)
    }

    /// Mult-adds and parameters of the block as built (depthwise + pointwise,
    /// plus the BatchNorms' parameters, biases only where given).
    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let mid = self.depthwise.output_shape(input)?;
        let [n, oh, ow, _] = mid;
        let dw = crate::cost::depthwise(
            [n, oh, ow],
            self.depthwise.kernel_size(),
            self.depthwise.channels(),
            self.depthwise.multiplier(),
            self.depthwise_bias,
        )?;
        let pw = crate::cost::pointwise(
            [n, oh, ow],
            self.pointwise.in_channels(),
            self.pointwise.out_channels(),
            self.pointwise_bias,
        )?;
        let bn = [&self.depthwise_norm, &self.pointwise_norm]
            .into_iter()
            .flatten()
            .map(BatchNorm::cost)
            .sum::<Cost>();
        Ok(dw + pw + bn)
    }

    fn info(&self) -> LayerInfo {
        let dw = Layer::<F>::info(&self.depthwise);
        let co = self.pointwise.out_channels();
        LayerInfo {
            kind: "SeparableConv2d",
            stride: dw.stride,
            filter: dw
                .filter
                .map(|f| format!("{f} + 1×1×{}×{co}", self.pointwise.in_channels())),
        }
    }

    /// The depthwise output, which the pointwise conv reads, then what the
    /// two convs need themselves.
    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        let mid = self.depthwise.output_shape(input)?;
        let inner = Layer::scratch_len(&self.depthwise, input)?
            .max(Layer::scratch_len(&self.pointwise, mid)?);
        crate::layer::checked_len("SeparableConv2d depthwise output", &mid)?
            .checked_add(inner)
            .ok_or(Error::Overflow("SeparableConv2d scratch"))
    }

    /// As the provided method, with the scratch (the depthwise output) kept
    /// between calls (allocated by the first, or when a larger input needs
    /// more).
    fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        self.kept
            .forward_into(self, "SeparableConv2d scratch", x, out)
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let input = dims4(x.shape());
        check_output(
            "SeparableConv2d output",
            out.shape(),
            Layer::output_shape(self, input)?,
        )?;
        let mid = self.depthwise.output_shape(input)?;
        let len = crate::layer::checked_len("SeparableConv2d depthwise output", &mid)?;
        let needed = Layer::scratch_len(self, input)?;
        crate::layer::check_scratch("SeparableConv2d", scratch.len(), needed)?;
        let (mid_buf, rest) = scratch.split_at_mut(len);
        let mut mid_view = ArrayViewMut4::from_shape(mid, mid_buf).expect("sized by scratch_len");
        self.depthwise
            .forward_with_scratch(x, mid_view.view_mut(), rest)?;
        self.pointwise
            .forward_with_scratch(mid_view.view(), out, rest)
    }

    fn set_algorithm(&mut self, algorithm: Algorithm) {
        self.depthwise.set_algorithm(algorithm);
        self.pointwise.set_algorithm(algorithm);
    }
}
