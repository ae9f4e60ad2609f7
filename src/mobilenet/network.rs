//! The MobileNet inference network: a [`Sequential`] the config builds.

use std::time::Duration;

use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Axis, Ix1, Ix4};

use super::weights::SCOPE;
use super::{LayerKind, LayerSpec, MobileNetConfig, MobileNetWeights, Summary};
use crate::Float;
use crate::conv::{Algorithm, Conv2d, DepthwiseConv2d, PointwiseConv2d};
use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::net::Sequential;
use crate::norm::BatchNorm;
use crate::pool::GlobalAvgPool;

/// A MobileNet v1 ready for inference: every BatchNorm folded into the conv
/// before it and every activation fused into that conv's output, the layers
/// in a [`Sequential`] (named as in TF-slim: `Conv2d_0`,
/// `Conv2d_1_depthwise`, …, then `AvgPool` and `Logits`) that
/// [`network`](Self::network) hands out for composing or inspecting.
///
/// # Shapes
/// input `[N, R, R, 3]` (R = `config.resolution`, RGB scaled to [−1, 1] as
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
pub struct MobileNet<F: Float> {
    config: MobileNetConfig,
    specs: Vec<LayerSpec>,
    net: Sequential<F>,
}

fn bn<F: Float>(w: &MobileNetWeights<F>, layer: &str, c: usize, eps: F) -> Result<BatchNorm<F>> {
    let part = |p: &str| -> Result<Array1<F>> {
        let name = format!("{SCOPE}/{layer}/BatchNorm/{p}");
        Ok(w.tensor(&name, &[c])?
            .into_dimensionality::<Ix1>()
            .expect("1-D")
            .to_owned())
    };
    BatchNorm::new(
        part("gamma")?,
        part("beta")?,
        part("moving_mean")?,
        part("moving_variance")?,
        eps,
    )
    .map_err(|e| match e {
        // Name the layer whose statistics are bad.
        Error::InvalidVariance { channel, value } => Error::param(
            "moving_variance",
            value,
            format!("{SCOPE}/{layer}/BatchNorm/moving_variance[{channel}] must be finite and ≥ 0"),
        ),
        e => e,
    })
}

impl<F: Float> MobileNet<F> {
    /// Builds the network from `weights` (checked against `config`), folding
    /// every BatchNorm.
    ///
    /// # Errors
    /// As [`MobileNetConfig::validate`]; [`Error::MissingTensor`] or
    /// [`Error::ShapeMismatch`] naming a tensor; [`Error::InvalidParameter`]
    /// for a negative BN variance.
    pub fn new(config: &MobileNetConfig, weights: &MobileNetWeights<F>) -> Result<Self> {
        let specs = config.layers()?;
        let eps = F::from_f64_lossy(config.bn_epsilon);
        let act = config.activation;
        let mut net = Sequential::new();
        for spec in &specs {
            let shape = spec.weight_shape();
            let c = spec.output[2];
            let name = spec.name.as_str();
            let tensor = |full: String, shape: &[usize]| -> Result<ndarray::ArrayD<F>> {
                Ok(weights.tensor(&full, shape)?.to_owned())
            };
            let weight = |leaf: &str| -> Result<Array4<F>> {
                Ok(tensor(format!("{SCOPE}/{name}/{leaf}"), &shape)?
                    .into_dimensionality::<Ix4>()
                    .expect("4-D"))
            };
            match spec.kind {
                LayerKind::Conv => {
                    let conv = Conv2d::builder(weight("weights")?)
                        .params(spec.conv_params())
                        .build()?;
                    let conv = conv.fold_batch_norm(&bn(weights, name, c, eps)?)?;
                    net.push_named(name, conv.with_activation(act));
                }
                LayerKind::Depthwise => {
                    let dw = DepthwiseConv2d::builder(weight("depthwise_weights")?)
                        .params(spec.conv_params())
                        .build()?;
                    let dw = dw.fold_batch_norm(&bn(weights, name, c, eps)?)?;
                    net.push_named(name, dw.with_activation(act));
                }
                LayerKind::Pointwise => {
                    let w = weight("weights")?;
                    let pw = PointwiseConv2d::new(
                        w.index_axis_move(Axis(0), 0).index_axis_move(Axis(0), 0),
                        None,
                    )?;
                    let pw = pw.fold_batch_norm(&bn(weights, name, c, eps)?)?;
                    net.push_named(name, pw.with_activation(act));
                }
                LayerKind::FullyConnected => {
                    let w = tensor(format!("{SCOPE}/Logits/Conv2d_1c_1x1/weights"), &shape)?
                        .into_dimensionality::<Ix4>()
                        .expect("4-D")
                        .index_axis_move(Axis(0), 0)
                        .index_axis_move(Axis(0), 0);
                    let b = tensor(format!("{SCOPE}/Logits/Conv2d_1c_1x1/biases"), &[c])?
                        .into_dimensionality::<Ix1>()
                        .expect("1-D");
                    // The classifier reads the globally pooled features.
                    net.push_named("AvgPool", GlobalAvgPool);
                    net.push_named("Logits", PointwiseConv2d::new(w, Some(b))?);
                }
            }
        }
        if !config.include_top {
            net.push_named("AvgPool", GlobalAvgPool);
        }
        Ok(MobileNet {
            config: *config,
            specs,
            net,
        })
    }

