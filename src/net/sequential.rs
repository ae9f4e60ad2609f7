//! The sequential container: layers in order, planned buffers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ndarray::{Array4, ArrayView4, ArrayViewMut4, s};

use super::Summary;
use super::band::{MAX_STAGES, Plan, Stage, WHOLE_BYTES};
use crate::Float;
use crate::conv::{Algorithm, check_output, dims4};
use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::layer::{
    Layer, LayerInfo, SummaryRow, Token, check_scratch, checked_len, child_path, zeroed, zeros4,
};

/// Activations (elements) a batch may hold per layer and still run batched:
/// larger early layers run image by image, so that a layer's input and
/// output stay in cache instead of streaming tens of megabytes (MobileNet
/// 1.0-224 at batch 8: its first layers hold 3.2 MB an image).
const BATCH_BUDGET: usize = 1 << 20;

/// Plans (input shape, thread count and scratch) a `Sequential` keeps for
/// its forwards: one per shape a caller alternates between, up to this many.
const KEPT_PLANS: usize = 4;

/// Layers run in order, each reading the output of the one before.
///
/// Shapes are checked layer by layer for each input shape
/// ([`shapes`](Self::shapes)): an error names the layer's index, name and
/// type, the shape it was given and what it expected. A forward's
/// intermediate activations live in two ping-pong buffers (those inside a
/// chain of 1×1 and depthwise convs that runs band by band, in its band
/// buffers instead) and the layers' scratch after them, all in one scratch of
/// [`scratch_len`](Layer::scratch_len) elements; [`forward`](Layer::forward)
/// and [`forward_into`](Layer::forward_into) keep that scratch between calls
/// (for up to four input shapes and thread counts, and one per concurrent
/// caller), so every forward after the first allocates nothing but its
/// output, and plans nothing: the buffer layout of each input shape is
/// computed once.
///
/// With a batch, the early layers whose activations exceed about 4 MB of f32
/// (2²⁰ elements) run image by image and the rest on the whole batch: the
/// same numbers, with the working set in cache.
///
/// Consecutive [`PointwiseConv2d`](crate::PointwiseConv2d) and
/// [`DepthwiseConv2d`](crate::DepthwiseConv2d) layers whose
/// maps pass 1 MiB an image run as one chain, band by band of rows, ending
/// in a depthwise conv (and starting, it may be, with a [`Conv2d`](crate::Conv2d)
/// on few input channels, as an RGB stem): each map between them lives in a
/// band buffer of about 256 KiB (1 MiB on several threads) that stays in L2,
/// instead of a whole map written out to memory and read back (MobileNet v1
/// 1.0-224's stem → `Conv2d_1_depthwise` → `Conv2d_1_pointwise` →
/// `Conv2d_2_depthwise`, whose maps between hold 1.6, 1.6 and 3.2 MB). The
/// numbers are the same bits as layer by layer.
///
/// A `Sequential` is itself a [`Layer`], so containers nest.
///
/// ```
/// use ndarray::{Array2, Array4};
/// use sepconv::net::Sequential;
/// use sepconv::pool::GlobalAvgPool;
/// use sepconv::{Activation, DepthwiseConv2d, Layer, Padding, PointwiseConv2d};
/// let net = Sequential::<f32>::new()
///     .with(DepthwiseConv2d::builder(Array4::ones((3, 3, 4, 1))).padding(Padding::Same).build()?)
///     .with(PointwiseConv2d::new(Array2::ones((4, 8)), None)?.with_activation(Activation::Relu6))
///     .with(GlobalAvgPool);
/// assert_eq!(net.output_shape([2, 6, 6, 4])?, [2, 1, 1, 8]);
/// let y = net.forward(Array4::ones((2, 6, 6, 4)).view())?;
/// assert!(y.iter().all(|&v| v == 6.0)); // clamped by ReLU6
/// // A layer that does not fit names itself and the shape it was given:
/// let bad = net.clone().with(PointwiseConv2d::new(Array2::ones((3, 1)), None)?);
/// let err = bad.output_shape([2, 6, 6, 4]).unwrap_err().to_string();
/// assert!(err.starts_with("layer 3 (\"3\", PointwiseConv2d) on input [2, 1, 1, 8]"), "{err}");
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Debug)]
pub struct Sequential<F: Float> {
    layers: Vec<(String, Box<dyn Layer<F>>)>,
    /// Plans and scratch kept by earlier forwards, one per concurrent caller.
    kept: Mutex<Vec<Kept<F>>>,
}

