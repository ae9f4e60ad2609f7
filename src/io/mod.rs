//! Weight import/export, and the rules every loader follows for untrusted
//! files.
//!
//! A loader ([`MobileNetWeights::load_safetensors_with`],
//! `GraphDefWeights::from_file_with` with the `tf` feature) reads a path
//! only when it is a regular file (not a directory, a FIFO or a device such
//! as `/dev/zero`, which would block or never end) no larger than
//! [`LoadOptions::max_bytes`], checked from the file's metadata before a
//! byte is read; every tensor is sized with checked arithmetic and allocated
//! fallibly, and a weight that is NaN or infinite (or an f64 that overflows
//! the f32 it is read into) is an error unless
//! [`LoadOptions::allow_non_finite`] is set.
//!
//! [`MobileNetWeights::load_safetensors_with`]: crate::mobilenet::MobileNetWeights::load_safetensors_with
//!
//! ```
//! use sepconv::io::LoadOptions;
//! use sepconv::mobilenet::{MobileNetConfig, MobileNetWeights};
//! // A file with a NaN weight is refused unless the caller opts in.
//! let config = MobileNetConfig::new().with_alpha(0.25).with_resolution(32);
//! let mut weights = MobileNetWeights::<f32>::seeded(&config, 0)?;
//! let name = "MobilenetV1/Conv2d_0/weights";
//! let mut w = weights.get(name).unwrap().clone();
//! w[[0, 0, 0, 0]] = f32::NAN;
//! weights.insert(name, w);
//! let path = std::env::temp_dir().join(format!("sepconv_io_doc_{}.safetensors", std::process::id()));
//! weights.save_safetensors(&path)?;
//! assert!(MobileNetWeights::<f32>::load_safetensors_with(&path, &LoadOptions::new()).is_err());
//! let opts = LoadOptions::new().with_allow_non_finite(true);
//! assert!(MobileNetWeights::<f32>::load_safetensors_with(&path, &opts).is_ok());
//! std::fs::remove_file(&path).ok();
//! # Ok::<(), sepconv::Error>(())
//! ```

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

#[cfg(feature = "tf")]
pub mod tf;

/// The default [`LoadOptions::max_bytes`]: 1 GiB, 60 times the 17 MB of
/// the largest official MobileNet v1 graph.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;

/// The default [`LoadOptions::max_broadcast_elements`]: 2²⁴ (64 MiB of
/// f32) elements created by broadcasting in one GraphDef.
pub const DEFAULT_MAX_BROADCAST_ELEMENTS: u64 = 1 << 24;

/// What a loader accepts from a file.
///
/// ```
/// use sepconv::io::LoadOptions;
/// let opts = LoadOptions::new().with_max_bytes(64 << 20).with_allow_non_finite(true);
/// assert_eq!(opts.max_bytes, 64 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// The largest file read, in bytes (default [`DEFAULT_MAX_FILE_BYTES`]),
    /// checked from the metadata before reading; a `from_bytes` call is
    /// checked against it too.
    pub max_bytes: u64,
    /// The most elements a GraphDef's `float_val` broadcasts may create in
    /// all (default [`DEFAULT_MAX_BROADCAST_ELEMENTS`]), checked over the
    /// whole graph before any tensor is allocated.
    pub max_broadcast_elements: u64,
    /// Whether NaN and infinite weights are kept (default `false`: they are
    /// an [`Error::Format`] naming the tensor and the element).
    pub allow_non_finite: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_bytes: DEFAULT_MAX_FILE_BYTES,
            max_broadcast_elements: DEFAULT_MAX_BROADCAST_ELEMENTS,
            allow_non_finite: false,
        }
    }
}

impl LoadOptions {
    /// The defaults: 1 GiB files, 2²⁴ broadcast elements, finite weights only.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }
    /// Sets [`max_broadcast_elements`](Self::max_broadcast_elements).
    pub fn with_max_broadcast_elements(mut self, elements: u64) -> Self {
        self.max_broadcast_elements = elements;
        self
    }
    /// Sets [`allow_non_finite`](Self::allow_non_finite).
    pub fn with_allow_non_finite(mut self, allow: bool) -> Self {
        self.allow_non_finite = allow;
        self
    }

    /// Checks `len` bytes of `what` against [`max_bytes`](Self::max_bytes).
    pub(crate) fn check_len(&self, what: &str, len: u64) -> Result<()> {
        if len > self.max_bytes {
            return Err(Error::too_large(
                what,
                &[usize::try_from(len).unwrap_or(usize::MAX)],
                len as u128,
                format!(
                    "over the limit of {} bytes (LoadOptions::max_bytes)",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Checks that the values of tensor `name` are finite, unless allowed.
    pub(crate) fn check_finite(
        &self,
        format: &'static str,
        name: &str,
        values: impl IntoIterator<Item = f64>,
    ) -> Result<()> {
        if self.allow_non_finite {
            return Ok(());
        }
        match values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
            Some((i, v)) => Err(Error::Format {
                format,
                detail: format!(
                    "tensor {name:?}: element {i} is {v}; non-finite weights are refused \
                     unless LoadOptions::allow_non_finite is set"
                ),
            }),
            None => Ok(()),
        }
    }
}

/// The bytes of the file at `path`: a regular file (symbolic links
/// followed) of at most `opts.max_bytes`, checked from its metadata before
/// it is opened (opening a FIFO would block) and again on the open file;
/// the read stops at the limit even if the file grows meanwhile.
///
/// # Errors
/// [`Error::Io`] with the path for a missing or unreadable file and for a
/// directory, FIFO, socket or device; [`Error::TooLarge`] for a file over
/// the limit.
pub(crate) fn read_file(path: &Path, opts: &LoadOptions) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    check_regular(path, &meta)?;
    opts.check_len(&path.display().to_string(), meta.len())?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    check_regular(path, &meta)?;
    opts.check_len(&path.display().to_string(), meta.len())?;
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    crate::layer::try_reserve(&mut bytes, len, &path.display().to_string(), &[len])?;
    file.take(opts.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    opts.check_len(&path.display().to_string(), bytes.len() as u64)?;
    Ok(bytes)
}

/// [`Error::Io`] unless `meta` is a regular file's.
fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    let kind = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file (a FIFO, socket or device)"
    };
    Err(Error::Io {
        path: path.display().to_string(),
        message: format!("{kind}; weights are read from regular files only"),
    })
}
