//! MobileNetV2 (Sandler et al. 2018): inverted residuals and linear
//! bottlenecks, built from the same public layers as v1.
//!
//! The architecture is the paper's Table 2 as TF-slim's `mobilenet_v2`
//! ships it: a 3×3 stride-2 stem of 32 channels, 17
//! [`InvertedResidual`] blocks (expansion t, output channels c, n repeats,
//! the first of them with stride s), a 1×1 conv to 1280 channels, global
//! average pooling and a 1×1 classifier with bias. TensorFlow SAME padding,
//! BatchNorm (ε = 0.001) after every conv but the classifier, ReLU6 after
//! every BatchNorm but the projections', which are linear. A block adds its
//! input to its output when its stride is 1 and it keeps its channel count.
//!
//! The width multiplier α maps every channel count c, the stem's included,
//! to [`make_divisible`]`(c·α, 8)`; the final 1280 is scaled only for α > 1.
//!
//! ```
//! use sepconv::mobilenet::MobileNetV2Config;
//! // 1.0-224, 1001 classes (TF-slim's checkpoints): 300.8 million mult-adds,
//! // 3.47 million weights.
//! let summary = MobileNetV2Config::new().with_classes(1001).summary()?;
//! assert_eq!(summary.total.mult_adds, 300_775_552);
//! assert_eq!(summary.total.params.paper(), 3_471_040);
//! // 17 blocks, 10 of them with the residual.
//! let blocks = MobileNetV2Config::new().blocks()?;
//! assert_eq!(blocks.len(), 17);
//! assert_eq!(blocks.iter().filter(|b| b.residual).count(), 10);
//! # Ok::<(), sepconv::Error>(())
//! ```

use super::network::Folder;
use super::{
    Architecture, BASE_RESOLUTION, LayerKind, LayerSpec, MIN_RESOLUTION, MobileNet,
    MobileNetWeights, Summary,
};
use crate::Float;
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::net::{InvertedResidual, Sequential};

/// The scope every MobileNetV2 tensor name starts with.
pub const SCOPE: &str = "MobilenetV2";

/// A MobileNetV2 ready for inference: [`MobileNet`] over a
/// [`MobileNetV2Config`].
///
/// ```
/// use ndarray::Array4;
/// use sepconv::mobilenet::{MobileNetV2, MobileNetV2Config};
/// let config = MobileNetV2Config::new().with_alpha(0.35).with_resolution(96).with_classes(10);
/// let net = MobileNetV2::<f32>::seeded(&config, 7)?;
/// assert_eq!(net.forward(Array4::zeros((1, 96, 96, 3)).view())?.shape(), &[1, 10]);
/// # Ok::<(), sepconv::Error>(())
/// ```
pub type MobileNetV2<F> = MobileNet<F, MobileNetV2Config>;

/// Output channels of the stem at α = 1.
pub const FIRST_CONV_CHANNELS: usize = 32;

/// Output channels of the last 1×1 conv at α ≤ 1.
pub const LAST_CONV_CHANNELS: usize = 1280;

/// The bottleneck sequences of Table 2 at α = 1: (expansion t, output
/// channels c, repeats n, stride s of the first repeat).
pub const BOTTLENECKS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// The largest α accepted, so that every channel, weight and mult-add
/// count of a validated configuration fits a `u64` without overflow.
pub const MAX_ALPHA: f64 = 100.0;

/// The largest input side accepted.
pub const MAX_RESOLUTION: usize = 1 << 14;

/// The most classes accepted.
pub const MAX_CLASSES: usize = 1 << 24;

/// TF-slim's `make_divisible(v, divisor)`: `v` rounded to the nearest
/// multiple of `divisor` (halves up), at least `divisor`, and one
/// `divisor` more when rounding lost over 10% of `v`.
///
/// ```
/// use sepconv::mobilenet::v2::make_divisible;
/// assert_eq!(make_divisible(32.0 * 0.35, 8), 16); // 11.2 → 8, under 0.9·11.2 → 16
/// assert_eq!(make_divisible(24.0 * 0.75, 8), 24); // 18 → 16, under 16.2 → 24
/// assert_eq!(make_divisible(96.0 * 1.4, 8), 136); // 134.4 → 136
/// assert_eq!(make_divisible(16.0 * 0.35, 8), 8);
/// ```
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = (((v + d / 2.0) / d).floor() * d).max(d);
    let n = if rounded < 0.9 * v {
        rounded + d
    } else {
        rounded
    };
    // Finite and positive for every validated α; saturates otherwise.
    n as usize
}