/// Layers that run as one chain, band by band: `stages[..len]` (the
/// entries after are copies of the last, never read) and their plan.
struct Chain<'a, F: Float> {
    stages: [Stage<'a, F>; MAX_STAGES],
    len: usize,
    plan: Plan,
}

impl<F: Float> Chain<'_, F> {
    /// Whether the chain reads its input's rows in place (a depthwise conv
    /// or a conv first), which then must be in standard layout.
    fn reads_rows_in_place(&self) -> bool {
        !matches!(self.stages[0], Stage::Pointwise(_))
    }
}

/// A forward's plan for one input shape and thread count, and its scratch.
#[derive(Debug)]
struct Kept<F> {
    input: [usize; 4],
    threads: usize,
    output: [usize; 4],
    layout: Layout,
    scratch: Vec<F>,
}

impl<F: Float> Clone for Sequential<F> {
    /// The same layers, with no scratch kept.
    fn clone(&self) -> Self {
        Sequential {
            layers: self.layers.clone(),
            kept: Mutex::new(Vec::new()),
        }
    }
}

impl<F: Float> Default for Sequential<F> {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a forward's buffers lie in its scratch, for one input shape and
/// thread count (the im2col layers' scratch depends on the split).
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Layers `..split` run image by image, `split..` on the whole batch.
    split: usize,
    /// Elements of each ping-pong buffer. The maps inside a banded chain
    /// live in its band buffers, so these hold only the maps between chains
    /// and other layers (and, where a chain starts the network, a standard
    /// copy of an input in another layout; where one ends it, its output
    /// when the caller's is in another layout).
    buffer: usize,
    /// The same for a profiled forward, which runs every layer on its own,
    /// so that each map lives here.
    profiled: usize,
    /// The staged batch between the two parts: its shape and elements.
    staged: [usize; 4],
    stage: usize,
    /// Elements of the largest layer scratch.
    inner: usize,
}

impl Layout {
    /// Elements of the whole scratch, of a profiled forward or not.
    fn total(&self, profiled: bool) -> Result<usize> {
        let buffer = self.ping_pong(profiled);
        [buffer, buffer, self.stage, self.inner]
            .into_iter()
            .try_fold(0usize, usize::checked_add)
            .ok_or(Error::Overflow("Sequential scratch"))
    }

    /// Elements of each ping-pong buffer of a forward, profiled or not.
    fn ping_pong(&self, profiled: bool) -> usize {
        match profiled {
            true => self.profiled,
            false => self.buffer,
        }
    }
}

