//! The layer trait every layer implements, and the summary rows it reports.
//!
//! A layer answers, from an input shape alone, its output shape, its cost and
//! the scratch its forward needs; it runs a forward into a caller's output
//! with a caller's scratch ([`Layer::forward_with_scratch`], the model is
//! RustFFT's `process_with_scratch`), and [`Layer::forward_into`] /
//! [`Layer::forward`] are provided on top. Shapes are NHWC
//! `[batch, rows, cols, channels]`; a layer whose output has no spatial
//! extent (dense, global pooling) gives `[N, 1, 1, C]`.
//!
//! ```
//! use ndarray::Array4;
//! use sepconv::{Layer, PointwiseConv2d};
//! let pw = PointwiseConv2d::<f32>::new(ndarray::Array2::ones((4, 2)), None)?;
//! // Everything from the shape alone:
//! assert_eq!(pw.output_shape([1, 3, 3, 4])?, [1, 3, 3, 2]);
//! assert_eq!(pw.cost([1, 3, 3, 4])?.mult_adds, 3 * 3 * 4 * 2);
//! // A planned forward with the caller's buffers:
//! let x = Array4::ones((1, 3, 3, 4));
//! let mut out = Array4::zeros((1, 3, 3, 2));
//! let mut scratch = vec![0.0; pw.scratch_len([1, 3, 3, 4])?];
//! pw.forward_with_scratch(x.view(), out.view_mut(), &mut scratch)?;
//! assert!(out.iter().all(|&v| v == 4.0));
//! # Ok::<(), sepconv::Error>(())
//! ```

use std::fmt::Debug;

use ndarray::{Array4, ArrayView4, ArrayViewMut4};

use crate::Float;
use crate::conv::Algorithm;
use crate::cost::Cost;
use crate::error::{Error, Result};

/// What a layer is, for summaries: its type, stride and weight shape.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LayerInfo {
    /// The layer type: `"Conv2d"`, `"DepthwiseConv2d"`, `"Dense"`, …
    pub kind: &'static str,
    /// Its stride, for layers that have one.
    pub stride: Option<[usize; 2]>,
    /// Its filter, as the summary prints it (`3×3×3×32`, `3×3×32 dw`,
    /// `1×1×32×64`, `1024×1000`, `pool 3×3`), where it has one.
    pub filter: Option<String>,
}

impl LayerInfo {
    /// A layer of type `kind` with no stride and no filter.
    pub fn new(kind: &'static str) -> Self {
        LayerInfo {
            kind,
            stride: None,
            filter: None,
        }
    }
    /// With a stride.
    pub fn with_stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = Some(stride);
        self
    }
    /// With a filter description.
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }
}

/// One row of a network summary: a layer and the shapes it sees.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SummaryRow {
    /// The layer's path in the network (`"2"`, `"block/1"`, or the name it
    /// was given).
    pub name: String,
    /// What it is.
    pub info: LayerInfo,
    /// Its input `[N, H, W, C]`.
    pub input: [usize; 4],
    /// Its output `[N, H, W, C]`.
    pub output: [usize; 4],
    /// Its cost for this input (the whole batch).
    pub cost: Cost,
}

/// The token of [`Layer`]'s internal methods: public in a private module,
/// so no crate outside can name it, and so none can override them.
mod sealed {
    #[derive(Clone, Copy, Debug)]
    pub struct Token;
}
pub(crate) use sealed::Token;

