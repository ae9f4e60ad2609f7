//! The MobileNet inference network.

use std::time::{Duration, Instant};

use std::sync::Mutex;

use ndarray::{
    Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, ArrayViewMut2, ArrayViewMut4, Axis,
    Ix1, Ix4,
};

use super::weights::SCOPE;
use super::{LayerKind, LayerSpec, MobileNetConfig, MobileNetWeights, Summary};
use crate::Float;
use crate::activation::Activation;
use crate::conv::{Algorithm, Conv2d, DepthwiseConv2d, PointwiseConv2d};
use crate::error::{Error, Result};
use crate::norm::BatchNorm;

#[derive(Clone, Debug)]
enum Layer<F: Float> {
    Conv(Conv2d<F>),
    Depthwise(DepthwiseConv2d<F>),
    Pointwise(PointwiseConv2d<F>),
}

impl<F: Float> Layer<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        match self {
            Layer::Conv(l) => l.output_shape(input),
            Layer::Depthwise(l) => l.output_shape(input),
            Layer::Pointwise(l) => l.output_shape(input),
        }
    }

    fn forward_into(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut Vec<F>,
    ) -> Result<()> {
        match self {
            Layer::Conv(l) => l.forward_into_scratch(x, out, scratch),
            Layer::Depthwise(l) => l.forward_into(x, out),
            Layer::Pointwise(l) => l.forward_into(x, out),
        }
    }

    fn with_algorithm(self, a: Algorithm) -> Self {
        match self {
            Layer::Conv(l) => Layer::Conv(l.with_algorithm(a)),
            Layer::Depthwise(l) => Layer::Depthwise(l.with_algorithm(a)),
            Layer::Pointwise(l) => Layer::Pointwise(l.with_algorithm(a)),
        }
    }
}

/// A MobileNet v1 ready for inference: every BatchNorm folded into the conv
/// before it and every activation fused into that conv's output.
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
#[derive(Debug)]
pub struct MobileNet<F: Float> {
    config: MobileNetConfig,
    specs: Vec<LayerSpec>,
    body: Vec<Layer<F>>,
    classifier: Option<PointwiseConv2d<F>>,
    /// Buffers planned by earlier forwards, one per concurrent caller, so a
    /// forward after the first allocates nothing but its output.
    workspaces: Mutex<Vec<Workspace<F>>>,
}

/// Activation buffers of one forward pass: two ping-pong buffers sized to
/// the largest layer output, the im2col patch matrix, the pooled features.
#[derive(Debug, Default)]
struct Workspace<F> {
    ping: Vec<F>,
    pong: Vec<F>,
    im2col: Vec<F>,
    pooled: Vec<F>,
    /// The whole batch's activations where the network switches from
    /// image-by-image to batched layers.
    stage: Vec<F>,
}

/// Activations (floats) a batch may hold per layer and still run batched:
/// larger early layers run image by image, so that a layer's input and
/// output stay in cache instead of streaming tens of megabytes.
const BATCH_BUDGET: usize = 1 << 20;

/// `buf[..len]`, growing `buf` (with zeros) only when it is too short.
fn take<F: Float>(buf: &mut Vec<F>, len: usize) -> &mut [F] {
    if buf.len() < len {
        buf.resize(len, F::zero());
    }
    &mut buf[..len]
}