/// Configuration of a MobileNetV2; `new()` is 1.0-224 with 1000 classes.
///
/// | setting | default | meaning |
/// | --- | --- | --- |
/// | `alpha` | 1.0 | width multiplier α (0 < α ≤ 100); channels [`make_divisible`]`(c·α, 8)` |
/// | `resolution` | 224 | input side; 32 to 16,384 |
/// | `classes` | 1000 | classifier outputs (≤ 2²⁴); 1001 for TF-slim checkpoints (index 0 = background) |
/// | `activation` | ReLU6 | after every BatchNorm but the projections' |
/// | `include_top` | true | false: the network ends at the pooled 1280 features |
/// | `bn_epsilon` | 0.001 | TF-slim's BatchNorm ε |
///
/// The published checkpoints are α ∈ {1.4, 1.3, 1.0, 0.75, 0.5, 0.35} at
/// sides {224, 192, 160, 128, 96} (1.4 and 1.3 at 224 only).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MobileNetV2Config {
    /// Width multiplier α.
    pub alpha: f64,
    /// Input side in pixels.
    pub resolution: usize,
    /// Number of classes of the classifier.
    pub classes: usize,
    /// Activation after every BatchNorm but the projections'.
    pub activation: Activation,
    /// Whether the classifier is included.
    pub include_top: bool,
    /// BatchNorm ε.
    pub bn_epsilon: f64,
}

impl Default for MobileNetV2Config {
    fn default() -> Self {
        MobileNetV2Config {
            alpha: 1.0,
            resolution: BASE_RESOLUTION,
            classes: 1000,
            activation: Activation::Relu6,
            include_top: true,
            bn_epsilon: 1e-3,
        }
    }
}

/// One inverted residual block of the architecture: shapes only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSpec {
    /// TF-slim name without the scope: `expanded_conv`, `expanded_conv_1`, …
    pub name: String,
    /// Expansion factor t (1: no expansion conv).
    pub expansion: usize,
    /// Stride of the depthwise conv.
    pub stride: usize,
    /// Input [H, W, C].
    pub input: [usize; 3],
    /// Output [H, W, C].
    pub output: [usize; 3],
    /// Whether the input is added to the output.
    pub residual: bool,
}

impl BlockSpec {
    /// The block's convs: `name/expand` (when t > 1), `name/depthwise`,
    /// `name/project`.
    pub fn layers(&self) -> Vec<LayerSpec> {
        let [h, w, c] = self.input;
        let wide = c * self.expansion;
        let [oh, ow, co] = self.output;
        let spec = |leaf: &str, kind, k, stride, input, output| LayerSpec {
            name: format!("{}/{leaf}", self.name),
            kind,
            kernel: [k; 2],
            stride,
            input,
            output,
        };
        let mut layers = Vec::with_capacity(3);
        if self.expansion > 1 {
            layers.push(spec(
                "expand",
                LayerKind::Pointwise,
                1,
                1,
                [h, w, c],
                [h, w, wide],
            ));
        }
        layers.push(spec(
            "depthwise",
            LayerKind::Depthwise,
            3,
            self.stride,
            [h, w, wide],
            [oh, ow, wide],
        ));
        layers.push(spec(
            "project",
            LayerKind::Pointwise,
            1,
            1,
            [oh, ow, wide],
            [oh, ow, co],
        ));
        layers
    }
}

/// The architecture in parts: stem, blocks, last conv, classifier.
struct Plan {
    stem: LayerSpec,
    blocks: Vec<BlockSpec>,
    last: LayerSpec,
    logits: Option<LayerSpec>,
}

