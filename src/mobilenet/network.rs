//! The MobileNet inference network: a [`Sequential`] the config builds.

use std::time::Duration;

use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Axis, Ix1, Ix4};

use super::weights::SCOPE;
use super::{Architecture, LayerKind, LayerSpec, MobileNetConfig, MobileNetWeights, Summary};
use crate::Float;
use crate::conv::{Algorithm, Conv2d, DepthwiseConv2d, PointwiseConv2d};
use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::net::Sequential;
use crate::norm::BatchNorm;
use crate::pool::GlobalAvgPool;

/// A MobileNet ready for inference, v1 ([`MobileNetConfig`], the default
/// `C`) or v2 ([`MobileNetV2`](super::v2::MobileNetV2)): every BatchNorm
/// folded into the conv before it and every activation fused into that
/// conv's output, the layers in a [`Sequential`] (named as in TF-slim:
/// `Conv2d_0`, `Conv2d_1_depthwise`, …, then `AvgPool` and `Logits`) that
/// [`network`](Self::network) hands out for composing or inspecting.
///
/// # Shapes
/// input `[N, R, R, 3]` (R = the config's resolution, RGB scaled to [−1, 1] as
/// [`crate::preprocess::imagenet_input`] does), output logits `[N, classes]`,
/// or the pooled features `[N, C]` without the classifier.
///
/// ```
/// use ndarray::Array4;
/// use sepconv::mobilenet::{MobileNet, MobileNetConfig};
/// let config = MobileNetConfig::new().with_alpha(0.25).with_resolution(128).with_classes(10);
/// let net = MobileNet::<f32>::seeded(&config, 42)?;
/// let logits = net.forward(Array4::zeros((2, 128, 128, 3)).view())?;
/// assert_eq!(logits.shape(), &[2, 10]);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MobileNet<F: Float, C: Architecture = MobileNetConfig> {
    config: C,
    specs: Vec<LayerSpec>,
    net: Sequential<F>,
}

/// Builds a family's layers from named weights: each conv with the
/// BatchNorm after it folded in (the activation is the caller's to fuse).
pub(crate) struct Folder<'a, F: Float> {
    pub(crate) weights: &'a MobileNetWeights<F>,
    pub(crate) scope: &'static str,
    pub(crate) eps: F,
}

impl<F: Float> Folder<'_, F> {
    fn tensor(&self, name: String, shape: &[usize]) -> Result<ndarray::ArrayD<F>> {
        Ok(self.weights.tensor(&name, shape)?.to_owned())
    }

    fn weight(&self, spec: &LayerSpec, leaf: &str) -> Result<Array4<F>> {
        let shape = spec.weight_shape();
        Ok(self
            .tensor(format!("{}/{}/{leaf}", self.scope, spec.name), &shape)?
            .into_dimensionality::<Ix4>()
            .expect("4-D"))
    }

    fn bn(&self, spec: &LayerSpec) -> Result<BatchNorm<F>> {
        let (scope, layer, c) = (self.scope, spec.name.as_str(), spec.output[2]);
        let part = |p: &str| -> Result<Array1<F>> {
            Ok(self
                .tensor(format!("{scope}/{layer}/BatchNorm/{p}"), &[c])?
                .into_dimensionality::<Ix1>()
                .expect("1-D"))
        };
        BatchNorm::new(
            part("gamma")?,
            part("beta")?,
            part("moving_mean")?,
            part("moving_variance")?,
            self.eps,
        )
        .map_err(|e| match e {
            // Name the layer whose statistics are bad.
            Error::InvalidVariance { channel, value } => Error::param(
                "moving_variance",
                value,
                format!(
                    "{scope}/{layer}/BatchNorm/moving_variance[{channel}] must be finite and ≥ 0"
                ),
            ),
            e => e,
        })
    }

    /// A standard conv (`L/weights`), BatchNorm folded.
    pub(crate) fn conv(&self, spec: &LayerSpec) -> Result<Conv2d<F>> {
        Conv2d::builder(self.weight(spec, "weights")?)
            .params(spec.conv_params())
            .build()?
            .fold_batch_norm(&self.bn(spec)?)
    }

    /// A depthwise conv (`L/depthwise_weights`), BatchNorm folded.
    pub(crate) fn depthwise(&self, spec: &LayerSpec) -> Result<DepthwiseConv2d<F>> {
        DepthwiseConv2d::builder(self.weight(spec, "depthwise_weights")?)
            .params(spec.conv_params())
            .build()?
            .fold_batch_norm(&self.bn(spec)?)
    }

    /// A pointwise conv (`L/weights`, `[1, 1, C_in, C_out]`), BatchNorm folded.
    pub(crate) fn pointwise(&self, spec: &LayerSpec) -> Result<PointwiseConv2d<F>> {
        let w = self.weight(spec, "weights")?;
        PointwiseConv2d::new(
            w.index_axis_move(Axis(0), 0).index_axis_move(Axis(0), 0),
            None,
        )?
        .fold_batch_norm(&self.bn(spec)?)
    }

    /// The classifier (`Logits/Conv2d_1c_1x1/weights` and `biases`).
    pub(crate) fn classifier(&self, spec: &LayerSpec) -> Result<PointwiseConv2d<F>> {
        let scope = self.scope;
        let w = self
            .tensor(
                format!("{scope}/Logits/Conv2d_1c_1x1/weights"),
                &spec.weight_shape(),
            )?
            .into_dimensionality::<Ix4>()
            .expect("4-D")
            .index_axis_move(Axis(0), 0)
            .index_axis_move(Axis(0), 0);
        let b = self
            .tensor(
                format!("{scope}/Logits/Conv2d_1c_1x1/biases"),
                &[spec.output[2]],
            )?
            .into_dimensionality::<Ix1>()
            .expect("1-D");
        PointwiseConv2d::new(w, Some(b))
    }

    /// Global average pooling, then the classifier when `spec` is one (the
    /// last layer of a network with its top), else the pooling alone.
    pub(crate) fn head(&self, net: &mut Sequential<F>, spec: Option<&LayerSpec>) -> Result<()> {
        net.push_named("AvgPool", GlobalAvgPool);
        if let Some(spec) = spec.filter(|s| s.kind == LayerKind::FullyConnected) {
            net.push_named("Logits", self.classifier(spec)?);
        }
        Ok(())
    }
}