/// A layer: shapes, cost and scratch from an input shape alone, and a
/// forward pass into the caller's buffers.
///
/// Implementors provide [`output_shape`](Self::output_shape),
/// [`cost`](Self::cost), [`info`](Self::info) and
/// [`forward_with_scratch`](Self::forward_with_scratch) (and
/// [`scratch_len`](Self::scratch_len) when they need scratch); `Clone` is
/// all [`CloneLayer`] asks, through its blanket implementation.
///
/// Every method validates its input and returns an [`Error`] that names
/// what was wrong; none panics on user input. A forward checks the shapes
/// (and the scratch) before it writes, so a wrong input leaves the caller's
/// output untouched; the one error found later is a forced
/// [`Algorithm`] the CPU lacks ([`Error::Unsupported`]), which a container
/// meets at the layer that has it, after the layers before it ran.
///
/// [`scratch_len`](Self::scratch_len) may depend on the thread pool it is
/// called in (im2col gathers its patches per chunk of threads): ask it in
/// the pool that runs the forward.
pub trait Layer<F: Float>: CloneLayer<F> + Debug + Send + Sync {
    /// The output shape for an input of shape `input`.
    ///
    /// # Errors
    /// When the layer cannot take that input (channels, zero sizes, a kernel
    /// larger than the padded input, overflow); the error names the numbers.
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]>;

    /// Mult-adds and parameters for an input of shape `input` (the whole
    /// batch), in the paper's convention ([`crate::cost`]).
    ///
    /// # Errors
    /// As [`output_shape`](Self::output_shape).
    fn cost(&self, input: [usize; 4]) -> Result<Cost>;

    /// What the layer is, for summaries.
    fn info(&self) -> LayerInfo;

    /// Elements of scratch a forward on an input of shape `input` needs
    /// (default 0).
    ///
    /// # Errors
    /// As [`output_shape`](Self::output_shape).
    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        self.output_shape(input).map(|_| 0)
    }

    /// Runs the layer on `x` into `out`, which must have the output shape
    /// (any layout), using `scratch` (at least
    /// [`scratch_len`](Self::scratch_len) elements, any contents) for its
    /// intermediate values. The crate's layers allocate nothing here, but
    /// for a copy of an input that is not contiguous (depthwise and direct
    /// kernels read channel vectors in place) or an output that is not in
    /// standard layout.
    ///
    /// # Errors
    /// As [`output_shape`](Self::output_shape); [`Error::ShapeMismatch`] for
    /// a wrong `out` or a short `scratch`, with `out` untouched.
    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()>;

    /// The layer as a 1×1 conv: a [`Sequential`](crate::Sequential) runs
    /// chains of `PointwiseConv2d` and `DepthwiseConv2d` layers (after a
    /// `Conv2d` stem) band by band when their maps are large. Internal: the
    /// default, `None`, is right for every layer outside the crate, which
    /// cannot override it (it takes a token only the crate can name).
    #[doc(hidden)]
    fn as_pointwise(&self, _: sealed::Token) -> Option<&crate::PointwiseConv2d<F>> {
        None
    }

    /// The layer as a depthwise conv; see [`as_pointwise`](Self::as_pointwise).
    #[doc(hidden)]
    fn as_depthwise(&self, _: sealed::Token) -> Option<&crate::DepthwiseConv2d<F>> {
        None
    }

    /// The layer as a standard conv; see [`as_pointwise`](Self::as_pointwise).
    #[doc(hidden)]
    fn as_conv(&self, _: sealed::Token) -> Option<&crate::Conv2d<F>> {
        None
    }

    /// Runs the layer into `out`, allocating its scratch. The crate's layers
    /// with buffers of their own (`Conv2d` on im2col, `SeparableConv2d`,
    /// `Residual`, `InvertedResidual`, `Sequential`) keep it between calls
    /// instead (allocated by the first call, grown for an input that needs
    /// more, not shared with a clone), so that only the first call
    /// allocates.
    ///
    /// # Errors
    /// As [`forward_with_scratch`](Self::forward_with_scratch), and
    /// [`Error::TooLarge`] naming the shape and the bytes when the scratch
    /// cannot be allocated.
    fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        let len = self.scratch_len(crate::conv::dims4(x.shape()))?;
        // Named only on error: a forward allocates nothing but its buffers.
        let mut scratch =
            zeroed("scratch", len).map_err(|e| e.named(format!("{} scratch", self.info().kind)))?;
        self.forward_with_scratch(x, out, &mut scratch)
    }

    /// Runs the layer into a new array.
    ///
    /// # Errors
    /// As [`forward_into`](Self::forward_into), and [`Error::TooLarge`]
    /// naming the shape and the bytes when the output cannot be allocated
    /// (over `isize::MAX` bytes, or refused by the allocator).
    fn forward(&self, x: ArrayView4<'_, F>) -> Result<Array4<F>> {
        let shape = self.output_shape(crate::conv::dims4(x.shape()))?;
        let mut out =
            zeros4("output", shape).map_err(|e| e.named(format!("{} output", self.info().kind)))?;
        self.forward_into(x, out.view_mut())?;
        Ok(out)
    }

    /// Forces an implementation in this layer and the layers inside it (for
    /// tests and benchmarks); the default, for layers with a single one,
    /// does nothing.
    fn set_algorithm(&mut self, algorithm: Algorithm) {
        let _ = algorithm;
    }

    /// Appends this layer's summary rows for an input of shape `input`
    /// under the name `name`: one row by default; containers add a row per
    /// layer inside them.
    ///
    /// # Errors
    /// As [`output_shape`](Self::output_shape).
    fn summary_rows(
        &self,
        name: &str,
        input: [usize; 4],
        rows: &mut Vec<SummaryRow>,
    ) -> Result<()> {
        rows.push(SummaryRow {
            name: name.to_owned(),
            info: self.info(),
            input,
            output: self.output_shape(input)?,
            cost: self.cost(input)?,
        });
        Ok(())
    }
}