impl<F: Float> Sequential<F> {
    /// An empty container (the identity).
    pub fn new() -> Self {
        Sequential {
            layers: Vec::new(),
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Appends `layer`, named by its index.
    pub fn with(mut self, layer: impl Layer<F> + 'static) -> Self {
        self.push(layer);
        self
    }

    /// Appends `layer` under `name` (used in errors and summaries).
    pub fn with_named(mut self, name: impl Into<String>, layer: impl Layer<F> + 'static) -> Self {
        self.push_named(name, layer);
        self
    }

    /// Appends `layer`, named by its index.
    pub fn push(&mut self, layer: impl Layer<F> + 'static) -> &mut Self {
        let name = self.layers.len().to_string();
        self.push_boxed(name, Box::new(layer))
    }

    /// Appends `layer` under `name`.
    pub fn push_named(
        &mut self,
        name: impl Into<String>,
        layer: impl Layer<F> + 'static,
    ) -> &mut Self {
        self.push_boxed(name.into(), Box::new(layer))
    }

    /// Appends a boxed layer under `name`.
    pub fn push_boxed(&mut self, name: String, layer: Box<dyn Layer<F>>) -> &mut Self {
        self.layers.push((name, layer));
        self.forget_plans();
        self
    }

    /// Drops the plans kept for earlier forwards (the layers changed).
    fn forget_plans(&mut self) {
        self.kept
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers and their names, in order.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &dyn Layer<F>)> {
        self.layers.iter().map(|(n, l)| (n.as_str(), l.as_ref()))
    }

    /// Forces an implementation in every layer (for tests and benchmarks).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        Layer::set_algorithm(&mut self, algorithm);
        self
    }

    /// The shape after each layer for an input of shape `input`: element
    /// `i` is layer `i`'s input, the last the network's output.
    ///
    /// # Errors
    /// [`Error::Layer`] naming the first layer that refuses its input.
    pub fn shapes(&self, input: [usize; 4]) -> Result<Vec<[usize; 4]>> {
        let mut shapes = Vec::with_capacity(self.layers.len() + 1);
        shapes.push(input);
        for i in 0..self.layers.len() {
            let next = self.output_of(i, shapes[i])?;
            shapes.push(next);
        }
        Ok(shapes)
    }

    /// Layer `i`'s output for `input`, its error wrapped with its name.
    fn output_of(&self, i: usize, input: [usize; 4]) -> Result<[usize; 4]> {
        self.layers[i]
            .1
            .output_shape(input)
            .map_err(|e| self.at(i, input, e))
    }

    /// `e`, said by layer `i` on `input`, wrapped with the layer's place.
    fn at(&self, i: usize, input: [usize; 4], e: Error) -> Error {
        let (name, layer) = &self.layers[i];
        Error::Layer {
            index: i,
            name: name.clone(),
            kind: layer.info().kind,
            input: input.into(),
            source: Box::new(e),
        }
    }

    /// The per-layer table for an input of shape `input` (see [`Summary`]).
    ///
    /// # Errors
    /// As [`shapes`](Self::shapes).
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        let mut rows = Vec::new();
        self.summary_rows("", input, &mut rows)?;
        Summary::new(input, rows)
    }

    /// The buffer layout of a forward on `input`, computed from shapes alone
    /// (nothing is allocated).
    fn layout(&self, input: [usize; 4]) -> Result<Layout> {
        let n = input[0];
        let per_image = |s: [usize; 4]| [1, s[1], s[2], s[3]];
        let len = |s: [usize; 4]| checked_len("a Sequential activation", &s);
        // The last layer whose input or output exceeds the budget at this
        // batch runs image by image, with every layer before it.
        // Only layers that keep the batch (as every layer of the crate does)
        // can run image by image.
        let mut split = 0;
        let mut shape = input;
        let mut per_image_ok = true;
        for i in 0..self.layers.len() {
            let out = self.output_of(i, shape)?;
            per_image_ok &= out[0] == n;
            if n > 1 && per_image_ok && len(shape)?.max(len(out)?) > BATCH_BUDGET {
                split = i + 1;
            }
            shape = out;
        }
        let (mut profiled, mut inner) = (0, 0);
        let mut shape = input;
        let last = self.layers.len().saturating_sub(1);
        for (i, (_, layer)) in self.layers.iter().enumerate() {
            let input = if i < split { per_image(shape) } else { shape };
            let out = self.output_of(i, input)?;
            inner = inner.max(layer.scratch_len(input).map_err(|e| self.at(i, input, e))?);
            // In a profiled forward every output but the network's own lives
            // in a ping-pong buffer (the last image-by-image one goes to the
            // stage instead).
            if i != last && i + 1 != split {
                profiled = profiled.max(len(out)?);
            }
            shape = self.output_of(i, shape)?;
        }
        // The chains run in the same scratch as the layers.
        let (buffer, chains) = self.chained(input, split)?;
        let inner = inner.max(chains);
        let staged = match split {
            0 => [0; 4],
            s if s == self.layers.len() => [0; 4],
            s => self.shapes_to(s, input)?,
        };
        Ok(Layout {
            split,
            buffer,
            profiled,
            staged,
            stage: len(staged)?,
            inner,
        })
    }