/// MobileNet v1's layers, in order, from its weights.
pub(crate) fn v1_network<F: Float>(
    config: &MobileNetConfig,
    weights: &MobileNetWeights<F>,
) -> Result<Sequential<F>> {
    let specs = config.layers()?;
    let fold = Folder {
        weights,
        scope: SCOPE,
        eps: F::from_f64_lossy(config.bn_epsilon),
    };
    let act = config.activation;
    let mut net = Sequential::new();
    for spec in &specs {
        let name = spec.name.as_str();
        match spec.kind {
            LayerKind::Conv => net.push_named(name, fold.conv(spec)?.with_activation(act)),
            LayerKind::Depthwise => {
                net.push_named(name, fold.depthwise(spec)?.with_activation(act))
            }
            LayerKind::Pointwise => {
                net.push_named(name, fold.pointwise(spec)?.with_activation(act))
            }
            LayerKind::FullyConnected => continue,
        };
    }
    fold.head(&mut net, specs.last())?;
    Ok(net)
}

impl<F: Float, C: Architecture> MobileNet<F, C> {
    /// Builds the network from `weights` (checked against `config`), folding
    /// every BatchNorm.
    ///
    /// # Errors
    /// As the config's `validate`; [`Error::MissingTensor`] or
    /// [`Error::ShapeMismatch`] naming a tensor; [`Error::InvalidParameter`]
    /// for a negative BN variance.
    pub fn new(config: &C, weights: &MobileNetWeights<F>) -> Result<Self> {
        Ok(MobileNet {
            specs: config.layers()?,
            net: config.network(weights)?,
            config: config.clone(),
        })
    }

    /// A network with [`MobileNetWeights::seeded`] weights.
    ///
    /// # Errors
    /// As the config's `validate`.
    pub fn seeded(config: &C, seed: u64) -> Result<Self> {
        Self::new(config, &MobileNetWeights::seeded(config, seed)?)
    }