/// Cloning a boxed layer: implemented for every `Layer + Clone`, so a
/// layer type only derives `Clone`.
pub trait CloneLayer<F: Float> {
    /// A boxed copy of this layer.
    fn clone_layer(&self) -> Box<dyn Layer<F>>;
}

impl<F: Float, T: Layer<F> + Clone + 'static> CloneLayer<F> for T {
    fn clone_layer(&self) -> Box<dyn Layer<F>> {
        Box::new(self.clone())
    }
}

impl<F: Float> Clone for Box<dyn Layer<F>> {
    fn clone(&self) -> Self {
        self.clone_layer()
    }
}

/// The product of `dims`, or [`Error::Overflow`] naming `what`.
pub(crate) fn checked_len(what: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize / std::mem::size_of::<f64>())
        .ok_or(Error::Overflow(what))
}

/// The bytes a tensor of `shape` with elements of `elem` bytes needs,
/// saturated at `u128::MAX`.
pub(crate) fn byte_size(shape: &[usize], elem: usize) -> u128 {
    shape
        .iter()
        .fold(elem as u128, |acc, &d| acc.saturating_mul(d as u128))
}

/// The element count of a tensor `what` of `shape` and `T` elements, or
/// [`Error::TooLarge`] naming the shape and the bytes when it would exceed
/// `isize::MAX` bytes (the most a Rust allocation, and so an ndarray, may
/// hold).
pub(crate) fn alloc_len<T>(what: &str, shape: &[usize]) -> Result<usize> {
    let bytes = byte_size(shape, std::mem::size_of::<T>().max(1));
    if bytes > isize::MAX as u128 {
        return Err(Error::too_large(
            what,
            shape,
            bytes,
            "more than isize::MAX bytes",
        ));
    }
    Ok(shape.iter().product())
}

/// Reserves room for `additional` more elements in `v`, fallibly: a size the
/// allocator refuses is [`Error::TooLarge`] naming `what` and `shape`, not
/// an abort.
pub(crate) fn try_reserve<T>(
    v: &mut Vec<T>,
    additional: usize,
    what: &str,
    shape: &[usize],
) -> Result<()> {
    v.try_reserve_exact(additional).map_err(|_| {
        Error::too_large(
            what,
            shape,
            byte_size(shape, std::mem::size_of::<T>().max(1)),
            "the allocator refused it",
        )
    })
}

/// A vector of the elements of a tensor `what` of `shape`, all `fill`,
/// allocated fallibly after checking its size ([`alloc_len`]).
pub(crate) fn try_filled<T: Clone>(what: &str, shape: &[usize], fill: T) -> Result<Vec<T>> {
    let len = alloc_len::<T>(what, shape)?;
    let mut v = Vec::new();
    try_reserve(&mut v, len, what, shape)?;
    v.resize(len, fill);
    Ok(v)
}

/// The values of `iter` (of `shape`, so `shape`'s product long) in a vector
/// allocated fallibly.
pub(crate) fn try_collect<T>(
    what: &str,
    shape: &[usize],
    iter: impl IntoIterator<Item = T>,
) -> Result<Vec<T>> {
    let len = alloc_len::<T>(what, shape)?;
    let mut v = Vec::new();
    try_reserve(&mut v, len, what, shape)?;
    v.extend(iter.into_iter().take(len));
    Ok(v)
}

