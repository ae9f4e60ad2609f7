//! Convolution layers: standard, depthwise, pointwise and depthwise separable.
//!
//! Every layer takes NHWC activations (`[batch, row, col, channel]`) as any
//! [`ndarray::ArrayView4`] (non-contiguous and negatively strided views included),
//! validates it, and returns a new array ([`forward`](Conv2d::forward)) or
//! writes into a caller's buffer ([`forward_into`](Conv2d::forward_into)).
//! Bias and activation are fused into the output pass.
//!
//! | layer | weight | bias | input → output |
//! | --- | --- | --- | --- |
//! | [`Conv2d`] | `[kh, kw, C_in / groups, C_out]` (HWIO) | `[C_out]` | `[N, H, W, C_in]` → `[N, OH, OW, C_out]` |
//! | [`DepthwiseConv2d`] | `[kh, kw, C, m]` | `[C·m]` | `[N, H, W, C]` → `[N, OH, OW, C·m]` (channel `c·m + j`) |
//! | [`PointwiseConv2d`] | `[C_in, C_out]` | `[C_out]` | `[N, H, W, C_in]` → `[N, H, W, C_out]` |
//!
//! ```
//! use ndarray::{Array2, Array4};
//! use sepconv::{Padding, PointwiseConv2d, SeparableConv2d};
//! let pw = PointwiseConv2d::new(Array2::<f32>::ones((8, 4)), None)?;
//! assert_eq!(pw.forward(Array4::ones((1, 5, 5, 8)).view())?.shape(), &[1, 5, 5, 4]);
//! // The MobileNet block: 3×3 depthwise then 1×1, stride 2, TensorFlow SAME.
//! let sep = SeparableConv2d::builder(Array4::<f32>::ones((3, 3, 8, 1)), Array2::ones((8, 16)))
//!     .stride(2)
//!     .padding(Padding::Same)
//!     .build()?;
//! assert_eq!(sep.forward(Array4::ones((1, 10, 10, 8)).view())?.shape(), &[1, 5, 5, 16]);
//! # Ok::<(), sepconv::Error>(())
//! ```
//!
//! # Non-finite values
//!
//! One rule on every path ([`Algorithm`]): an output is the bias plus the
//! products of the weights with the input pixels its window covers *inside*
//! the input, and padding contributes nothing (it is not a zero multiplied
//! by the weight). So a NaN or ±inf, in an input or a weight, reaches exactly
//! the outputs the oracle ([`crate::reference`]) gives it to: a NaN makes
//! them NaN, an infinity makes them ±inf, or NaN where it meets a zero or an
//! infinity of the other sign, as IEEE arithmetic says. The property tests
//! of `tests/non_finite.rs` compare which outputs are NaN, +inf and −inf on
//! every path with the oracle's. (im2col gathers padding as zeros, so a
//! padded [`Conv2d`] whose weight is not all finite runs the oracle.)
//! BatchNorm parameters must be finite ([`crate::BatchNorm::new`]), and
//! the loaders refuse non-finite weights unless asked
//! ([`crate::io::LoadOptions`]).

mod depthwise;
mod pointwise;
mod separable;
mod standard;

pub use depthwise::{DepthwiseConv2d, DepthwiseConv2dBuilder};
pub use pointwise::PointwiseConv2d;
pub use separable::{SeparableConv2d, SeparableConv2dBuilder};
pub use standard::{Conv2d, Conv2dBuilder};

use std::borrow::Cow;
use std::marker::PhantomData;

use ndarray::{Array1, Array4, ArrayView4, ArrayViewMut2, ArrayViewMut4};

use crate::Float;
use crate::activation::Activation;
use crate::error::{Error, Result, Shape};
use crate::geometry::ConvParams;

