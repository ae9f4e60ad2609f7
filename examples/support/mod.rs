//! Shared by the examples and the pretrained golden test: fetching the
//! assets, decoding photos, class names, loading the TF-slim model, `.npy`
//! reading and writing, medians.
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
pub fn asset_dir() -> Result<PathBuf, String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/scripts/fetch_assets.py"))
        .current_dir(root)
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

/// Reads a little-endian float32 `.npy` file (C order) as NHWC.
pub fn read_npy_f32(path: &Path) -> Result<ndarray::Array4<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let err = |m: &str| format!("{}: not a float32 .npy file: {m}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("bad magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(err(&format!("unsupported version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| err("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err("header is not text"))?;
    if !header.contains("'descr': '<f4'") {
        return Err(err(&format!("dtype must be '<f4' (header {header:?})")));
    }
    if header.contains("'fortran_order': True") {
        return Err(err("Fortran order is not supported"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err("no shape"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| err("bad shape")))
        .collect::<Result<_, _>>()?;
    let [n, h, w, c] = <[usize; 4]>::try_from(shape.as_slice())
        .map_err(|_| err(&format!("expected a 4-D NHWC tensor, got shape {shape:?}")))?;
    let data = &bytes[start + header_len..];
    if data.len() != n * h * w * c * 4 {
        return Err(err(&format!(
            "{} data bytes for shape {shape:?}",
            data.len()
        )));
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    ndarray::Array4::from_shape_vec((n, h, w, c), values).map_err(|e| err(&e.to_string()))
}

/// The value after a command-line flag, parsed: `--runs 10` → `10`.
pub fn flag_value<T: std::str::FromStr>(
    it: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<T, String> {
    let v = it.next().ok_or(format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
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

/// Writes `array` as a little-endian float32 `.npy` file (format 1.0, C
/// order, in the array's logical order whatever its memory layout).
pub fn write_npy_f32<S, D>(path: &Path, array: &ndarray::ArrayBase<S, D>) -> Result<(), String>
where
    S: ndarray::Data<Elem = f32>,
    D: ndarray::Dimension,
{
    let dims: Vec<String> = array.shape().iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces and
    // ended by a newline to a multiple of 64 bytes, as numpy writes it.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| format!("{}: .npy header too long", path.display()))?;
    let mut bytes = Vec::with_capacity(10 + header.len() + array.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&header_len.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for &v in array.iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}
