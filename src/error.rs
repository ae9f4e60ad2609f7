//! The crate's one error type.
//!
//! Every constructor and every forward pass validates its input and returns
//! [`Result`]; the error carries the numbers that were wrong (expected and got
//! shapes, the offending value) so the message alone tells what to fix.
//!
//! ```
//! use ndarray::Array4;
//! use sepconv::{Conv2d, Error};
//! let conv = Conv2d::builder(Array4::<f32>::ones((3, 3, 4, 8))).build()?;
//! let e = conv.forward(Array4::ones((1, 5, 5, 3)).view()).unwrap_err();
//! assert_eq!(e.to_string(), "Conv2d input: expected 4 input channels, got 3");
//! assert!(matches!(e, Error::ChannelMismatch { expected: 4, got: 3, .. }));
//! # Ok::<(), sepconv::Error>(())
//! ```

use std::fmt;

/// A shape written as `[a, b, c]` in messages.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<usize>);

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl From<&[usize]> for Shape {
    fn from(s: &[usize]) -> Self {
        Shape(s.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(s: [usize; N]) -> Self {
        Shape(s.to_vec())
    }
}

/// Everything that can go wrong in sepconv.
///
/// `what` fields name the tensor or parameter involved (for example
/// `"Conv2d weight"` or `"MobilenetV1/Conv2d_3_pointwise/weights"`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor has the wrong shape (weights, bias, BN parameters, an output buffer).
    #[error("{what}: expected shape {expected}, got {got}")]
    ShapeMismatch {
        /// The tensor.
        what: String,
        /// The shape required.
        expected: Shape,
        /// The shape given.
        got: Shape,
    },
    /// The input's channel count does not match the layer.
    #[error("{what}: expected {expected} input channels, got {got}")]
    ChannelMismatch {
        /// The layer.
        what: String,
        /// Channels the layer takes.
        expected: usize,
        /// Channels of the input.
        got: usize,
    },
    /// `groups` does not divide the input or output channel count (or is 0).
    #[error(
        "groups = {groups} must be ≥ 1 and divide both in_channels = {in_channels} and out_channels = {out_channels}"
    )]
    InvalidGroups {
        /// The group count.
        groups: usize,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
    },
    /// A tensor has a dimension of size zero.
    #[error("{what} has a zero-sized dimension: shape {shape}")]
    ZeroSize {
        /// The tensor.
        what: String,
        /// Its shape.
        shape: Shape,
    },
    /// A stride of zero.
    #[error("stride must be ≥ 1 on both axes, got [{}, {}]", .0[0], .0[1])]
    InvalidStride([usize; 2]),
    /// A dilation of zero.
    #[error("dilation must be ≥ 1 on both axes, got [{}, {}]", .0[0], .0[1])]
    InvalidDilation([usize; 2]),
    /// The (dilated) kernel does not fit in the padded input.
    #[error(
        "{axis}: the dilated kernel spans {kernel_extent} pixels but the padded input has only {padded_input}"
    )]
    KernelTooLarge {
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// `(k − 1)·dilation + 1`.
        kernel_extent: usize,
        /// Input size plus padding on that axis.
        padded_input: usize,
    },
    /// A BatchNorm variance is negative or not finite.
    #[error(
        "BatchNorm variance of channel {channel} is {value}; it must be finite and ≥ 0 (with ε: > 0)"
    )]
    InvalidVariance {
        /// The channel.
        channel: usize,
        /// Its variance.
        value: f64,
    },
    /// A value that must be finite is NaN or infinite (a BatchNorm γ, β or
    /// mean, or a BatchNorm scale that overflows its float type).
    #[error("{what}[{index}] is {value}; it must be finite")]
    NonFinite {
        /// The tensor.
        what: String,
        /// The element.
        index: usize,
        /// Its value (as f64; a narrowing that overflowed shows the f64).
        value: f64,
    },
    /// A BatchNorm ε that is negative or not finite.
    #[error("BatchNorm epsilon is {0}; it must be finite and ≥ 0")]
    InvalidEpsilon(f64),
    /// A configuration value out of range (α, resolution, class count, …).
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value, formatted.
        value: String,
        /// What it must be.
        reason: String,
    },
    /// An operation that needs a linear layer was asked of a non-linear one.
    #[error("{0}")]
    Unsupported(String),
    /// A size computation overflowed `usize`/`u64`.
    #[error("size overflow while computing {0}")]
    Overflow(&'static str),
    /// A tensor or buffer that cannot be had: more than `isize::MAX` bytes
    /// (it could not be indexed), over a limit the caller set, or refused by
    /// the allocator. Nothing was allocated for it.
    #[error("{what} of shape {shape} needs {bytes} bytes: {reason}")]
    TooLarge {
        /// The tensor or buffer (`"Conv2d output"`, `"Sequential scratch"`, …).
        what: String,
        /// Its shape (elements per axis; `[len]` for a flat buffer).
        shape: Shape,
        /// The bytes it needs (saturated at `u128::MAX`).
        bytes: u128,
        /// Why it cannot be had.
        reason: String,
    },
    /// A named tensor is missing from a weights file.
    #[error("tensor {name:?} is missing from the weights")]
    MissingTensor {
        /// Its name.
        name: String,
    },
    /// A tensor in a weights file has an unexpected element type.
    #[error("tensor {name:?} has dtype {got}, expected {expected}")]
    Dtype {
        /// Its name.
        name: String,
        /// The dtype required.
        expected: String,
        /// The dtype found.
        got: String,
    },
    /// A weights file is malformed (truncated, corrupt, wrong format).
    #[error("malformed {format} data: {detail}")]
    Format {
        /// `"safetensors"`, `"GraphDef"`, `"npy"`, …
        format: &'static str,
        /// What was wrong, with the offset where known.
        detail: String,
    },
    /// A layer of a network refused its input: which layer, and why.
    #[error("layer {index} ({name:?}, {kind}) on input {input}: {source}")]
    Layer {
        /// Its position in its container.
        index: usize,
        /// Its name in the container.
        name: String,
        /// Its type ([`LayerInfo::kind`](crate::LayerInfo::kind)).
        kind: &'static str,
        /// The shape it was given (the output of the layer before it).
        input: Shape,
        /// What the layer said.
        #[source]
        source: Box<Error>,
    },
    /// An I/O error, with the path.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The input's channel count does not match the layer, and the shapes
    /// look like another layout: an NCHW input to an NHWC layer, or PyTorch
    /// weights given where HWIO ones are expected. `hint` names the
    /// [`layout`](crate::layout) converter.
    #[error("{what}: expected {expected} input channels, got {got} (input {shape}); {hint}")]
    Layout {
        /// The layer.
        what: String,
        /// Channels the layer takes.
        expected: usize,
        /// Channels of the input (its last axis).
        got: usize,
        /// The input's shape.
        shape: Shape,
        /// What the shapes look like, and the converter to use.
        hint: String,
    },
    /// A pretrained asset is missing or is not the pinned file
    /// ([`pretrained`](crate::pretrained)).
    #[error(
        "pretrained asset {path}: {reason}. Fetch the assets with `python3 scripts/fetch_assets.py` \
         in a clone of https://github.com/sepconv/sepconv: it downloads them (sha256-checked) into \
         $SEPCONV_CACHE, else $XDG_CACHE_HOME/sepconv, else ~/.cache/sepconv"
    )]
    MissingAsset {
        /// The file (or folder).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result<T, sepconv::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(what: impl Into<String>, expected: &[usize], got: &[usize]) -> Self {
        Error::ShapeMismatch {
            what: what.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub(crate) fn param(
        name: &'static str,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidParameter {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn too_large(
        what: impl Into<String>,
        shape: &[usize],
        bytes: u128,
        reason: impl Into<String>,
    ) -> Self {
        Error::TooLarge {
            what: what.into(),
            shape: shape.into(),
            bytes,
            reason: reason.into(),
        }
    }

    /// A [`Error::TooLarge`] renamed `what` (other errors unchanged).
    pub(crate) fn named(self, what: String) -> Self {
        match self {
            Error::TooLarge {
                shape,
                bytes,
                reason,
                ..
            } => Error::TooLarge {
                what,
                shape,
                bytes,
                reason,
            },
            e => e,
        }
    }

    pub(crate) fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