/// Which implementation a layer runs. The default, `Auto`, picks the fastest
/// one this CPU supports; the others force a path, for tests and benchmarks.
/// A layer resolves it once, when it is built (or given a new one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Algorithm {
    /// The fastest path available on this CPU (detected at run time).
    #[default]
    Auto,
    /// The naive oracle of [`crate::reference`]: slow, accumulates in f64.
    Reference,
    /// Portable code only: im2col + matrixmultiply GEMM for standard and
    /// pointwise convs, the generic direct kernel for depthwise.
    Portable,
    /// The x86-64 AVX2+FMA kernels: the f32 GEMM with packed weights and a
    /// fused epilogue (pointwise, 1×1 and im2col convs), and the depthwise
    /// kernel compiled for AVX2+FMA (f32 and f64). Cases those kernels
    /// do not take (f64, grouped convs, inputs without unit channel stride)
    /// run the portable code. A layer built with it reports
    /// [`Error::Unsupported`] from every forward on a CPU without AVX2 and FMA.
    Avx2Fma,
    /// [`Avx2Fma`](Algorithm::Avx2Fma) with the f32 GEMM (a 14 × 32
    /// register tile in 28 of the 32 zmm registers; layers of at most 16
    /// output channels, which fill a 16-column AVX2 panel but half of a
    /// 32-column one, keep the AVX2 GEMM, and so, on a core that runs a
    /// 512-bit FMA as two halves (AMD's Zen 4), do layers that would fill
    /// at most half of their last 32-column panel), the blocked depthwise
    /// kernel (multiplier 1; on such a core, counts of whole 8-lane vectors
    /// and a half-empty last 16-lane one, 8, 24, 40, …, run its AVX2 build)
    /// and the stem's direct conv on AVX-512F; the generic depthwise kernel
    /// (a channel multiplier) runs its AVX2 build. Unsupported without
    /// AVX-512F.
    Avx512F,
}

impl Algorithm {
    /// The path a layer set to `self` runs on this CPU.
    ///
    /// `Auto` picks the fastest available path; the environment variable
    /// `SEPCONV_ALGORITHM` caps it: `portable` makes it pick `Portable` (to
    /// test the portable path on a machine with SIMD, or to rule the kernels
    /// out), `avx2` at most `Avx2Fma` (to compare with AVX-512 on one
    /// machine); any other value is ignored.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a forced path this CPU cannot run.
    pub fn resolve(self) -> Result<Algorithm> {
        let avx2 = crate::kernels::Avx2Fma::detect().is_some();
        let avx512 = crate::kernels::Avx512F::detect().is_some();
        match self {
            Algorithm::Auto => Ok(match env_cap() {
                Some(Algorithm::Portable) => Algorithm::Portable,
                Some(Algorithm::Avx2Fma) if avx2 => Algorithm::Avx2Fma,
                None if avx512 => Algorithm::Avx512F,
                _ if avx2 => Algorithm::Avx2Fma,
                _ => Algorithm::Portable,
            }),
            Algorithm::Avx2Fma if !avx2 => Err(Error::Unsupported(
                "Algorithm::Avx2Fma was forced, but this CPU lacks AVX2 or FMA".into(),
            )),
            Algorithm::Avx512F if !avx512 => Err(Error::Unsupported(
                "Algorithm::Avx512F was forced, but this CPU lacks AVX-512F (or AVX2 and FMA)"
                    .into(),
            )),
            a => Ok(a),
        }
    }

    /// Every path this CPU can run, `Auto` excluded (for tests and benchmarks).
    pub fn available() -> Vec<Algorithm> {
        let mut v = vec![Algorithm::Reference, Algorithm::Portable];
        if crate::kernels::Avx2Fma::detect().is_some() {
            v.push(Algorithm::Avx2Fma);
        }
        if crate::kernels::Avx512F::detect().is_some() {
            v.push(Algorithm::Avx512F);
        }
        v
    }

    /// The SIMD paths this CPU cannot run (for tests to say what they skip).
    pub fn unavailable() -> Vec<Algorithm> {
        [Algorithm::Avx2Fma, Algorithm::Avx512F]
            .into_iter()
            .filter(|a| a.resolve().is_err())
            .collect()
    }
}

/// The cap `SEPCONV_ALGORITHM` puts on `Auto`: `portable` or `avx2`.
fn env_cap() -> Option<Algorithm> {
    static CAP: std::sync::OnceLock<Option<Algorithm>> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        let v = std::env::var("SEPCONV_ALGORITHM").ok()?;
        if v.eq_ignore_ascii_case("portable") {
            Some(Algorithm::Portable)
        } else if v.eq_ignore_ascii_case("avx2") {
            Some(Algorithm::Avx2Fma)
        } else {
            None
        }
    })
}