impl MobileNetV2Config {
    /// 1.0-224, 1000 classes (see the table above for every default).
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
    /// Sets the resolution multiplier ρ: side = round(224·ρ); a non-finite
    /// or non-positive ρ gives a side of 0, which
    /// [`validate`](Self::validate) rejects.
    pub fn with_rho(mut self, rho: f64) -> Self {
        self.resolution = super::side_of(rho);
        self
    }
    /// Sets the number of classes.
    pub fn with_classes(mut self, classes: usize) -> Self {
        self.classes = classes;
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
    /// Sets the BatchNorm ε.
    pub fn with_bn_epsilon(mut self, eps: f64) -> Self {
        self.bn_epsilon = eps;
        self
    }

    /// The model's usual name, e.g. `"1.0-224"`, `"0.35-96"`.
    pub fn name(&self) -> String {
        super::model_name(self.alpha, self.resolution)
    }

    /// Checks every setting against the bounds in the table above, so that
    /// every count of a validated configuration fits its integer type.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `alpha`, `resolution`, `classes`
    /// or `bn_epsilon`.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha > 0.0 && self.alpha <= MAX_ALPHA) {
            return Err(Error::param(
                "alpha",
                self.alpha,
                format!("the width multiplier must be finite, > 0 and ≤ {MAX_ALPHA}"),
            ));
        }
        if !(MIN_RESOLUTION..=MAX_RESOLUTION).contains(&self.resolution) {
            return Err(Error::param(
                "resolution",
                self.resolution,
                format!("the input side must be {MIN_RESOLUTION} to {MAX_RESOLUTION}"),
            ));
        }
        if self.include_top && !(1..=MAX_CLASSES).contains(&self.classes) {
            return Err(Error::param(
                "classes",
                self.classes,
                format!("the classifier needs 1 to {MAX_CLASSES} classes"),
            ));
        }
        if !(self.bn_epsilon.is_finite() && self.bn_epsilon >= 0.0) {
            return Err(Error::param(
                "bn_epsilon",
                self.bn_epsilon,
                "must be finite and ≥ 0",
            ));
        }
        Ok(())
    }

    /// Channels of a layer with `c` channels at α = 1.
    pub fn depth(&self, c: usize) -> usize {
        make_divisible(c as f64 * self.alpha, 8)
    }

    /// Channels of the last 1×1 conv: 1280, scaled only for α > 1.
    pub fn last_channels(&self) -> usize {
        match self.alpha > 1.0 {
            true => self.depth(LAST_CONV_CHANNELS),
            false => LAST_CONV_CHANNELS,
        }
    }

    fn plan(&self) -> Result<Plan> {
        self.validate()?;
        let r = self.resolution;
        let side = r.div_ceil(2);
        let stem = LayerSpec {
            name: "Conv".into(),
            kind: LayerKind::Conv,
            kernel: [3, 3],
            stride: 2,
            input: [r, r, 3],
            output: [side, side, self.depth(FIRST_CONV_CHANNELS)],
        };
        let mut shape = stem.output;
        let mut blocks = Vec::with_capacity(17);
        for &(t, c, n, s) in &BOTTLENECKS {
            for repeat in 0..n {
                let stride = if repeat == 0 { s } else { 1 };
                let output = [
                    shape[0].div_ceil(stride),
                    shape[1].div_ceil(stride),
                    self.depth(c),
                ];
                let name = match blocks.len() {
                    0 => "expanded_conv".to_string(),
                    i => format!("expanded_conv_{i}"),
                };
                blocks.push(BlockSpec {
                    name,
                    expansion: t,
                    stride,
                    input: shape,
                    output,
                    residual: stride == 1 && shape[2] == output[2],
                });
                shape = output;
            }
        }
        let last = LayerSpec {
            name: "Conv_1".into(),
            kind: LayerKind::Pointwise,
            kernel: [1, 1],
            stride: 1,
            input: shape,
            output: [shape[0], shape[1], self.last_channels()],
        };
        let logits = self.include_top.then(|| LayerSpec {
            name: "Logits".into(),
            kind: LayerKind::FullyConnected,
            kernel: [1, 1],
            stride: 1,
            input: [1, 1, last.output[2]],
            output: [1, 1, self.classes],
        });
        Ok(Plan {
            stem,
            blocks,
            last,
            logits,
        })
    }

    /// The 17 inverted residual blocks, with their shapes.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn blocks(&self) -> Result<Vec<BlockSpec>> {
        Ok(self.plan()?.blocks)
    }

    /// Every conv in order, with its shapes: `Conv`, each block's
    /// [`BlockSpec::layers`], `Conv_1`, and the classifier `Logits` with the
    /// top.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn layers(&self) -> Result<Vec<LayerSpec>> {
        let plan = self.plan()?;
        let mut layers = vec![plan.stem];
        layers.extend(plan.blocks.iter().flat_map(BlockSpec::layers));
        layers.push(plan.last);
        layers.extend(plan.logits);
        Ok(layers)
    }

    /// The per-layer cost table and totals.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn summary(&self) -> Result<Summary<Self>> {
        Summary::new(self)
    }
}

impl Architecture for MobileNetV2Config {
    fn family(&self) -> &'static str {
        "MobileNetV2"
    }
    fn name(&self) -> String {
        MobileNetV2Config::name(self)
    }
    fn scope(&self) -> &'static str {
        SCOPE
    }
    fn resolution(&self) -> usize {
        self.resolution
    }
    fn include_top(&self) -> bool {
        self.include_top
    }
    fn layers(&self) -> Result<Vec<LayerSpec>> {
        MobileNetV2Config::layers(self)
    }

    /// `Conv`, one [`InvertedResidual`] per block (named as the block),
    /// `Conv_1`, `AvgPool` and `Logits`.
    fn network<F: Float>(&self, weights: &MobileNetWeights<F>) -> Result<Sequential<F>> {
        let plan = self.plan()?;
        let fold = Folder {
            weights,
            scope: SCOPE,
            eps: F::from_f64_lossy(self.bn_epsilon),
        };
        let act = self.activation;
        let mut net = Sequential::new();
        net.push_named("Conv", fold.conv(&plan.stem)?.with_activation(act));
        for block in &plan.blocks {
            let layers = block.layers();
            let (expand, rest) = match block.expansion {
                1 => (None, &layers[..]),
                _ => (
                    Some(fold.pointwise(&layers[0])?.with_activation(act)),
                    &layers[1..],
                ),
            };
            let depthwise = fold.depthwise(&rest[0])?.with_activation(act);
            // The linear bottleneck: no activation after the projection.
            let project = fold.pointwise(&rest[1])?;
            net.push_named(
                block.name.as_str(),
                InvertedResidual::new(expand, depthwise, project)?,
            );
        }
        net.push_named("Conv_1", fold.pointwise(&plan.last)?.with_activation(act));
        fold.head(&mut net, plan.logits.as_ref())?;
        Ok(net)
    }
}
