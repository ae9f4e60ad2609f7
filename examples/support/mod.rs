//! Shared by the examples and the pretrained golden test: fetching the
//! assets, decoding photos, class names, loading the TF-slim model, `.npy`
//! reading and writing (ndarray-npy), option values (lexopt), medians.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array3;
#[cfg(feature = "tf")]
use sepconv::io::tf::GraphDefWeights;
use sepconv::mobilenet::MobileNetConfig;
#[cfg(feature = "tf")]
use sepconv::mobilenet::{MobileNet, MobileNetWeights};

/// The frozen graph inside the asset cache.
pub const MODEL_FILE: &str = "mobilenet_v1_1.0_224_frozen.pb";
/// The two CC0 photos.
pub const PHOTOS: [&str; 2] = ["chelsea.png", "coffee.png"];

/// Runs `scripts/fetch_assets.py` (idempotent: it only verifies checksums
/// when the cache is filled) and returns the cache folder it prints last.
/// Its progress is kept, and shown only if it fails.
pub fn asset_dir() -> Result<PathBuf, String> {
    fetch_assets(false)
}

/// As [`asset_dir`], with the script's progress (what it verifies or
/// downloads, step k of 4) on stderr as it goes when `progress` is true.
pub fn fetch_assets(progress: bool) -> Result<PathBuf, String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/scripts/fetch_assets.py"))
        .current_dir(root)
        .stderr(if progress {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::piped()
        })
        .output()
        .map_err(|e| format!("could not run `python3 scripts/fetch_assets.py`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "scripts/fetch_assets.py failed ({}):\n{stdout}\n{stderr}",
            out.status
        ));
    }
    let dir = stdout
        .lines()
        .last()
        .ok_or_else(|| format!("scripts/fetch_assets.py printed nothing:\n{stderr}"))?;
    Ok(PathBuf::from(dir.trim()))
}

/// Decodes an image file to RGB `[H, W, 3]`.
pub fn load_rgb(path: &Path) -> Result<Array3<u8>, String> {
    let img = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    Array3::from_shape_vec((h as usize, w as usize, 3), img.into_raw()).map_err(|e| e.to_string())
}

/// TF-slim's 1001 labels: index 0 is "background", index k is ImageNet class k − 1.
pub fn labels(dir: &Path) -> Result<Vec<String>, String> {
    let path = dir.join("imagenet_classes.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let names: Vec<String> = text.lines().map(str::to_owned).collect();
    if names.len() != 1000 {
        return Err(format!(
            "{}: expected 1000 class names, found {}",
            path.display(),
            names.len()
        ));
    }
    Ok(std::iter::once("background".to_owned())
        .chain(names)
        .collect())
}

/// The configuration of the pretrained graph: 1.0-224, 1001 classes, ReLU6, ε = 0.001.
pub fn pretrained_config() -> MobileNetConfig {
    MobileNetConfig::new().with_classes(1001)
}

/// Loads the pretrained MobileNet v1 1.0-224 from the frozen graph.
#[cfg(feature = "tf")]
pub fn load_pretrained(dir: &Path) -> Result<MobileNet<f32>, sepconv::Error> {
    let graph = GraphDefWeights::from_file(&dir.join(MODEL_FILE))?;
    let config = pretrained_config();
    MobileNet::new(&config, &MobileNetWeights::from_graphdef(&graph, &config)?)
}

/// Reads a float32 `.npy` file holding a 4-D (NHWC) tensor.
pub fn read_npy_f32(path: &Path) -> Result<ndarray::Array4<f32>, String> {
    ndarray_npy::read_npy(path)
        .map_err(|e| format!("{}: not a 4-D float32 .npy file: {e}", path.display()))
}

/// The value of the option just read (`--runs 10` or `--runs=10`), parsed;
/// the error names the option and the value.
pub fn value<T>(parser: &mut lexopt::Parser, option: &str) -> Result<T, lexopt::Error>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use lexopt::ValueExt as _;
    let v = parser.value()?.string()?;
    v.parse()
        .map_err(|e| format!("{option}: cannot parse {v:?}: {e}").into())
}

/// Runs `f` `runs` times and returns the median wall time in milliseconds.
pub fn time_median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    median_ms(
        (0..runs)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// Median of a sample of durations, in milliseconds.
pub fn median_ms(mut times: Vec<std::time::Duration>) -> f64 {
    times.sort();
    let n = times.len();
    let mid = if n % 2 == 1 {
        times[n / 2].as_secs_f64()
    } else {
        (times[n / 2 - 1] + times[n / 2]).as_secs_f64() / 2.0
    };
    mid * 1e3
}

/// Writes `array` as a float32 `.npy` file in C order (in the array's
/// logical order whatever its memory layout).
pub fn write_npy_f32<S, D>(path: &Path, array: &ndarray::ArrayBase<S, D>) -> Result<(), String>
where
    S: ndarray::Data<Elem = f32>,
    D: ndarray::Dimension,
{
    ndarray_npy::write_npy(path, &array.as_standard_layout())
        .map_err(|e| format!("{}: {e}", path.display()))
}