/// Checks an NHWC input: no zero-sized axis, `channels` channels.
pub(crate) fn check_input(what: &str, shape: &[usize], channels: usize) -> Result<()> {
    if shape.contains(&0) {
        return Err(Error::ZeroSize {
            what: what.into(),
            shape: shape.into(),
        });
    }
    if shape[3] != channels {
        return Err(channel_mismatch(what, shape, channels));
    }
    Ok(())
}

/// [`Error::ChannelMismatch`] for an NHWC input whose last axis is not
/// `channels`, or [`Error::Layout`] when its axis 1 is: the NCHW array of a
/// PyTorch user.
pub(crate) fn channel_mismatch(what: &str, shape: &[usize], channels: usize) -> Error {
    if shape.len() == 4 && shape[1] == channels {
        return Error::Layout {
            what: what.into(),
            expected: channels,
            got: shape[3],
            shape: shape.into(),
            hint: format!(
                "it looks like an NCHW array [N, C, H, W] (axis 1 holds {channels}); sepconv \
                 takes NHWC [N, H, W, C]: convert it with sepconv::layout::nchw_to_nhwc"
            ),
        };
    }
    Error::ChannelMismatch {
        what: what.into(),
        expected: channels,
        got: shape[3],
    }
}

/// Turns the [`Error::ChannelMismatch`] of a conv's input check into
/// [`Error::Layout`] when the conv's weight looks like a PyTorch one read as
/// the crate's: OIHW `[C_out, C_in/g, k, k]` read as HWIO (axis 1 is the
/// input's channel count and the last two axes a square kernel), or a
/// depthwise `[C·m, 1, k, k]` read as `[kh, kw, C, m]`. Any other error is
/// returned as it is.
pub(crate) fn weight_layout_hint(
    e: Error,
    input: &[usize],
    weight: &[usize],
    depthwise: bool,
) -> Error {
    let Error::ChannelMismatch {
        what,
        expected,
        got,
    } = e
    else {
        return e;
    };
    let [a, b, c, d] = dims4(weight);
    let square_kernel = c == d && c <= 11;
    let hint = if depthwise && b == 1 && square_kernel && got > 0 && a % got == 0 {
        Some(format!(
            "the weight {shape}, read as [kh, kw, C, m], takes {expected} channels; it looks \
             like PyTorch's depthwise [C·m, 1, kh, kw]: convert it with \
             sepconv::layout::torch_depthwise",
            shape = Shape::from(weight)
        ))
    } else if !depthwise && b == got && square_kernel {
        Some(format!(
            "the weight {shape}, read as HWIO [kh, kw, C_in/groups, C_out], takes {expected} \
             channels; it looks like PyTorch's OIHW [C_out, C_in/groups, kh, kw]: convert it \
             with sepconv::layout::oihw_to_hwio",
            shape = Shape::from(weight)
        ))
    } else {
        None
    };
    match hint {
        Some(hint) => Error::Layout {
            what,
            expected,
            got,
            shape: input.into(),
            hint,
        },
        None => Error::ChannelMismatch {
            what,
            expected,
            got,
        },
    }
}

/// Checks an optional bias length against the output channel count.
pub(crate) fn check_bias(what: &str, len: Option<usize>, channels: usize) -> Result<()> {
    match len {
        Some(l) if l != channels => Err(Error::shape(what, &[channels], &[l])),
        _ => Ok(()),
    }
}

/// A bias stored contiguous (an owned array may still have negative strides).
pub(crate) fn contiguous<F: Float>(b: Option<Array1<F>>) -> Option<Array1<F>> {
    b.map(|b| {
        if b.is_standard_layout() {
            b
        } else {
            b.as_standard_layout().into_owned()
        }
    })
}

/// A stored bias as a slice (biases are kept contiguous by [`contiguous`]).
pub(crate) fn bias_slice<F: Float>(bias: Option<&Array1<F>>) -> Option<&[F]> {
    bias.map(|b| b.as_slice().expect("biases are stored contiguous"))
}

/// Checks that a weight has no zero-sized axis.
pub(crate) fn check_weight(what: &str, shape: &[usize]) -> Result<()> {
    if shape.contains(&0) {
        return Err(Error::ZeroSize {
            what: what.into(),
            shape: shape.into(),
        });
    }
    Ok(())
}

/// Checks a caller's output buffer shape.
pub(crate) fn check_output(what: &str, got: &[usize], expected: [usize; 4]) -> Result<()> {
    if got != expected {
        return Err(Error::shape(what, &expected, got));
    }
    Ok(())
}

