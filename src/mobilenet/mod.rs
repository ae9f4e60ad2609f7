//! MobileNet v1 (Howard et al. 2017): configuration, architecture, cost
//! summary, weights and the inference network; MobileNetV2 (Sandler et al.
//! 2018) on the same machinery in [`v2`].
//!
//! The architecture is the paper's Table 1 as the reference implementations
//! (TF-slim, Keras) ship it: TensorFlow SAME padding, stride 1 in block 13's
//! depthwise conv (the paper's "s2" there is a typo), channels
//! `max(⌊c·α⌋, min_depth)`, BatchNorm after every conv, ReLU6, and a head of
//! global average pooling and a 1×1 conv with bias as the fully connected
//! layer.
//!
//! ```
//! use sepconv::mobilenet::MobileNetConfig;
//! // The paper's 1.0 MobileNet-224: 569 million mult-adds, 4.2 million parameters.
//! let summary = MobileNetConfig::new().summary()?;
//! assert_eq!(summary.total.mult_adds, 568_740_352);
//! assert_eq!(summary.total.params.paper(), 4_209_088);
//! // 0.5 MobileNet-160: the width and resolution multipliers.
//! let small = MobileNetConfig::new().with_alpha(0.5).with_resolution(160).summary()?;
//! assert_eq!(small.total.mult_adds, 76_524_800); // the paper: "76 million"
//! # Ok::<(), sepconv::Error>(())
//! ```

mod network;
mod summary;
pub mod v2;
mod weights;

pub use network::{MobileNet, softmax, top_k};
pub use summary::{Breakdown, LayerRow, Summary};
pub use v2::{MobileNetV2, MobileNetV2Config};
pub use weights::{MobileNetWeights, tensor_names};

use crate::Float;
use crate::activation::Activation;
use crate::cost::{self, Cost};
use crate::error::{Error, Result};
use crate::geometry::{ConvParams, Padding};
use crate::net::Sequential;

/// What a MobileNet family's configuration tells: its layers with their
/// shapes, the TF-slim scope of its tensor names, and how its inference
/// network is built from named weights. [`MobileNetConfig`] (v1) and
/// [`MobileNetV2Config`] implement it; [`MobileNet`], [`Summary`] and
/// [`MobileNetWeights`] work on either through it.
pub trait Architecture: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The family: `"MobileNet v1"`, `"MobileNetV2"`.
    fn family(&self) -> &'static str;
    /// The model's usual name within the family, e.g. `"1.0-224"`.
    fn name(&self) -> String;
    /// The scope every tensor name starts with: `"MobilenetV1"`, `"MobilenetV2"`.
    fn scope(&self) -> &'static str;
    /// The input side in pixels.
    fn resolution(&self) -> usize;
    /// Whether the classifier is included.
    fn include_top(&self) -> bool;
    /// The layers in order, with their shapes (the classifier last with the
    /// top). Every layer but the classifier is followed by a BatchNorm.
    ///
    /// # Errors
    /// When the configuration is invalid.
    fn layers(&self) -> Result<Vec<LayerSpec>>;
    /// The inference network from `weights`, every BatchNorm folded.
    ///
    /// # Errors
    /// As [`layers`](Self::layers); a missing or mis-shaped tensor.
    fn network<F: Float>(&self, weights: &MobileNetWeights<F>) -> Result<Sequential<F>>;
}

impl Architecture for MobileNetConfig {
    fn family(&self) -> &'static str {
        "MobileNet v1"
    }
    fn name(&self) -> String {
        MobileNetConfig::name(self)
    }
    fn scope(&self) -> &'static str {
        weights::SCOPE
    }
    fn resolution(&self) -> usize {
        self.resolution
    }
    fn include_top(&self) -> bool {
        self.include_top
    }
    fn layers(&self) -> Result<Vec<LayerSpec>> {
        MobileNetConfig::layers(self)
    }
    fn network<F: Float>(&self, weights: &MobileNetWeights<F>) -> Result<Sequential<F>> {
        network::v1_network(self, weights)
    }
}

/// The input side for a resolution multiplier ρ: round(224·ρ), or 0 for a
/// ρ that gives no side.
fn side_of(rho: f64) -> usize {
    let side = (BASE_RESOLUTION as f64 * rho).round();
    if side.is_finite() && side > 0.0 && side < usize::MAX as f64 {
        side as usize
    } else {
        0
    }
}

