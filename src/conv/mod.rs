//! Convolution layers: standard, depthwise, pointwise and depthwise separable.
//!
//! Every layer takes NHWC activations (`[batch, row, col, channel]`) as any
//! [`ArrayView4`](ndarray::ArrayView4) (non-contiguous and negatively strided views included),
//! validates it, and returns a new array ([`forward`](Conv2d::forward)) or
//! writes into a caller's buffer ([`forward_into`](Conv2d::forward_into)).
//! Bias and activation are fused into the output pass.
//!
//! | layer | weight | bias | input → output |
//! | --- | --- | --- | --- |
//! | [`Conv2d`] | `[kh, kw, C_in / groups, C_out]` (HWIO) | `[C_out]` | `[N, H, W, C_in]` → `[N, OH, OW, C_out]` |
//! | [`DepthwiseConv2d`] | `[kh, kw, C, m]` | `[C·m]` | `[N, H, W, C]` → `[N, OH, OW, C·m]` (channel `c·m + j`) |
//! | [`PointwiseConv2d`] | `[C_in, C_out]` | `[C_out]` | `[N, H, W, C_in]` → `[N, H, W, C_out]` |

mod depthwise;
mod pointwise;
mod separable;
mod standard;

pub use depthwise::{DepthwiseConv2d, DepthwiseConv2dBuilder};
pub use pointwise::PointwiseConv2d;
pub use separable::{SeparableConv2d, SeparableConv2dBuilder};
pub use standard::{Conv2d, Conv2dBuilder};

use std::borrow::Cow;

use ndarray::{Array1, Array4, ArrayView4, ArrayViewMut2, ArrayViewMut4};

use crate::Float;
use crate::activation::Activation;
use crate::error::{Error, Result};

/// Which implementation a layer runs. The default, `Auto`, picks the fastest
/// one this CPU supports; the others force a path, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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
    /// run the portable code. A forward returns [`Error::Unsupported`] on a
    /// CPU without AVX2 and FMA.
    Avx2Fma,
}

impl Algorithm {
    /// The path a layer set to `self` runs on this CPU.
    ///
    /// `Auto` picks the fastest available path; the environment variable
    /// `SEPCONV_ALGORITHM=portable` makes it pick `Portable` (to test the
    /// portable path on a machine with SIMD, or to rule the kernels out).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a forced path this CPU cannot run.
    pub fn resolve(self) -> Result<Algorithm> {
        match self {
            Algorithm::Auto if env_forces_portable() => Ok(Algorithm::Portable),
            Algorithm::Auto if crate::kernels::avx2_fma_available() => Ok(Algorithm::Avx2Fma),
            Algorithm::Auto => Ok(Algorithm::Portable),
            Algorithm::Avx2Fma if !crate::kernels::avx2_fma_available() => Err(Error::Unsupported(
                "Algorithm::Avx2Fma was forced, but this CPU lacks AVX2 or FMA".into(),
            )),
            a => Ok(a),
        }
    }

    /// Every path this CPU can run, `Auto` excluded (for tests and benchmarks).
    pub fn available() -> Vec<Algorithm> {
        let mut v = vec![Algorithm::Reference, Algorithm::Portable];
        if crate::kernels::avx2_fma_available() {
            v.push(Algorithm::Avx2Fma);
        }
        v
    }
}

fn env_forces_portable() -> bool {
    static PORTABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PORTABLE.get_or_init(|| {
        std::env::var("SEPCONV_ALGORITHM").is_ok_and(|v| v.eq_ignore_ascii_case("portable"))
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
        return Err(Error::ChannelMismatch {
            what: what.into(),
            expected: channels,
            got: shape[3],
        });
    }
    Ok(())
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

/// Runs `f` on a standard-layout (C-contiguous) version of `out`: `out` itself
/// when it is one, else a temporary copied into `out` afterwards.
pub(crate) fn with_standard_output<F: Float>(
    mut out: ArrayViewMut4<'_, F>,
    f: impl FnOnce(ArrayViewMut4<'_, F>),
) {
    if out.is_standard_layout() {
        f(out);
    } else {
        let mut tmp = Array4::zeros(out.raw_dim());
        f(tmp.view_mut());
        out.assign(&tmp);
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
/// when it is contiguous, else a copy. Direct kernels index the input as a
/// flat `[N, H, W, C]` slice.
pub(crate) fn contiguous_input<'a, F: Float>(x: &ArrayView4<'a, F>) -> Cow<'a, [F]> {
    match x.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(x.iter().copied().collect()),
    }
}

/// A 4-D shape slice as an array (ndarray guarantees the length for `Ix4`).
pub(crate) fn dims4(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}