/// Runs `f` on a standard-layout (C-contiguous) version of `out` (the
/// layer `what`'s output): `out` itself when it is one, else a temporary,
/// allocated fallibly, copied into `out` afterwards.
pub(crate) fn with_standard_output<F: Float>(
    what: &str,
    mut out: ArrayViewMut4<'_, F>,
    f: impl FnOnce(ArrayViewMut4<'_, F>) -> Result<()>,
) -> Result<()> {
    if out.is_standard_layout() {
        f(out)
    } else {
        let mut tmp = crate::layer::zeros4("output copy", dims4(out.shape()))
            .map_err(|e| e.named(format!("{what} output copy")))?;
        f(tmp.view_mut())?;
        out.assign(&tmp);
        Ok(())
    }
}

/// The fused epilogue: `x ← act(x + bias)` over rows of `C` channels.
pub(crate) fn bias_activation<F: Float>(
    mut rows: ArrayViewMut2<'_, F>,
    bias: Option<&Array1<F>>,
    act: Activation,
) {
    if bias.is_none() && act.is_identity() {
        return;
    }
    for mut row in rows.rows_mut() {
        let row = row.as_slice_mut().expect("epilogue rows are contiguous");
        match bias_slice(bias) {
            Some(b) => row
                .iter_mut()
                .zip(b)
                .for_each(|(x, &b)| *x = act.apply(*x + b)),
            None => act.apply_slice(row),
        }
    }
}

/// The layer-independent settings: stride, dilation, padding, activation,
/// algorithm; shared by the builders through [`settings_setters!`].
macro_rules! settings_setters {
    () => {
        /// Stride, `s` or `[sh, sw]` (default 1).
        pub fn stride(mut self, s: impl $crate::Size2) -> Self {
            self.params.stride = s.hw();
            self
        }
        /// Dilation, `d` or `[dh, dw]` (default 1).
        pub fn dilation(mut self, d: impl $crate::Size2) -> Self {
            self.params.dilation = d.hw();
            self
        }
        /// Padding (default [`Padding::Valid`](crate::Padding::Valid)).
        pub fn padding(mut self, p: $crate::Padding) -> Self {
            self.params.padding = p;
            self
        }
        /// Stride, dilation and padding at once.
        pub fn params(mut self, p: $crate::ConvParams) -> Self {
            self.params = p;
            self
        }
        /// Activation fused into the output (default identity).
        pub fn activation(mut self, a: $crate::Activation) -> Self {
            self.activation = a;
            self
        }
        /// Forces an implementation (default [`Algorithm::Auto`](crate::Algorithm::Auto)).
        pub fn algorithm(mut self, a: $crate::Algorithm) -> Self {
            self.algorithm = a;
            self
        }
    };
}
pub(crate) use settings_setters;

/// The elements of an NHWC view in standard (C) order: the view's own memory
/// when it is contiguous, else a copy, allocated fallibly (a broadcast view
/// of one value may stand for more elements than memory holds). Direct
/// kernels index the input as a flat `[N, H, W, C]` slice.
///
/// # Errors
/// [`Error::TooLarge`] naming `what`'s input copy when it cannot be had.
pub(crate) fn contiguous_input<'a, F: Float>(
    what: &str,
    x: &ArrayView4<'a, F>,
) -> Result<Cow<'a, [F]>> {
    Ok(match x.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            crate::layer::try_collect("input copy", x.shape(), x.iter().copied())
                .map_err(|e| e.named(format!("{what} input copy")))?,
        ),
    })
}

/// A 4-D shape slice as an array (ndarray guarantees the length for `Ix4`).
pub(crate) fn dims4(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}

/// What the conv layers share: the weight (standard layout; a pointwise
/// weight `[C_in, C_out]` is kept as `[1, 1, C_in, C_out]`), the bias
/// (contiguous), stride/dilation/padding, the fused activation and the
/// algorithm asked for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ConvCore<F> {
    pub(crate) weight: Array4<F>,
    pub(crate) bias: Option<Array1<F>>,
    pub(crate) params: ConvParams,
    pub(crate) activation: Activation,
    pub(crate) algorithm: Algorithm,
}