/// A model's usual name, `α-side`: `"1.0-224"`, `"0.35-96"`.
fn model_name(alpha: f64, side: usize) -> String {
    let a = if alpha == alpha.trunc() {
        format!("{alpha:.1}")
    } else {
        format!("{alpha}")
    };
    format!("{a}-{side}")
}

/// The network's shape, as in the paper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Variant {
    /// Table 1: 13 depthwise separable blocks.
    #[default]
    Standard,
    /// "Shallow MobileNet" (Table 6): the five 14×14×512 blocks (7–11) removed.
    Shallow,
    /// "Conv MobileNet" (Table 4): each depthwise separable pair replaced by
    /// one standard 3×3 conv with the pair's stride and output channels.
    FullConv,
}

impl Variant {
    /// `"standard"`, `"shallow"` or `"full-conv"`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Standard => "standard",
            Variant::Shallow => "shallow",
            Variant::FullConv => "full-conv",
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "standard" => Ok(Variant::Standard),
            "shallow" => Ok(Variant::Shallow),
            "full-conv" | "fullconv" | "conv" => Ok(Variant::FullConv),
            _ => Err(Error::param(
                "variant",
                s,
                "expected standard, shallow or full-conv",
            )),
        }
    }
}

/// Smallest input side accepted: five stride-2 layers need 32 pixels to keep
/// every feature map at least 1×1 with meaning (TF-slim's and Keras' minimum).
pub const MIN_RESOLUTION: usize = 32;

/// The paper's base input side.
pub const BASE_RESOLUTION: usize = 224;

/// The most parameters (weights, biases and BatchNorm's four vectors, all
/// layers) a configuration may have: 2³⁰, 4 GiB of f32, 250 times 1.0
/// MobileNet-224's 4.2 million. [`MobileNetConfig::validate`] checks it.
pub const MAX_PARAMETERS: u64 = 1 << 30;

/// The most elements one activation (a layer's input or output, one image)
/// of a configuration may have: 2²⁸, 1 GiB of f32, 668 times the largest
/// of 1.0 MobileNet-224 (112 × 112 × 32 = 401,408).
/// [`MobileNetConfig::validate`] checks it.
pub const MAX_ACTIVATION_ELEMENTS: u64 = 1 << 28;

/// Output channels of the first conv and (stride, output channels) of the 13
/// depthwise separable blocks at α = 1: Table 1.
pub const FIRST_CONV_CHANNELS: usize = 32;
/// See [`FIRST_CONV_CHANNELS`].
pub const BLOCKS: [(usize, usize); 13] = [
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),
    (1, 1024),
];

/// Configuration of a MobileNet v1; `new()` is 1.0 MobileNet-224 with 1000
/// classes, ReLU6 and the classifier on top.
///
/// | setting | default | meaning |
/// | --- | --- | --- |
/// | `alpha` | 1.0 | width multiplier α (0 < α); channels `max(⌊c·α⌋, min_depth)` (TF-slim calls it `depth_multiplier`) |
/// | `resolution` | 224 | input side (ρ·224); any side ≥ 32 |
/// | `classes` | 1000 | classifier outputs; 1001 for TF-slim checkpoints (index 0 = background) |
/// | `depth_multiplier` | 1 | depthwise channel multiplier (Keras' `depth_multiplier`) |
/// | `min_depth` | 8 | the channel floor of TF-slim |
/// | `activation` | ReLU6 | as TF-slim and Keras; `Relu` as in the paper's text |
/// | `include_top` | true | false: the network ends at the pooled features |
/// | `variant` | `Standard` | `Shallow`, `FullConv` |
/// | `bn_epsilon` | 0.001 | TF-slim's BatchNorm ε |
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MobileNetConfig {
    /// Width multiplier α.
    pub alpha: f64,
    /// Input side in pixels.
    pub resolution: usize,
    /// Number of classes of the classifier.
    pub classes: usize,
    /// Depthwise channel multiplier.
    pub depth_multiplier: usize,
    /// Channel floor.
    pub min_depth: usize,
    /// Activation after every BatchNorm.
    pub activation: Activation,
    /// Whether the classifier is included.
    pub include_top: bool,
    /// Network variant.
    pub variant: Variant,
    /// BatchNorm ε.
    pub bn_epsilon: f64,
}