/// The scratch a layer with buffers of its own (an im2col conv, a separable
/// block, a residual block) keeps between calls of [`Layer::forward_into`],
/// so that it allocates the scratch once, as a
/// [`Sequential`](crate::Sequential) plans its buffers once. A new buffer
/// each call is zeroed in full, and on two threads costs more again: on the
/// Intel Xeon (model 207), keeping it made a 14×14×512 separable block's
/// `forward` on two threads 0.81× the time, the 3×3 conv's 0.93×, and both
/// 0.98× on one thread (the builds before and after taking turns, nine
/// rounds of `examples/export --time`, medians). A cache, not part of the
/// layer's value: a clone starts without one, and any two compare equal. A
/// layer inside a container runs on the container's scratch and never
/// fills its own.
pub(crate) struct KeptScratch<F>(std::sync::Mutex<Vec<F>>);

impl<F: Float> KeptScratch<F> {
    /// None kept yet.
    pub(crate) const fn new() -> Self {
        KeptScratch(std::sync::Mutex::new(Vec::new()))
    }

    /// `layer`'s [`forward_with_scratch`](Layer::forward_with_scratch) on
    /// the kept scratch (the body of the `forward_into` of a layer that
    /// keeps one): the kept buffer, grown first when the input needs more,
    /// or a new one when another call holds it meanwhile; afterwards the
    /// longer of the two is kept.
    ///
    /// # Errors
    /// As [`Layer::forward_into`]: [`Error::TooLarge`] naming `what` when
    /// the scratch cannot be allocated (nothing runs then).
    pub(crate) fn forward_into<L: Layer<F> + ?Sized>(
        &self,
        layer: &L,
        what: &str,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
    ) -> Result<()> {
        let len = layer.scratch_len(crate::conv::dims4(x.shape()))?;
        if len == 0 {
            return layer.forward_with_scratch(x, out, &mut []);
        }
        let lock = || self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut buffer = std::mem::take(&mut *lock());
        if buffer.len() < len {
            // The short buffer goes before the long one is allocated.
            drop(buffer);
            buffer = zeroed(what, len)?;
        }
        let result = layer.forward_with_scratch(x, out, &mut buffer[..len]);
        let mut kept = lock();
        if buffer.len() >= kept.len() {
            *kept = buffer;
        }
        result
    }
}

impl<F: Float> Clone for KeptScratch<F> {
    /// None kept.
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<F> PartialEq for KeptScratch<F> {
    /// Always: what a layer keeps between calls is no part of its value.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<F> Debug for KeptScratch<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.0.lock().map_or(0, |v| v.len());
        write!(f, "KeptScratch({len} elements)")
    }
}

/// `len` zeros of the buffer `what`, allocated fallibly: a size that cannot
/// be had is an error value, not an abort.
pub(crate) fn zeroed<F: Float>(what: &str, len: usize) -> Result<Vec<F>> {
    try_filled(what, &[len], F::zero())
}

/// An array of zeros of `shape` (the tensor `what`), allocated fallibly.
pub(crate) fn zeros4<F: Float>(what: &str, shape: [usize; 4]) -> Result<Array4<F>> {
    let v = try_filled(what, &shape, F::zero())?;
    Ok(Array4::from_shape_vec(shape, v).expect("length is the product of the shape"))
}

/// The path of a container's child `leaf` under the container's `name`
/// (`"block/expand"`, or `leaf` alone at the top).
pub(crate) fn child_path(name: &str, leaf: &str) -> String {
    match name {
        "" => leaf.to_owned(),
        _ => format!("{name}/{leaf}"),
    }
}

/// The summary row of a residual sum at `path`: shapes, no mult-adds and no
/// parameters.
pub(crate) fn sum_row(
    path: String,
    info: LayerInfo,
    input: [usize; 4],
    output: [usize; 4],
) -> SummaryRow {
    SummaryRow {
        name: path,
        info,
        input,
        output,
        cost: Cost::default(),
    }
}

/// Checks that a caller's scratch holds `needed` elements.
pub(crate) fn check_scratch(what: &str, got: usize, needed: usize) -> Result<()> {
    if got < needed {
        return Err(Error::shape(format!("{what} scratch"), &[needed], &[got]));
    }
    Ok(())
}