    /// Elements of each ping-pong buffer of a forward that runs the chains
    /// (see [`Layout::buffer`]), on `input` with layers `..split` image by
    /// image, and of the largest scratch of those chains: the layers and
    /// chains as [`run_range`](Self::run_range) takes them, each output but
    /// a chain's inner maps.
    fn chained(&self, input: [usize; 4], split: usize) -> Result<(usize, usize)> {
        let all = self.layers.len();
        let len = |s: [usize; 4]| checked_len("a Sequential activation", &s);
        let ranges = match split {
            0 => [0..all, 0..0],
            s if s == all => [0..all, 0..0],
            s => [0..s, s..all],
        };
        let (mut buffer, mut scratch) = (0, 0);
        let mut shape = input;
        for range in ranges.into_iter().filter(|r| !r.is_empty()) {
            if range.start == 0 && split > 0 {
                shape[0] = 1;
            }
            let last = range.end - 1;
            let mut i = range.start;
            while i < range.end {
                let chain = self.chain(i, range.end, shape)?;
                if let Some(c) = &chain {
                    let need = c.plan.scratch_len(&c.stages[..c.len], 0);
                    scratch = scratch.max(need.map_err(|e| self.at(i, shape, e))?);
                }
                let count = chain.as_ref().map_or(1, |c| c.len);
                let mut next = shape;
                for j in i..i + count {
                    next = self.output_of(j, next)?;
                }
                // The copy of a caller's input in another layout, for a
                // chain that reads its rows in place.
                if i == 0 && chain.as_ref().is_some_and(|c| c.reads_rows_in_place()) {
                    buffer = buffer.max(len(shape)?);
                }
                // Every output but the range's own (a chain's output there
                // too, for a caller's output in another layout).
                if i + count - 1 != last || (chain.is_some() && range.end == all) {
                    buffer = buffer.max(len(next)?);
                }
                shape = next;
                i += count;
            }
            if range.end == split {
                // The staged batch, the input of the second range.
                shape[0] = input[0];
            }
        }
        Ok((buffer, scratch))
    }