impl Default for MobileNetConfig {
    fn default() -> Self {
        MobileNetConfig {
            alpha: 1.0,
            resolution: BASE_RESOLUTION,
            classes: 1000,
            depth_multiplier: 1,
            min_depth: 8,
            activation: Activation::Relu6,
            include_top: true,
            variant: Variant::Standard,
            bn_epsilon: 1e-3,
        }
    }
}

/// What a layer of the network is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LayerKind {
    /// A standard 3×3 convolution (the first layer; every layer of `FullConv`).
    Conv,
    /// A depthwise 3×3 convolution.
    Depthwise,
    /// A pointwise 1×1 convolution.
    Pointwise,
    /// The classifier: a 1×1 conv with bias on the pooled features.
    FullyConnected,
}

impl LayerKind {
    /// The paper's name for it (Table 2): "Conv", "Conv DW", "Conv 1×1", "FC".
    pub fn label(self) -> &'static str {
        match self {
            LayerKind::Conv => "Conv",
            LayerKind::Depthwise => "Conv DW",
            LayerKind::Pointwise => "Conv 1×1",
            LayerKind::FullyConnected => "FC",
        }
    }

    /// A short machine name: "conv", "depthwise", "pointwise", "fc".
    pub fn key(self) -> &'static str {
        match self {
            LayerKind::Conv => "conv",
            LayerKind::Depthwise => "depthwise",
            LayerKind::Pointwise => "pointwise",
            LayerKind::FullyConnected => "fc",
        }
    }
}

/// One layer of the architecture: shapes only, no tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayerSpec {
    /// TF-slim name without the `MobilenetV1/` scope: `Conv2d_0`,
    /// `Conv2d_1_depthwise`, `Conv2d_1_pointwise`, …, `Logits`.
    pub name: String,
    /// What it is.
    pub kind: LayerKind,
    /// Kernel [kh, kw].
    pub kernel: [usize; 2],
    /// Stride (both axes).
    pub stride: usize,
    /// Input [H, W, C].
    pub input: [usize; 3],
    /// Output [H, W, C].
    pub output: [usize; 3],
}

impl LayerSpec {
    /// The weight shape: HWIO `[kh, kw, C_in, C_out]` for convs and the
    /// classifier, `[kh, kw, C, m]` for depthwise.
    pub fn weight_shape(&self) -> [usize; 4] {
        let [kh, kw] = self.kernel;
        let (ci, co) = (self.input[2], self.output[2]);
        match self.kind {
            LayerKind::Depthwise => [kh, kw, ci, co / ci],
            _ => [kh, kw, ci, co],
        }
    }

    /// Whether a BatchNorm follows (every layer but the classifier).
    pub fn has_batch_norm(&self) -> bool {
        self.kind != LayerKind::FullyConnected
    }

    /// Mult-adds and parameters (batch 1), BN parameters included as parts.
    pub fn cost(&self) -> Result<Cost> {
        let [oh, ow, co] = self.output;
        let ci = self.input[2];
        let conv = match self.kind {
            LayerKind::Depthwise => cost::depthwise([1, oh, ow], self.kernel, ci, co / ci, false)?,
            LayerKind::FullyConnected => cost::fully_connected(1, ci, co, true)?,
            _ => cost::conv2d([1, oh, ow], self.kernel, ci, co, 1, false)?,
        };
        Ok(if self.has_batch_norm() {
            conv + cost::batch_norm(co)
        } else {
            conv
        })
    }

    /// Stride and TensorFlow SAME padding as conv parameters.
    pub fn conv_params(&self) -> ConvParams {
        ConvParams {
            stride: [self.stride; 2],
            dilation: [1, 1],
            padding: Padding::Same,
        }
    }
}