    /// A network with [`MobileNetWeights::seeded`] weights.
    ///
    /// # Errors
    /// As [`MobileNetConfig::validate`].
    pub fn seeded(config: &MobileNetConfig, seed: u64) -> Result<Self> {
        Self::new(config, &MobileNetWeights::seeded(config, seed)?)
    }

    /// Forces an implementation in every layer.
    pub fn with_algorithm(mut self, a: Algorithm) -> Self {
        self.net = self.net.with_algorithm(a);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &MobileNetConfig {
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
    pub fn summary(&self) -> Summary {
        Summary::new(&self.config).expect("validated at build")
    }

    /// The input shape for a batch of `n`: `[n, R, R, 3]`.
    pub fn input_shape(&self, n: usize) -> [usize; 4] {
        [n, self.config.resolution, self.config.resolution, 3]
    }

    /// Checks an input batch against the configuration, naming NHWC.
    fn check(&self, x: &ArrayView4<'_, F>) -> Result<()> {
        let [n, h, w, c] = crate::conv::dims4(x.shape());
        let r = self.config.resolution;
        if n == 0 {
            return Err(Error::ZeroSize {
                what: "MobileNet input".into(),
                shape: x.shape().into(),
            });
        }
        if c != 3 {
            return Err(Error::ChannelMismatch {
                what: "MobileNet input (RGB)".into(),
                expected: 3,
                got: c,
            });
        }
        if (h, w) != (r, r) {
            return Err(Error::shape(
                format!("MobileNet {} input (resolution {r})", self.config.name()),
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
    /// [`Error::ChannelMismatch`] for an input that is not RGB,
    /// [`Error::ShapeMismatch`] for one that is not `R×R`, [`Error::ZeroSize`]
    /// for an empty batch.
    pub fn forward(&self, x: ArrayView4<'_, F>) -> Result<Array2<F>> {
        self.check(&x)?;
        Ok(Self::flat(self.net.forward(x)?))
    }

    /// As [`forward`](Self::forward), also returning the wall time of each
    /// layer (the classifier's includes the pooling), in [`layers`](Self::layers) order.
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_profiled(&self, x: ArrayView4<'_, F>) -> Result<(Array2<F>, Vec<Duration>)> {
        self.check(&x)?;
        let (y, mut times) = self.net.forward_profiled(x)?;
        // The network's pooling (and classifier) go into the last spec's
        // time when there is a classifier; the features alone are untimed.
        if self.config.include_top {
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