    /// The 1×1 and depthwise layers from layer `i` (below `end`; the first
    /// may be a conv on the direct kernel) that run as one chain, band by
    /// band (see `net::band`), on an input of shape `input`: each layer's
    /// output but the last passes 1 MiB an image, the last is a depthwise
    /// conv, and there are two or more. (One that starts with a depthwise
    /// conv or a conv reads its input's rows in place: `run_range` gives it
    /// a standard copy of a caller's input in another layout.)
    fn chain(&self, i: usize, end: usize, input: [usize; 4]) -> Result<Option<Chain<'_, F>>> {
        let stage = |j: usize| {
            let layer = &self.layers[j].1;
            match (
                layer.as_pointwise(Token),
                layer.as_depthwise(Token),
                layer.as_conv(Token),
            ) {
                (Some(pw), _, _) => Some(Stage::Pointwise(pw)),
                (_, Some(dw), _) => Some(Stage::Depthwise(dw)),
                // A conv only first (MobileNet's stem), on the direct kernel.
                (_, _, Some(conv)) if j == i => Some(Stage::Conv(conv)),
                _ => None,
            }
        };
        let elem = std::mem::size_of::<F>();
        let (mut len, mut shape) = (0, input);
        for j in i..end.min(i + MAX_STAGES) {
            let Some(stage) = stage(j) else { break };
            if matches!(stage, Stage::Depthwise(_) | Stage::Conv(_)) && !stage.bands(shape) {
                break;
            }
            shape = self.output_of(j, shape)?;
            if let Stage::Depthwise(_) = stage {
                len = j - i + 1;
            }
            let [_, h, w, c] = shape;
            if h.saturating_mul(w).saturating_mul(c).saturating_mul(elem) <= WHOLE_BYTES {
                break;
            }
        }
        if len < 2 {
            return Ok(None);
        }
        let stages = std::array::from_fn(|k| stage(i + k.min(len - 1)).expect("a chain's conv"));
        let plan = Plan::new_at(&stages[..len], input).map_err(|(j, e)| {
            // The failing stage's own layer, on its input.
            match (i..i + j).try_fold(input, |s, k| self.output_of(k, s)) {
                Ok(shape) => self.at(i + j, shape, e),
                Err(e) => e,
            }
        })?;
        Ok(plan.worth_it(elem).then_some(Chain { stages, len, plan }))
    }

    /// The input shape of layer `upto` (the output of layer `upto − 1`).
    fn shapes_to(&self, upto: usize, input: [usize; 4]) -> Result<[usize; 4]> {
        (0..upto).try_fold(input, |s, i| self.output_of(i, s))
    }

    /// Runs layers `range` from `x` into `out`, the intermediates in `ping`
    /// and `pong`, each layer's scratch in `inner`.
    #[allow(clippy::too_many_arguments)]
    fn run_range(
        &self,
        range: std::ops::Range<usize>,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        (ping, pong): (&mut [F], &mut [F]),
        inner: &mut [F],
        on_layer: &mut Option<&mut dyn FnMut(usize, Duration)>,
    ) -> Result<()> {
        let (mut src, mut dst) = (ping, pong);
        let mut shape = dims4(x.shape());
        let mut out = Some(out);
        let last = range.end - 1;
        let mut i = range.start;
        while i < range.end {
            let t = on_layer.as_ref().map(|_| Instant::now());
            // A chain of 1×1 and depthwise convs runs band by band (not in a
            // profiled forward, which times each layer on its own), writing
            // rows of a standard-layout output in place.
            let chain = match on_layer.is_none() {
                true => self.chain(i, range.end, shape)?,
                false => None,
            };
            // A chain that reads its input's rows in place, on a caller's
            // input in another layout, reads a standard copy of it (the
            // layout sized the buffer for it).
            let copy = i == range.start
                && !x.is_standard_layout()
                && chain.as_ref().is_some_and(Chain::reads_rows_in_place);
            if copy {
                let len = checked_len("", &shape)?;
                ArrayViewMut4::from_shape(shape, &mut src[..len])
                    .expect("sized by layout")
                    .assign(&x);
            }
            let input = match i == range.start && !copy {
                true => x.view(),
                false => ArrayView4::from_shape(shape, &src[..checked_len("", &shape)?])
                    .expect("written by the layer or the copy before"),
            };
            let count = chain.as_ref().map_or(1, |c| c.len);
            let end = i + count - 1;
            let mut next = shape;
            for j in i..=end {
                next = self.output_of(j, next)?;
            }
            let len = checked_len("", &next)?;
            // A chain that ends the range, into a caller's output in another
            // layout, writes a buffer that is then copied out.
            let via_buffer = end == last
                && chain.is_some()
                && !out.as_ref().is_some_and(|o| o.is_standard_layout());
            let o = match end == last && !via_buffer {
                true => out.take().expect("the last layer writes the output once"),
                false => ArrayViewMut4::from_shape(next, &mut dst[..len]).expect("sized by layout"),
            };
            let result = match &chain {
                Some(c) => super::band::run_into(&c.stages[..c.len], &c.plan, input, o, inner),
                None => self.layers[i].1.forward_with_scratch(input, o, inner),
            };
            result.map_err(|e| self.at(i, shape, e))?;
            if via_buffer {
                let written = ArrayView4::from_shape(next, &dst[..len]).expect("sized by layout");
                out.take()
                    .expect("the last layer writes the output once")
                    .assign(&written);
            }
            if let (Some(f), Some(t)) = (on_layer.as_mut(), t) {
                f(i, t.elapsed());
            }
            std::mem::swap(&mut src, &mut dst);
            shape = next;
            i += count;
        }
        Ok(())
    }

    /// Checks `out` and plans a forward on `x`'s shape.
    fn plan(&self, input: [usize; 4]) -> Result<([usize; 4], Layout)> {
        let output = Layer::output_shape(self, input)?;
        let layout = match self.layers.is_empty() {
            true => Layout {
                split: 0,
                buffer: 0,
                profiled: 0,
                staged: [0; 4],
                stage: 0,
                inner: 0,
            },
            false => self.layout(input)?,
        };
        Ok((output, layout))
    }

    /// Runs a planned forward (`output` and `layout` from [`plan`](Self::plan)
    /// for `x`'s shape).
    fn run(
        &self,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        (output, layout): ([usize; 4], Layout),
        scratch: &mut [F],
        on_layer: &mut Option<&mut dyn FnMut(usize, Duration)>,
    ) -> Result<()> {
        let input = dims4(x.shape());
        check_output("Sequential output", out.shape(), output)?;
        if self.layers.is_empty() {
            out.assign(&x);
            return Ok(());
        }
        let profiled = on_layer.is_some();
        check_scratch("Sequential", scratch.len(), layout.total(profiled)?)?;
        let buffer = layout.ping_pong(profiled);
        let (ping, rest) = scratch.split_at_mut(buffer);
        let (pong, rest) = rest.split_at_mut(buffer);
        let (stage, inner) = rest.split_at_mut(layout.stage);
        let all = self.layers.len();
        let n = input[0];
        match layout.split {
            0 => self.run_range(0..all, x, out, (ping, pong), inner, on_layer),
            s if s == all => {
                for b in 0..n {
                    let image = x.slice(s![b..b + 1, .., .., ..]);
                    let o = out.slice_mut(s![b..b + 1, .., .., ..]);
                    self.run_range(0..all, image, o, (&mut *ping, &mut *pong), inner, on_layer)?;
                }
                Ok(())
            }
            s => {
                let mut stage =
                    ArrayViewMut4::from_shape(layout.staged, stage).expect("sized by layout");
                for b in 0..n {
                    let image = x.slice(s![b..b + 1, .., .., ..]);
                    let o = stage.slice_mut(s![b..b + 1, .., .., ..]);
                    self.run_range(0..s, image, o, (&mut *ping, &mut *pong), inner, on_layer)?;
                }
                self.run_range(s..all, stage.view(), out, (ping, pong), inner, on_layer)
            }
        }
    }

    /// Runs a forward on `x` into `out` with the plan and scratch kept from
    /// an earlier call of the same input shape and thread count (planning
    /// and allocating them otherwise), and keeps them for the next.
    fn run_kept(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        on_layer: &mut Option<&mut dyn FnMut(usize, Duration)>,
    ) -> Result<()> {
        let input = dims4(x.shape());
        let threads = crate::parallel::threads();
        let profiled = on_layer.is_some();
        // This shape's plan if one is kept; else a new one, in the place
        // (and with the scratch) of the least recently used when there are
        // KEPT_PLANS already.
        let (found, spare) = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            match kept
                .iter()
                .position(|k| k.input == input && k.threads == threads)
            {
                Some(i) => (Some(kept.remove(i)), None),
                None if kept.len() >= KEPT_PLANS => (None, Some(kept.remove(0))),
                None => (None, None),
            }
        };
        let kept = match found {
            // A profiled forward needs longer ping-pong buffers than the
            // plain forward that planned it.
            Some(k) => match k.layout.total(profiled) {
                Ok(len) if len <= k.scratch.len() => k,
                grown => {
                    let scratch = grown.and_then(|len| zeroed("Sequential scratch", len));
                    match scratch {
                        Ok(scratch) => Kept { scratch, ..k },
                        Err(e) => {
                            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
                            kept.push(k);
                            return Err(e);
                        }
                    }
                }
            },
            None => {
                let planned = self.plan(input).and_then(|(output, layout)| {
                    let len = layout.total(profiled)?;
                    let scratch = match spare {
                        Some(k) if k.scratch.len() >= len => k.scratch,
                        _ => zeroed("Sequential scratch", len)?,
                    };
                    Ok(Kept {
                        input,
                        threads,
                        output,
                        layout,
                        scratch,
                    })
                });
                planned?
            }
        };
        let mut kept = kept;
        let result = self.run(
            x,
            out,
            (kept.output, kept.layout),
            &mut kept.scratch,
            on_layer,
        );
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(kept);
        result
    }

    /// Called from outside the thread pool, runs `f` on a pool thread, so
    /// that each parallel section starts there instead of handing work from
    /// this thread to another core and back.
    fn in_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        #[cfg(feature = "rayon")]
        if rayon::current_thread_index().is_none() && crate::parallel::threads() > 1 {
            return rayon::scope(|_| crate::parallel::with_workers_awake(f));
        }
        #[cfg(feature = "rayon")]
        if crate::parallel::threads() > 1 {
            return crate::parallel::with_workers_awake(f);
        }
        f()
    }

    /// As [`forward`](Layer::forward), also returning the wall time of each
    /// layer (summed over the images of a batch that runs image by image).
    /// Every layer runs on its own here, those of a banded chain too, so
    /// that each has a time: the same bits, a little slower, and the kept
    /// scratch grows (once per input shape) to hold the chains' maps whole.
    ///
    /// # Errors
    /// As [`forward`](Layer::forward).
    pub fn forward_profiled(&self, x: ArrayView4<'_, F>) -> Result<(Array4<F>, Vec<Duration>)> {
        let input = dims4(x.shape());
        let mut out = zeros4("Sequential output", Layer::output_shape(self, input)?)?;
        let mut times = vec![Duration::ZERO; self.layers.len()];
        let view = out.view_mut();
        Self::in_pool(|| {
            let mut record = |i: usize, t: Duration| times[i] += t;
            self.run_kept(x, view, &mut Some(&mut record))
        })?;
        Ok((out, times))
    }
}