impl<F: Float> Clone for MobileNet<F> {
    /// The same network, with its own (empty) buffers.
    fn clone(&self) -> Self {
        MobileNet {
            config: self.config,
            specs: self.specs.clone(),
            body: self.body.clone(),
            classifier: self.classifier.clone(),
            workspaces: Mutex::new(Vec::new()),
        }
    }
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
        let mut body = Vec::with_capacity(specs.len());
        let mut classifier = None;
        for spec in &specs {
            let shape = spec.weight_shape();
            let c = spec.output[2];
            let name = &spec.name;
            let weight = |leaf: &str| -> Result<Array4<F>> {
                let full = format!("{SCOPE}/{name}/{leaf}");
                Ok(weights
                    .tensor(&full, &shape)?
                    .into_dimensionality::<Ix4>()
                    .expect("4-D")
                    .to_owned())
            };
            match spec.kind {
                LayerKind::Conv => {
                    let conv = Conv2d::builder(weight("weights")?)
                        .params(spec.conv_params())
                        .build()?;
                    body.push(Layer::Conv(
                        conv.fold_batch_norm(&bn(weights, name, c, eps)?)?
                            .with_activation(config.activation),
                    ));
                }
                LayerKind::Depthwise => {
                    let dw = DepthwiseConv2d::builder(weight("depthwise_weights")?)
                        .params(spec.conv_params())
                        .build()?;
                    body.push(Layer::Depthwise(
                        dw.fold_batch_norm(&bn(weights, name, c, eps)?)?
                            .with_activation(config.activation),
                    ));
                }
                LayerKind::Pointwise => {
                    let w = weight("weights")?;
                    let pw = PointwiseConv2d::new(
                        w.index_axis_move(Axis(0), 0).index_axis_move(Axis(0), 0),
                        None,
                    )?;
                    body.push(Layer::Pointwise(
                        pw.fold_batch_norm(&bn(weights, name, c, eps)?)?
                            .with_activation(config.activation),
                    ));
                }
                LayerKind::FullyConnected => {
                    let w = weights
                        .tensor(&format!("{SCOPE}/Logits/Conv2d_1c_1x1/weights"), &shape)?
                        .into_dimensionality::<Ix4>()
                        .expect("4-D")
                        .index_axis_move(Axis(0), 0)
                        .index_axis_move(Axis(0), 0)
                        .to_owned();
                    let b = weights
                        .tensor(&format!("{SCOPE}/Logits/Conv2d_1c_1x1/biases"), &[c])?
                        .into_dimensionality::<Ix1>()
                        .expect("1-D")
                        .to_owned();
                    classifier = Some(
                        PointwiseConv2d::new(w, Some(b))?.with_activation(Activation::Identity),
                    );
                }
            }
        }
        Ok(MobileNet {
            config: *config,
            specs,
            body,
            classifier,
            workspaces: Mutex::new(Vec::new()),
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
        self.body = self.body.into_iter().map(|l| l.with_algorithm(a)).collect();
        self.classifier = self.classifier.map(|c| c.with_algorithm(a));
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

    /// The cost table.
    pub fn summary(&self) -> Summary {
        Summary::new(&self.config).expect("validated at build")
    }

    /// The input shape for a batch of `n`: `[n, R, R, 3]`.
    pub fn input_shape(&self, n: usize) -> [usize; 4] {
        [n, self.config.resolution, self.config.resolution, 3]
    }

    /// Logits `[N, classes]` (or pooled features `[N, C]` without the
    /// classifier) for an NHWC batch.
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`] for an input that is not RGB,
    /// [`Error::ShapeMismatch`] for one that is not `R×R`, [`Error::ZeroSize`]
    /// for an empty batch.
    pub fn forward(&self, x: ArrayView4<'_, F>) -> Result<Array2<F>> {
        self.run(x, |_, _| {})
    }

    /// As [`forward`](Self::forward), also returning the wall time of each
    /// layer (the classifier's includes the pooling), in [`layers`](Self::layers) order.
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_profiled(&self, x: ArrayView4<'_, F>) -> Result<(Array2<F>, Vec<Duration>)> {
        let mut times = vec![Duration::ZERO; self.specs.len()];
        let y = self.run(x, |i, t| times[i] += t)?;
        Ok((y, times))
    }

    fn run(
        &self,
        x: ArrayView4<'_, F>,
        mut on_layer: impl FnMut(usize, Duration) + Send,
    ) -> Result<Array2<F>> {
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
        // Called from outside the thread pool: run the whole forward on a pool
        // thread, so that each parallel section starts there instead of
        // handing work from this thread to another core and back.
        #[cfg(feature = "rayon")]
        if rayon::current_thread_index().is_none() && crate::parallel::threads() > 1 {
            return rayon::scope(|_| self.run_pooled(x, &mut on_layer));
        }
        self.run_pooled(x, &mut on_layer)
    }

    fn run_pooled(
        &self,
        x: ArrayView4<'_, F>,
        on_layer: &mut (impl FnMut(usize, Duration) + Send),
    ) -> Result<Array2<F>> {
        // A workspace of an earlier forward (or a new one): its buffers grow
        // to this batch's sizes once and are reused as they are after that.
        let mut ws = self
            .workspaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let result = self.run_in(&mut ws, x, on_layer);
        self.workspaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ws);
        result
    }

    /// The first body layer from which the whole batch runs at once: every
    /// later layer's input and output, for `n` images, fit [`BATCH_BUDGET`].
    fn batched_from(&self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let size = |s: [usize; 3]| s.iter().product::<usize>().saturating_mul(n);
        let body = &self.specs[..self.body.len()];
        body.iter()
            .rposition(|s| size(s.input).max(size(s.output)) > BATCH_BUDGET)
            .map_or(0, |i| i + 1)
    }

    /// Runs body layers `layers` on `x`, ping-ponging between `src` and
    /// `dst`; the result ends in `src`, its shape is returned.
    fn run_layers<'b>(
        &self,
        layers: std::ops::Range<usize>,
        x: ArrayView4<'_, F>,
        (src, dst): (&mut &'b mut Vec<F>, &mut &'b mut Vec<F>),
        im2col: &mut Vec<F>,
        on_layer: &mut impl FnMut(usize, Duration),
    ) -> Result<[usize; 4]> {
        let mut shape = crate::conv::dims4(x.shape());
        let first = layers.start;
        for i in layers {
            let t = Instant::now();
            let layer = &self.body[i];
            let out_shape = layer.output_shape(shape)?;
            let len = out_shape.iter().product();
            let out =
                ArrayViewMut4::from_shape(out_shape, take(dst, len)).expect("sized to the shape");
            if i == first {
                layer.forward_into(x, out, im2col)?;
            } else {
                let input = ArrayView4::from_shape(shape, &src[..shape.iter().product()])
                    .expect("written by the layer before");
                layer.forward_into(input, out, im2col)?;
            }
            on_layer(i, t.elapsed());
            std::mem::swap(src, dst);
            shape = out_shape;
        }
        Ok(shape)
    }

    fn run_in(
        &self,
        ws: &mut Workspace<F>,
        x: ArrayView4<'_, F>,
        on_layer: &mut impl FnMut(usize, Duration),
    ) -> Result<Array2<F>> {
        let Workspace {
            ping,
            pong,
            im2col,
            pooled,
            stage,
        } = ws;
        let (mut src, mut dst) = (ping, pong);
        let n = x.shape()[0];
        // Large early layers image by image into `stage`, then the batch.
        let split = self.batched_from(n);
        let (input, from) = if split == 0 {
            (x, 0)
        } else {
            let mut staged = 0;
            let mut staged_shape = [0; 4];
            for b in 0..n {
                let image = x.slice(ndarray::s![b..b + 1, .., .., ..]);
                let shape =
                    self.run_layers(0..split, image, (&mut src, &mut dst), im2col, on_layer)?;
                let len = shape.iter().product::<usize>();
                take(stage, n * len)[b * len..(b + 1) * len].copy_from_slice(&src[..len]);
                (staged, staged_shape) = (n * len, [n, shape[1], shape[2], shape[3]]);
            }
            let staged =
                ArrayView4::from_shape(staged_shape, &stage[..staged]).expect("filled above");
            (staged, split)
        };
        let (shape, result): ([usize; 4], &[F]) = if from < self.body.len() {
            let shape = self.run_layers(
                from..self.body.len(),
                input,
                (&mut src, &mut dst),
                im2col,
                on_layer,
            )?;
            (shape, src)
        } else {
            // Every layer ran image by image: the result is in `stage`.
            (crate::conv::dims4(input.shape()), stage)
        };
        let t = Instant::now();
        let (n, c) = (shape[0], shape[3]);
        let last = ArrayView4::from_shape(shape, &result[..shape.iter().product()])
            .expect("written by the last layer");
        let Some(fc) = &self.classifier else {
            let mut features = Array2::zeros((n, c));
            global_average_pool(last, features.view_mut());
            return Ok(features);
        };
        let mut features = ArrayViewMut2::from_shape((n, c), take(pooled, n * c)).expect("sized");
        global_average_pool(last, features.view_mut());
        let classes = fc.out_channels();
        let mut logits = Array2::zeros((n, classes));
        let features = features
            .view()
            .into_shape_with_order((n, 1, 1, c))
            .expect("contiguous");
        fc.forward_into(
            features,
            logits
                .view_mut()
                .into_shape_with_order((n, 1, 1, classes))
                .expect("contiguous"),
        )?;
        on_layer(self.body.len(), t.elapsed());
        Ok(logits)
    }
}

/// Mean over rows and columns: `[N, H, W, C]` → `[N, C]`, into `out`.
fn global_average_pool<F: Float>(x: ArrayView4<'_, F>, mut out: ArrayViewMut2<'_, F>) {
    let (_, h, w, _) = x.dim();
    out.fill(F::zero());
    for (image, mut o) in x.outer_iter().zip(out.outer_iter_mut()) {
        for row in image.outer_iter() {
            for px in row.outer_iter() {
                o += &px;
            }
        }
        o /= F::from_f64_lossy((h * w) as f64);
    }
}

/// Softmax over the last axis, computed stably (max subtracted).
pub fn softmax<F: Float>(logits: ArrayView2<'_, F>) -> Array2<F> {
    let mut out = logits.to_owned();
    for mut row in out.rows_mut() {
        let max = row.iter().copied().fold(F::neg_infinity(), F::max);
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