impl MobileNetConfig {
    /// 1.0 MobileNet-224, 1000 classes (see the table above for every default).
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the width multiplier α.
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }
    /// Sets the input side.
    pub fn with_resolution(mut self, side: usize) -> Self {
        self.resolution = side;
        self
    }
    /// Sets the resolution multiplier ρ: side = round(224·ρ) (ρ = 6/7, 5/7,
    /// 4/7 give 192, 160, 128). A non-finite or non-positive ρ gives a side of
    /// 0, which [`validate`](Self::validate) rejects.
    pub fn with_rho(mut self, rho: f64) -> Self {
        self.resolution = side_of(rho);
        self
    }
    /// Sets the number of classes.
    pub fn with_classes(mut self, classes: usize) -> Self {
        self.classes = classes;
        self
    }
    /// Sets the depthwise channel multiplier.
    pub fn with_depth_multiplier(mut self, m: usize) -> Self {
        self.depth_multiplier = m;
        self
    }
    /// Sets the channel floor.
    pub fn with_min_depth(mut self, d: usize) -> Self {
        self.min_depth = d;
        self
    }
    /// Sets the activation.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }
    /// Includes or drops the classifier.
    pub fn with_include_top(mut self, top: bool) -> Self {
        self.include_top = top;
        self
    }
    /// Sets the variant.
    pub fn with_variant(mut self, v: Variant) -> Self {
        self.variant = v;
        self
    }
    /// Sets the BatchNorm ε.
    pub fn with_bn_epsilon(mut self, eps: f64) -> Self {
        self.bn_epsilon = eps;
        self
    }

    /// The model's usual name, e.g. `"1.0-224"`, `"0.75-192"`.
    pub fn name(&self) -> String {
        model_name(self.alpha, self.resolution)
    }

    /// Checks every setting, and that the network it describes can be
    /// built: every size is computed with checked arithmetic and bounded, so
    /// a configuration that validates builds ([`MobileNet::seeded`],
    /// [`MobileNetWeights::seeded`]) without overflow; what is left is
    /// whether memory holds it, which those report as an error value.
    ///
    /// The bounds: at most [`MAX_PARAMETERS`] (2³⁰) parameters in all and
    /// [`MAX_ACTIVATION_ELEMENTS`] (2²⁸) elements in any one layer's input
    /// or output per image. Each knob is bounded through them (and α·1024 ≤
    /// 10⁹); with the others at their defaults: α ≤ 18.3 and `min_depth` ≤
    /// 9,040 (the pointwise weights grow as their square), classes ≤
    /// 1,041,355, `depth_multiplier` ≤ 334, resolution ≤ 4,096 (the
    /// 64-channel layers hold `(side / 2)² · 64` elements).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `alpha` (≤ 0 or not finite),
    /// `resolution` (< 32), `classes` (0 with `include_top`),
    /// `depth_multiplier` (0), `min_depth` (0), `bn_epsilon` (negative or not
    /// finite), `parameters` or `activation elements` (over the bounds
    /// above, with the layer that passes them); [`Error::Overflow`] when a
    /// channel count or a product overflows `usize`/`u64`.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::param(
                "alpha",
                self.alpha,
                "the width multiplier must be finite and > 0",
            ));
        }
        if self.alpha * 1024.0 > 1e9 {
            return Err(Error::param(
                "alpha",
                self.alpha,
                "channel counts of over 10⁹ are not supported",
            ));
        }
        if self.resolution < MIN_RESOLUTION {
            return Err(Error::param(
                "resolution",
                self.resolution,
                format!("the input side must be ≥ {MIN_RESOLUTION}"),
            ));
        }
        if self.include_top && self.classes == 0 {
            return Err(Error::param(
                "classes",
                0,
                "the classifier needs at least one class",
            ));
        }
        if self.depth_multiplier == 0 {
            return Err(Error::param(
                "depth_multiplier",
                0,
                "the depthwise channel multiplier must be ≥ 1",
            ));
        }
        if self.min_depth == 0 {
            return Err(Error::param("min_depth", 0, "must be ≥ 1"));
        }
        if !(self.bn_epsilon.is_finite() && self.bn_epsilon >= 0.0) {
            return Err(Error::param(
                "bn_epsilon",
                self.bn_epsilon,
                "must be finite and ≥ 0",
            ));
        }
        self.check_bounds(&self.specs()?)
    }

    /// Checks the sizes of `specs` against [`MAX_PARAMETERS`] and
    /// [`MAX_ACTIVATION_ELEMENTS`], with checked products.
    fn check_bounds(&self, specs: &[LayerSpec]) -> Result<()> {
        let product = |dims: &[usize], what| {
            dims.iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
                .ok_or(Error::Overflow(what))
        };
        let mut params = 0u64;
        for spec in specs {
            for (side, dims) in [("input", spec.input), ("output", spec.output)] {
                let n = product(&dims, "MobileNet activation elements")?;
                if n > MAX_ACTIVATION_ELEMENTS {
                    return Err(Error::param(
                        "activation elements",
                        n,
                        format!(
                            "the {side} {dims:?} of layer {} (one image) exceeds the bound of \
                             2^28 elements for α = {}, resolution {}",
                            spec.name, self.alpha, self.resolution
                        ),
                    ));
                }
            }
            let weights = product(&spec.weight_shape(), "MobileNet parameters")?;
            // BatchNorm's four vectors, or the classifier's bias.
            let extra = product(&[spec.output[2], 4], "MobileNet parameters")?;
            params = params
                .checked_add(weights)
                .and_then(|p| p.checked_add(extra))
                .ok_or(Error::Overflow("MobileNet parameters"))?;
            if params > MAX_PARAMETERS {
                return Err(Error::param(
                    "parameters",
                    params,
                    format!(
                        "the layers up to {} exceed the bound of 2^30 parameters \
                         (α = {}, classes {}, depth_multiplier {}, min_depth {})",
                        spec.name, self.alpha, self.classes, self.depth_multiplier, self.min_depth
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Channels of a layer with `c` channels at α = 1: `max(⌊c·α⌋, min_depth)`.
    pub fn depth(&self, c: usize) -> usize {
        ((c as f64 * self.alpha) as usize).max(self.min_depth)
    }

    /// The layers in order, with their shapes (the classifier last when
    /// `include_top`).
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn layers(&self) -> Result<Vec<LayerSpec>> {
        self.validate()?;
        self.specs()
    }

    /// The layers, their channel counts checked for overflow but not
    /// bounded (for [`validate`](Self::validate)).
    fn specs(&self) -> Result<Vec<LayerSpec>> {
        let mut layers = Vec::with_capacity(29);
        let mut shape = [self.resolution, self.resolution, 3];
        // Appends a layer reading the current shape; returns its output shape.
        let mut push =
            |shape: [usize; 3], name: String, kind, kernel: usize, stride: usize, out_c: usize| {
                let output = [shape[0].div_ceil(stride), shape[1].div_ceil(stride), out_c];
                layers.push(LayerSpec {
                    name,
                    kind,
                    kernel: [kernel; 2],
                    stride,
                    input: shape,
                    output,
                });
                output
            };
        shape = push(
            shape,
            "Conv2d_0".into(),
            LayerKind::Conv,
            3,
            2,
            self.depth(FIRST_CONV_CHANNELS),
        );
        for (i, &(stride, out)) in BLOCKS.iter().enumerate() {
            let block = i + 1;
            if self.variant == Variant::Shallow && (7..=11).contains(&block) {
                continue;
            }
            if self.variant == Variant::FullConv {
                shape = push(
                    shape,
                    format!("Conv2d_{block}"),
                    LayerKind::Conv,
                    3,
                    stride,
                    self.depth(out),
                );
            } else {
                let dw_out = shape[2]
                    .checked_mul(self.depth_multiplier)
                    .ok_or(Error::Overflow("depthwise output channels"))?;
                shape = push(
                    shape,
                    format!("Conv2d_{block}_depthwise"),
                    LayerKind::Depthwise,
                    3,
                    stride,
                    dw_out,
                );
                shape = push(
                    shape,
                    format!("Conv2d_{block}_pointwise"),
                    LayerKind::Pointwise,
                    1,
                    1,
                    self.depth(out),
                );
            }
        }
        if self.include_top {
            // The classifier reads the globally pooled features.
            push(
                [1, 1, shape[2]],
                "Logits".into(),
                LayerKind::FullyConnected,
                1,
                1,
                self.classes,
            );
        }
        Ok(layers)
    }

    /// The per-layer cost table and totals.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn summary(&self) -> Result<Summary> {
        Summary::new(self)
    }
}