impl<F: Float> Layer<F> for Sequential<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        (0..self.layers.len()).try_fold(input, |s, i| self.output_of(i, s))
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let mut shape = input;
        let mut total = Cost::default();
        for (i, (_, layer)) in self.layers.iter().enumerate() {
            let cost = layer.cost(shape).map_err(|e| self.at(i, shape, e))?;
            total = total.checked_add(cost, "a network's cost")?;
            shape = self.output_of(i, shape)?;
        }
        Ok(total)
    }

    fn info(&self) -> LayerInfo {
        LayerInfo::new("Sequential")
    }

    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        match self.layers.is_empty() {
            true => Ok(0),
            false => self.layout(input)?.total(false),
        }
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let plan = self.plan(dims4(x.shape()))?;
        Self::in_pool(|| self.run(x, out, plan, scratch, &mut None))
    }

    /// As [`Layer::forward_into`], with the plan and scratch kept between
    /// calls.
    fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        Self::in_pool(|| self.run_kept(x, out, &mut None))
    }

    fn set_algorithm(&mut self, algorithm: Algorithm) {
        for (_, layer) in &mut self.layers {
            layer.set_algorithm(algorithm);
        }
        // The layers' kernels, and so their scratch, may have changed.
        self.forget_plans();
    }

    fn summary_rows(
        &self,
        name: &str,
        input: [usize; 4],
        rows: &mut Vec<SummaryRow>,
    ) -> Result<()> {
        let mut shape = input;
        for (i, (n, layer)) in self.layers.iter().enumerate() {
            let path = child_path(name, n);
            layer
                .summary_rows(&path, shape, rows)
                .map_err(|e| self.at(i, shape, e))?;
            shape = self.output_of(i, shape)?;
        }
        Ok(())
    }
}