    /// Forces an implementation in every layer.
    pub fn with_algorithm(mut self, a: Algorithm) -> Self {
        self.net = self.net.with_algorithm(a);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The layers' shapes, in order.
    pub fn layers(&self) -> &[LayerSpec] {
        &self.specs
    }

    /// The network as a [`Sequential`]: `[N, R, R, 3]` → `[N, 1, 1, classes]`
    /// (or `[N, 1, 1, C]` without the classifier).
    pub fn network(&self) -> &Sequential<F> {
        &self.net
    }

    /// The network as a [`Sequential`], to compose further.
    pub fn into_network(self) -> Sequential<F> {
        self.net
    }

    /// The cost table.
    pub fn summary(&self) -> Summary<C> {
        Summary::new(&self.config).expect("validated at build")
    }

    /// The input shape for a batch of `n`: `[n, R, R, 3]`.
    pub fn input_shape(&self, n: usize) -> [usize; 4] {
        let r = self.config.resolution();
        [n, r, r, 3]
    }

    /// Checks an input batch against the configuration, naming NHWC.
    fn check(&self, x: &ArrayView4<'_, F>) -> Result<()> {
        let [n, h, w, c] = crate::conv::dims4(x.shape());
        let r = self.config.resolution();
        if n == 0 {
            return Err(Error::ZeroSize {
                what: "MobileNet input".into(),
                shape: x.shape().into(),
            });
        }
        if c != 3 {
            return Err(crate::conv::channel_mismatch(
                "MobileNet input (RGB)",
                x.shape(),
                3,
            ));
        }
        if (h, w) != (r, r) {
            return Err(Error::shape(
                format!(
                    "{} {} input (resolution {r})",
                    self.config.family(),
                    self.config.name()
                ),
                &[n, r, r, 3],
                x.shape(),
            ));
        }
        Ok(())
    }

    /// `[N, 1, 1, C]` → `[N, C]`, without a copy.
    fn flat(y: Array4<F>) -> Array2<F> {
        let (n, c) = (y.shape()[0], y.shape()[3]);
        y.into_shape_with_order((n, c))
            .expect("a new array is in standard layout")
    }

    /// Logits `[N, classes]` (or pooled features `[N, C]` without the
    /// classifier) for an NHWC batch.
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`] for an input that is not RGB
    /// ([`Error::Layout`] when it looks NCHW `[N, 3, H, W]`: convert it with
    /// [`layout::nchw_to_nhwc`](crate::layout::nchw_to_nhwc)),
    /// [`Error::ShapeMismatch`] for one that is not `R×R`, [`Error::ZeroSize`]
    /// for an empty batch.
    pub fn forward(&self, x: ArrayView4<'_, F>) -> Result<Array2<F>> {
        self.check(&x)?;
        Ok(Self::flat(self.net.forward(x)?))
    }

    /// As [`forward`](Self::forward), also returning the wall time of each
    /// layer of [`network`](Self::network), the pooling's added to the
    /// classifier's (and left out without the classifier). For v1 these are
    /// the rows of [`layers`](Self::layers); for v2 the stem, one per
    /// inverted residual block, `Conv_1` and the classifier.
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_profiled(&self, x: ArrayView4<'_, F>) -> Result<(Array2<F>, Vec<Duration>)> {
        self.check(&x)?;
        let (y, mut times) = self.net.forward_profiled(x)?;
        // The network's pooling (and classifier) go into the last spec's
        // time when there is a classifier; the features alone are untimed.
        if self.config.include_top() {
            let logits = times.pop().unwrap_or_default();
            let pool = times.pop().unwrap_or_default();
            times.push(pool + logits);
        } else {
            times.pop();
        }
        Ok((Self::flat(y), times))
    }
}

/// Softmax over the last axis, computed stably (max subtracted).
///
/// Infinite logits give the limit: a row with `+inf` entries puts equal
/// probability on them and 0 elsewhere; `−inf` entries get 0; a row of only
/// `−inf` is uniform. A row with a NaN is all NaN.
pub fn softmax<F: Float>(logits: ArrayView2<'_, F>) -> Array2<F> {
    let mut out = logits.to_owned();
    for mut row in out.rows_mut() {
        if row.iter().any(|v| v.is_nan()) {
            row.fill(F::nan());
            continue;
        }
        let max = row.iter().copied().fold(F::neg_infinity(), F::max);
        if max.is_infinite() {
            // +inf: the infinite entries share the mass; −inf: all are −inf.
            let top = row.iter().filter(|&&v| v == max).count();
            let p = F::one() / F::from_usize(top).expect("a count is a float");
            row.mapv_inplace(|v| if v == max { p } else { F::zero() });
            continue;
        }
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
    }
    out
}

/// The `k` largest entries as `(index, value)`, largest first (ties: lower
/// index first; NaN sorts last).
pub fn top_k<F: Float>(scores: ArrayView1<'_, F>, k: usize) -> Vec<(usize, F)> {
    let mut idx: Vec<(usize, F)> = scores.iter().copied().enumerate().collect();
    idx.sort_by(|a, b| {
        let key = |v: F| if v.is_nan() { F::neg_infinity() } else { v };
        key(b.1)
            .partial_cmp(&key(a.1))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    });
    idx.truncate(k);
    idx
}