impl<F: Float> ConvCore<F> {
    /// A core from checked parts, made standard-layout and contiguous.
    pub(crate) fn new(
        weight: Array4<F>,
        bias: Option<Array1<F>>,
        params: ConvParams,
        activation: Activation,
        algorithm: Algorithm,
    ) -> Self {
        ConvCore {
            weight: weight.as_standard_layout().into_owned(),
            bias: contiguous(bias),
            params,
            activation,
            algorithm,
        }
    }

    /// Kernel size [kh, kw].
    pub(crate) fn kernel_size(&self) -> [usize; 2] {
        [self.weight.shape()[0], self.weight.shape()[1]]
    }

    /// The weight as the matrix `[kh·kw·C_in/g, C_out]` (or `[kh·kw, C·m]`).
    pub(crate) fn matrix(&self) -> ndarray::ArrayView2<'_, F> {
        let cols = self.weight.shape()[3];
        self.weight
            .view()
            .into_shape_with_order((self.weight.len() / cols, cols))
            .expect("the weight is stored in standard layout")
    }

    /// The weight as a flat slice.
    pub(crate) fn weight_slice(&self) -> &[F] {
        self.weight
            .as_slice()
            .expect("the weight is stored in standard layout")
    }

    /// The bias as a slice.
    pub(crate) fn bias_slice(&self) -> Option<&[F]> {
        bias_slice(self.bias.as_ref())
    }

    /// The oracle's result `y` (before the activation) into `out`.
    pub(crate) fn reference_into(
        &self,
        y: Result<Array4<F>>,
        mut out: ArrayViewMut4<'_, F>,
    ) -> Result<()> {
        out.assign(&y?);
        out.map_inplace(|v| *v = self.activation.apply(*v));
        Ok(())
    }

    /// The geometry for an input `[N, H, W, C]` of the layer `what`, which
    /// takes `channels` channels.
    pub(crate) fn geometry(
        &self,
        what: &str,
        input: [usize; 4],
        channels: usize,
    ) -> Result<crate::geometry::ConvGeometry> {
        check_input(what, &input, channels)?;
        self.params
            .resolve([input[1], input[2]], self.kernel_size())
    }

    /// This core with `bn` folded into its bias and the columns of its
    /// weight read as a matrix of `cols` columns, one per output channel
    /// (`C_out` for a conv, `C·m` for a depthwise weight `[kh, kw, C, m]`).
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`] naming `what` if `bn` has not `cols` channels.
    pub(crate) fn fold(&self, what: &str, bn: &crate::BatchNorm<F>, cols: usize) -> Result<Self> {
        bn.check_channels(what, cols)?;
        let mut folded = self.clone();
        let len = folded.weight.len();
        let m = folded
            .weight
            .view_mut()
            .into_shape_with_order((len / cols, cols))
            .expect("the weight is stored in standard layout");
        folded.bias = Some(bn.fold_into(m, self.bias.as_ref()));
        Ok(folded)
    }
}

/// The shared accessors and `with_*` setters of the conv layers (each holds
/// a [`ConvCore`] in `self.core` and re-plans in `self.replan()`).
macro_rules! core_accessors {
    () => {
        /// Sets the fused activation (the kernel plan does not depend on it).
        pub fn with_activation(mut self, a: $crate::Activation) -> Self {
            self.core.activation = a;
            self
        }
        /// Forces an implementation (planned again now).
        pub fn with_algorithm(mut self, a: $crate::Algorithm) -> Self {
            self.core.algorithm = a;
            self.replan();
            self
        }
        /// The bias, if any.
        pub fn bias(&self) -> Option<&ndarray::Array1<F>> {
            self.core.bias.as_ref()
        }
        /// The fused activation.
        pub fn activation(&self) -> $crate::Activation {
            self.core.activation
        }
        /// The algorithm asked for (the plan made from it is private).
        pub fn algorithm(&self) -> $crate::Algorithm {
            self.core.algorithm
        }
    };
}
pub(crate) use core_accessors;

/// Builds a [`Conv2d`] or a [`DepthwiseConv2d`] (the two aliases
/// [`Conv2dBuilder`] and [`DepthwiseConv2dBuilder`]): the weight is given to
/// the layer's `builder`, every other setting has a default (stride 1,
/// dilation 1, `Valid`, no bias, identity, `Auto`; groups 1 for `Conv2d`).
#[derive(Clone, Debug)]
#[must_use = "call .build()"]
pub struct ConvBuilder<F, L> {
    weight: Array4<F>,
    bias: Option<Array1<F>>,
    params: ConvParams,
    groups: usize,
    activation: Activation,
    algorithm: Algorithm,
    layer: PhantomData<fn() -> L>,
}

impl<F: Float, L> ConvBuilder<F, L> {
    pub(crate) fn new(weight: Array4<F>) -> Self {
        ConvBuilder {
            weight,
            bias: None,
            params: ConvParams::default(),
            groups: 1,
            activation: Activation::Identity,
            algorithm: Algorithm::Auto,
            layer: PhantomData,
        }
    }

    settings_setters!();

    /// Bias `[C_out]` (default none).
    pub fn bias(mut self, b: Array1<F>) -> Self {
        self.bias = Some(b);
        self
    }
    /// Optional bias.
    pub fn bias_opt(mut self, b: Option<Array1<F>>) -> Self {
        self.bias = b;
        self
    }

    /// Checks what every conv checks (a non-empty weight, the bias length
    /// against `out_channels`, non-zero stride and dilation) and returns the
    /// parts: the core and the group count.
    pub(crate) fn finish(
        self,
        what: &str,
        out_channels: impl FnOnce(&[usize], usize) -> Result<usize>,
    ) -> Result<(ConvCore<F>, usize)> {
        check_weight(&format!("{what} weight"), self.weight.shape())?;
        let cout = out_channels(self.weight.shape(), self.groups)?;
        check_bias(
            &format!("{what} bias"),
            self.bias.as_ref().map(|b| b.len()),
            cout,
        )?;
        check_params(&self.params)?;
        Ok((
            ConvCore::new(
                self.weight,
                self.bias,
                self.params,
                self.activation,
                self.algorithm,
            ),
            self.groups,
        ))
    }

    pub(crate) fn set_groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// Rejects zero strides and dilations at build time (the geometry checks them
/// again per input, with the same errors).
pub(crate) fn check_params(p: &ConvParams) -> Result<()> {
    if p.stride.contains(&0) {
        return Err(Error::InvalidStride(p.stride));
    }
    if p.dilation.contains(&0) {
        return Err(Error::InvalidDilation(p.dilation));
    }
    Ok(())
}

/// Inherent `output_shape`, `cost`, `forward` and `forward_into` that call
/// the layer's [`Layer`](crate::Layer) implementation, so that a user needs
/// no trait import for the everyday calls.
macro_rules! layer_methods {
    () => {
        /// The output shape for an input of shape `input` (see [`Layer::output_shape`](crate::Layer::output_shape)).
        ///
        /// # Errors
        /// When the layer cannot take that input; the error names the numbers.
        pub fn output_shape(&self, input: [usize; 4]) -> $crate::Result<[usize; 4]> {
            $crate::Layer::output_shape(self, input)
        }
        /// Mult-adds and parameters for an input of shape `input`, the whole
        /// batch (see [`Layer::cost`](crate::Layer::cost)).
        ///
        /// # Errors
        /// As [`output_shape`](Self::output_shape).
        pub fn cost(&self, input: [usize; 4]) -> $crate::Result<$crate::Cost> {
            $crate::Layer::cost(self, input)
        }
        /// Runs the layer into a new array.
        ///
        /// # Errors
        /// As [`output_shape`](Self::output_shape); [`Error::Unsupported`](crate::Error::Unsupported)
        /// for a forced algorithm this CPU lacks.
        pub fn forward(&self, x: ndarray::ArrayView4<'_, F>) -> $crate::Result<ndarray::Array4<F>> {
            $crate::Layer::forward(self, x)
        }
        /// Runs the layer into `out` (any layout), which must have the
        /// output shape; see [`Layer::forward_with_scratch`](crate::Layer::forward_with_scratch)
        /// for a forward that allocates nothing.
        ///
        /// # Errors
        /// As [`forward`](Self::forward), and [`Error::ShapeMismatch`](crate::Error::ShapeMismatch)
        /// for a wrong `out`; `out` is untouched on error.
        pub fn forward_into(
            &self,
            x: ndarray::ArrayView4<'_, F>,
            out: ndarray::ArrayViewMut4<'_, F>,
        ) -> $crate::Result<()> {
            $crate::Layer::forward_into(self, x, out)
        }
    };
}
pub(crate) use layer_methods;
