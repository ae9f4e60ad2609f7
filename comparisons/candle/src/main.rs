//! Runs every case of `manifest.tsv` (written by `comparisons/build_onnx.py`)
//! in candle: candle has no ONNX import here, so the networks are built
//! directly from the tensors sepconv exported; checks the output against
//! sepconv's (max |diff| / max |ref| ≤ tol, else exit status 1 naming the
//! case), and takes the median of timed runs after warm-ups. Only the forward
//! pass is timed; the input tensor is built beforehand.
//!
//! ```text
//! sepconv-compare-candle MANIFEST [--threads 1,2] [--runs N] [--warmup N] [--tol T]
//! ```
//!
//! Prints `{"engine", "version", "results": [{"case", "threads", "median_ms",
//! "runs", "max_rel_diff"}]}` on stdout, progress on stderr: the contract of
//! the tract runner, so `compare.py` reads both alike.
//!
//! # The graphs
//!
//! For a manifest row `mobilenet_A-R` the weights come from
//! `../data/mobilenet_A-R.safetensors` relative to the manifest's folder (TF-slim
//! names), loaded with `candle_core::safetensors::load`; for
//! `layer_14x14x512_{standard,separable}` from
//! `../data/layer_14x14x512_*_weights.npy`. The input and the expected output
//! are the manifest's NCHW `.npy` files, as for the other engines (the .onnx
//! column is not read). The networks are wired as `build_onnx.py` wires the
//! ONNX graphs, in candle's conv2d conventions:
//!
//! - NCHW activations, OIHW kernels: HWIO `[kh, kw, Cin, Cout]` is permuted to
//!   `[Cout, Cin, kh, kw]`; depthwise `[kh, kw, C, 1]` becomes `[C, 1, kh, kw]`
//!   with `groups = C`; pointwise `[Cin, Cout]` or `[1, 1, Cin, Cout]` becomes
//!   `[Cout, Cin, 1, 1]`.
//! - TensorFlow SAME padding. candle's `conv2d` pads symmetrically, so where
//!   SAME is symmetric (every stride-1 layer: 1/1 for 3×3, 0/0 for 1×1) it is
//!   passed as conv2d's own `padding`, as a candle user would write it; where it
//!   is not (the stride-2 layers on even inputs: 0 before, 1 after) the input
//!   is zero-padded explicitly with `pad_with_zeros` on H and W and the conv
//!   runs with padding 0. Both give exactly the TF SAME result.
//! - BatchNorm (ε = 1e-3) folded into the conv weights and a per-channel bias
//!   once at load time (computed in f64, stored in f32): what every engine
//!   does at inference. The bias is added with `broadcast_add` as
//!   `candle_nn::Conv2d` adds its bias; ReLU6 is `clamp(0, 6)`, as
//!   `candle_nn::Activation::Relu6` computes it.
//! - The head: global average pool as `mean` over H and W, the classifier
//!   (a 1×1 conv with bias on a 1×1 map) as `matmul` + `broadcast_add`, giving
//!   logits `[N, classes]`.
//!
//! # Threads
//!
//! candle's CPU backend has no per-call or per-scope thread count. It takes
//! it from the environment, and mostly once per process (candle-core 0.11.1,
//! `src/utils.rs`):
//!
//! - `get_num_threads()` = `RAYON_NUM_THREADS`, else the number of physical
//!   cores; read again on every matmul and passed to `gemm` as
//!   `Parallelism::Rayon(n)` (1 gives `Parallelism::None`);
//! - candle's own rayon pool, built once with `get_num_threads()` threads
//!   and installed by `Device::with_context`; inside it, conv2d's
//!   `into_par_iter` loops and gemm's tasks run on its workers (outside it
//!   they would go to rayon's global pool, also sized by `RAYON_NUM_THREADS`);
//! - a "barrier pool" for element-wise ops, built once with
//!   `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else physical cores)
//!   minus one worker threads, the calling thread being the last.
//!
//! So each thread count runs in its own child process: the binary re-runs
//! itself with `--threads T` and `RAYON_NUM_THREADS = CANDLE_NUM_THREADS = T`
//! (and `SEPCONV_COMPARE_CANDLE_THREADS = T`, which makes it the child), and
//! the parent merges the children's rows into one JSON document. A child
//! checks that candle reports `get_num_threads() = T` and a barrier pool of
//! T − 1 workers before it runs anything. Each case's check, warm-ups and
//! timed runs happen inside one `Device::Cpu.with_context`, which is how
//! candle's maintainers say a CPU model should be run (the pool installed
//! once around the whole inference, not op by op).
//!
//! What runs in parallel on T threads, for the ops used here:
//!
//! - matrix products (the `gemm` crate): split over T tasks when a block's
//!   m·n·k ≥ 48·48·256, single-threaded below that. That covers the 1×1
//!   pointwise convs (candle's `conv2d_1x1` path: a copy of the input on one
//!   thread, then one gemm `[Cout, Cin] × [Cin, H·W]`), the product inside
//!   every 3×3 conv with groups = 1, and the classifier;
//! - a 3×3 conv with groups = 1 (the stem, the 14×14×512 standard layer):
//!   candle's tiled im2col. On one thread, at every call: the input is copied
//!   to NHWC and the kernel re-laid out from OIHW to `[Cout, kh·kw·Cin]`.
//!   Then tiles of 512 output pixels (im2col of the tile, gemm, scatter to
//!   NCHW) run in parallel. A 14×14 output is one tile, so the standard
//!   layer's im2col runs on one thread and only its gemm is split: profiled
//!   on 2 threads, ~40 % of its samples are in those one-thread parts;
//! - depthwise convs (groups = C): candle's `conv2d` splits input and kernel
//!   into C one-channel convs, runs them one after another and concatenates
//!   the results. Each is a tiled im2col whose 1×9 · 9×P product is far below
//!   gemm's threshold, so only its tiles run in parallel: 25 at 112×112, 7 at
//!   56×56, 2 at 28×28, 1 at 14×14 and 7×7. Profiled on one thread,
//!   MobileNet 1.0-224 spends about 60 % of its time in the tiles' im2col
//!   and scatter loops (the depthwise convs build ~17 M im2col elements per
//!   forward, the stem 0.3 M) and about 14 % in gemm;
//! - element-wise ops (bias add, the two halves of clamp) on the barrier pool
//!   when a tensor has ≥ 64 Ki elements, otherwise on one thread;
//! - `pad_with_zeros` / `cat`, the chunking of grouped convs, and `mean`: one
//!   thread.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

const USAGE: &str =
    "usage: sepconv-compare-candle MANIFEST [--threads 1,2] [--runs N] [--warmup N] [--tol T]";
/// The candle-core version this is built against (pinned in Cargo.toml).
const CANDLE_VERSION: &str = "0.11.1";
/// Set (to the thread count) in the environment of the child process that
/// runs one thread count; see the module docs.
const CHILD_ENV: &str = "SEPCONV_COMPARE_CANDLE_THREADS";
/// BatchNorm epsilon of TF-slim's MobileNet v1 (and of sepconv's export).
const BN_EPSILON: f64 = 1e-3;
/// Stride of each of the 13 depthwise separable blocks after Conv2d_0.
const BLOCK_STRIDES: [usize; 13] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1];
const SCOPE: &str = "MobilenetV1";
const LAYER: &str = "layer_14x14x512";

struct Args {
    manifest: PathBuf,
    threads: Vec<usize>,
    runs: usize,
    warmup: usize,
    tol: f64,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        manifest: PathBuf::new(),
        threads: vec![1, 2],
        runs: 50,
        warmup: 5,
        tol: 1e-4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(USAGE.into()),
            "--threads" => {
                args.threads = value("--threads")?
                    .split(',')
                    .map(|t| match t.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("--threads: {t:?} is not a thread count ≥ 1")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--runs" => args.runs = parse_num(&value("--runs")?, "--runs")?,
            "--warmup" => args.warmup = parse_num(&value("--warmup")?, "--warmup")?,
            "--tol" => args.tol = parse_num(&value("--tol")?, "--tol")?,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s => args.manifest = s.into(),
        }
    }
    if args.manifest.as_os_str().is_empty() {
        return Err(USAGE.into());
    }
    if args.runs == 0 {
        return Err("--runs must be ≥ 1".into());
    }
    Ok(args)
}

fn parse_num<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{flag}: cannot parse {s:?}"))
}

/// Reads a little-endian float32 `.npy` file in C order (format 1.0–3.0).
fn read_npy(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |m: &str| format!("{}: not a float32 .npy file: {m}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("bad magic"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unsupported version {v}"))),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or non-text header"))?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(bad(&format!("need '<f4' in C order, header {header:?}")));
    }
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_, _>>()?;
    let data: Vec<f32> = bytes[start + len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if data.len() != shape.iter().product::<usize>() {
        return Err(bad(&format!("{} values for shape {shape:?}", data.len())));
    }
    Tensor::from_vec(data, shape, &Device::Cpu).map_err(|e| bad(&e.to_string()))
}

/// TensorFlow SAME on one axis of size `size`: (pad before, pad after).
fn same_pads(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// HWIO `[kh, kw, Cin, Cout]` to candle's OIHW `[Cout, Cin, kh, kw]`.
fn hwio_to_oihw(w: &Tensor) -> candle_core::Result<Tensor> {
    w.permute((3, 2, 0, 1))?.contiguous()
}

/// Depthwise `[kh, kw, C, m]` to `[C·m, 1, kh, kw]` for `groups = C`
/// (output channel c·m + j, as in sepconv and TensorFlow).
fn depthwise_to_oihw(w: &Tensor) -> candle_core::Result<Tensor> {
    let (kh, kw, c, m) = w.dims4()?;
    w.reshape((kh, kw, c * m, 1))?
        .permute((2, 3, 0, 1))?
        .contiguous()
}

/// One convolution with TF SAME padding, then an optional per-channel bias
/// (a folded BatchNorm) and an optional ReLU6.
struct Conv {
    /// OIHW; `[C, 1, kh, kw]` for a depthwise conv.
    weight: Tensor,
    /// `[1, Cout, 1, 1]`.
    bias: Option<Tensor>,
    stride: usize,
    groups: usize,
    relu6: bool,
}

impl Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (_, _, kh, kw) = self.weight.dims4()?;
        let (top, bottom) = same_pads(h, kh, self.stride);
        let (left, right) = same_pads(w, kw, self.stride);
        let y = if top == bottom && left == right && top == left {
            // Symmetric: candle's own conv padding is exactly TF SAME.
            x.conv2d(&self.weight, top, self.stride, 1, self.groups)?
        } else {
            // Asymmetric (stride 2 on an even size: 0 before, 1 after).
            x.pad_with_zeros(2, top, bottom)?
                .pad_with_zeros(3, left, right)?
                .conv2d(&self.weight, 0, self.stride, 1, self.groups)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        if self.relu6 {
            y.clamp(0f32, 6f32)
        } else {
            Ok(y)
        }
    }
}

/// A network built from sepconv's exported tensors.
enum Net {
    /// Convs applied in order (the 14×14×512 layer cases).
    Layer(Vec<Conv>),
    /// MobileNet v1: convs, global average pool, classifier.
    MobileNet {
        convs: Vec<Conv>,
        /// `[Cin, classes]`.
        classifier_w: Tensor,
        /// `[classes]`.
        classifier_b: Tensor,
    },
}

impl Net {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Net::Layer(convs) => convs.iter().try_fold(x.clone(), |y, c| c.forward(&y)),
            Net::MobileNet {
                convs,
                classifier_w,
                classifier_b,
            } => {
                let y = convs.iter().try_fold(x.clone(), |y, c| c.forward(&y))?;
                let pooled = y.mean((2, 3))?; // [N, C]
                pooled.matmul(classifier_w)?.broadcast_add(classifier_b)
            }
        }
    }

    /// The layer graphs: `standard` is one 3×3 conv 512→512, `separable` a
    /// depthwise 3×3 then a pointwise 512→512; stride 1, TF SAME, no bias, no
    /// BatchNorm, no activation.
    fn layer(data: &Path, form: &str) -> Result<Net, String> {
        let load = |what: &str| read_npy(&data.join(format!("{LAYER}_{what}_weights.npy")));
        let conv = |weight, groups| Conv {
            weight,
            bias: None,
            stride: 1,
            groups,
            relu6: false,
        };
        let ce = |e: candle_core::Error| format!("{LAYER}_{form}: {e}");
        match form {
            "standard" => Ok(Net::Layer(vec![conv(
                hwio_to_oihw(&load("standard")?).map_err(ce)?,
                1,
            )])),
            "separable" => {
                let dw = load("depthwise")?;
                let channels = dw.dims4().map_err(ce)?.2;
                let pw = load("pointwise")?;
                // [Cin, Cout] or [1, 1, Cin, Cout]
                let pw = match pw.rank() {
                    2 => pw.unsqueeze(0).and_then(|p| p.unsqueeze(0)).map_err(ce)?,
                    _ => pw,
                };
                Ok(Net::Layer(vec![
                    conv(depthwise_to_oihw(&dw).map_err(ce)?, channels),
                    conv(hwio_to_oihw(&pw).map_err(ce)?, 1),
                ]))
            }
            _ => Err(format!("{LAYER}_{form}: unknown layer case")),
        }
    }

    /// MobileNet v1 from a TF-slim named safetensors file.
    fn mobilenet(path: &Path) -> Result<Net, String> {
        let ce = |e: candle_core::Error| format!("{}: {e}", path.display());
        let t = candle_core::safetensors::load(path, &Device::Cpu).map_err(ce)?;
        let get = |name: &str| -> Result<&Tensor, String> {
            t.get(&format!("{SCOPE}/{name}"))
                .ok_or_else(|| format!("{}: no tensor {SCOPE}/{name}", path.display()))
        };
        // A conv with its BatchNorm folded in and ReLU6.
        let conv_bn = |scope: &str, weight: Tensor, stride, groups| -> Result<Conv, String> {
            let (weight, bias) = fold_batch_norm(&weight, &t, &format!("{SCOPE}/{scope}"))
                .map_err(|e| format!("{}: {scope}: {e}", path.display()))?;
            Ok(Conv {
                weight,
                bias: Some(bias),
                stride,
                groups,
                relu6: true,
            })
        };
        let mut convs = vec![conv_bn(
            "Conv2d_0",
            hwio_to_oihw(get("Conv2d_0/weights")?).map_err(ce)?,
            2,
            1,
        )?];
        for (i, &stride) in BLOCK_STRIDES.iter().enumerate() {
            let block = i + 1;
            let dw = get(&format!("Conv2d_{block}_depthwise/depthwise_weights"))?;
            let channels = dw.dims4().map_err(ce)?.2;
            convs.push(conv_bn(
                &format!("Conv2d_{block}_depthwise"),
                depthwise_to_oihw(dw).map_err(ce)?,
                stride,
                channels,
            )?);
            let pw = get(&format!("Conv2d_{block}_pointwise/weights"))?;
            convs.push(conv_bn(
                &format!("Conv2d_{block}_pointwise"),
                hwio_to_oihw(pw).map_err(ce)?,
                1,
                1,
            )?);
        }
        // The classifier: a 1×1 conv [1, 1, Cin, classes] on the pooled 1×1
        // map is a matmul with the [Cin, classes] matrix.
        let w = get("Logits/Conv2d_1c_1x1/weights")?;
        let (_, _, cin, classes) = w.dims4().map_err(ce)?;
        Ok(Net::MobileNet {
            convs,
            classifier_w: w.reshape((cin, classes)).map_err(ce)?,
            classifier_b: get("Logits/Conv2d_1c_1x1/biases")?.clone(),
        })
    }
}

/// Folds `{scope}/BatchNorm/{gamma,beta,moving_mean,moving_variance}` into
/// an OIHW conv weight: w·s per output channel and a bias β − μ·s, with
/// s = γ / √(σ² + ε). Computed in f64, returned in f32; the bias as
/// `[1, Cout, 1, 1]`.
fn fold_batch_norm(
    weight: &Tensor,
    t: &HashMap<String, Tensor>,
    scope: &str,
) -> Result<(Tensor, Tensor), String> {
    let get = |p: &str| {
        t.get(&format!("{scope}/BatchNorm/{p}"))
            .ok_or_else(|| format!("no tensor {scope}/BatchNorm/{p}"))?
            .to_dtype(DType::F64)
            .map_err(|e| e.to_string())
    };
    let (gamma, beta, mean, var) = (
        get("gamma")?,
        get("beta")?,
        get("moving_mean")?,
        get("moving_variance")?,
    );
    let fold = || -> candle_core::Result<(Tensor, Tensor)> {
        let cout = weight.dims4()?.0;
        let scale = (gamma / (var + BN_EPSILON)?.sqrt()?)?;
        let w = weight
            .to_dtype(DType::F64)?
            .broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?
            .to_dtype(DType::F32)?;
        let b = (beta - (mean * &scale)?)?
            .reshape((1, cout, 1, 1))?
            .to_dtype(DType::F32)?;
        Ok((w, b))
    };
    fold().map_err(|e| e.to_string())
}

/// max |got − ref| / max |ref|, in f64.
fn max_rel_diff(got: &Tensor, reference: &Tensor) -> Result<f64, String> {
    if got.dims() != reference.dims() {
        return Err(format!(
            "output shape {:?}, expected {:?}",
            got.dims(),
            reference.dims()
        ));
    }
    let flat = |t: &Tensor| {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| e.to_string())
    };
    let (g, r) = (flat(got)?, flat(reference)?);
    let diff = g
        .iter()
        .zip(&r)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0.0, f64::max);
    let scale = r.iter().map(|&b| (b as f64).abs()).fold(0.0, f64::max);
    Ok(diff / scale)
}

fn median_ms(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let mid = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    };
    mid * 1e3
}

struct Row {
    case: String,
    threads: usize,
    median_ms: f64,
    max_rel_diff: f64,
}

/// One manifest line: `name<TAB>graph<TAB>input<TAB>expected`.
struct Case {
    name: String,
    input: PathBuf,
    expected: PathBuf,
}

fn read_manifest(manifest: &Path) -> Result<Vec<Case>, String> {
    let root = manifest.parent().unwrap_or(Path::new("."));
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let [name, _graph, input, expected] =
                <[&str; 4]>::try_from(line.split('\t').collect::<Vec<_>>())
                    .map_err(|_| format!("{}: bad line {line:?}", manifest.display()))?;
            Ok(Case {
                name: name.into(),
                input: root.join(input),
                expected: root.join(expected),
            })
        })
        .collect()
}

/// Builds the network of a manifest case from the exported tensors in `data`.
fn build(name: &str, data: &Path) -> Result<Net, String> {
    if name.starts_with("mobilenet_") {
        Net::mobilenet(&data.join(format!("{name}.safetensors")))
    } else if let Some(form) = name.strip_prefix(LAYER).and_then(|f| f.strip_prefix('_')) {
        Net::layer(data, form)
    } else {
        Err(format!("{name}: no candle network for this case"))
    }
}

/// The child process: every case on `threads` threads (candle already set up
/// for that count by the environment). Writes one tab-separated line per case
/// on stdout, `row case threads median_ms max_rel_diff` or `mismatch message`,
/// for the parent to merge.
fn child(args: &Args, threads: usize) -> Result<(), String> {
    let workers = candle_core::utils::barrier_pool().n_workers();
    if candle_core::utils::get_num_threads() != threads || workers + 1 != threads {
        return Err(format!(
            "asked for {threads} thread(s), candle has get_num_threads() = {} and a barrier pool of {workers} worker(s) + the caller",
            candle_core::utils::get_num_threads()
        ));
    }
    // The data folder is `out/data`, a sibling of the manifest's `out/onnx`.
    let data = args
        .manifest
        .parent()
        .unwrap_or(Path::new("."))
        .join("../data");
    for case in read_manifest(&args.manifest)? {
        let name = &case.name;
        let net = build(name, &data)?;
        let x = read_npy(&case.input)?;
        let reference = read_npy(&case.expected)?;
        let once = || net.forward(&x).map_err(|e| format!("{name}: {e}"));
        // candle's way to run a model on the CPU: `with_context` installs
        // candle's own rayon pool (of `get_num_threads()` threads) once
        // around the whole inference, so conv2d's parallel loops and gemm's
        // tasks run on that pool's warm workers instead of being sent to
        // rayon's global pool op by op.
        let timed = Device::Cpu.with_context(|| -> Result<Option<Row>, String> {
            let rel = max_rel_diff(&once()?, &reference).map_err(|e| format!("{name}: {e}"))?;
            if rel.is_nan() || rel > args.tol {
                let msg = format!(
                    "{name}, {threads} thread(s): max |diff| / max |ref| = {rel:.3e} > {:e}",
                    args.tol
                );
                eprintln!("candle: MISMATCH {msg}");
                println!("mismatch\t{msg}");
                return Ok(None);
            }
            for _ in 0..args.warmup {
                once()?;
            }
            let mut times = Vec::with_capacity(args.runs);
            for _ in 0..args.runs {
                let start = Instant::now();
                let y = once()?;
                times.push(start.elapsed().as_secs_f64());
                drop(y);
            }
            Ok(Some(Row {
                case: name.clone(),
                threads,
                median_ms: median_ms(times),
                max_rel_diff: rel,
            }))
        })?;
        if let Some(r) = timed {
            eprintln!(
                "candle: {:34} {} thread(s) {:9.3} ms   max rel diff {:.2e}",
                r.case, r.threads, r.median_ms, r.max_rel_diff
            );
            // `{}` on f64 prints the shortest string that parses back exactly.
            println!(
                "row\t{}\t{}\t{}\t{}",
                r.case, r.threads, r.median_ms, r.max_rel_diff
            );
        }
    }
    Ok(())
}

/// The parent: one child process per thread count (see the module docs),
/// their rows merged into the JSON document on stdout.
fn parent(args: &Args) -> Result<(), String> {
    // Fail here, not once per child, on a missing or malformed manifest.
    read_manifest(&args.manifest)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let (mut rows, mut failures) = (Vec::new(), Vec::new());
    for &t in &args.threads {
        let mut child = Command::new(&exe)
            .arg(&args.manifest)
            .args(["--threads", &t.to_string()])
            .args(["--runs", &args.runs.to_string()])
            .args(["--warmup", &args.warmup.to_string()])
            .args(["--tol", &args.tol.to_string()])
            .env(CHILD_ENV, t.to_string())
            .env("RAYON_NUM_THREADS", t.to_string())
            .env("CANDLE_NUM_THREADS", t.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut out)
            .map_err(|e| format!("reading the {t}-thread child: {e}"))?;
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the {t}-thread child: {e}"))?;
        let mut mismatched = false;
        for line in out.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                ["row", case, threads, ms, rel] => rows.push(Row {
                    case: case.to_string(),
                    threads: parse_num(threads, "child threads")?,
                    median_ms: parse_num(ms, "child median_ms")?,
                    max_rel_diff: parse_num(rel, "child max_rel_diff")?,
                }),
                ["mismatch", msg] => {
                    failures.push(msg.to_string());
                    mismatched = true;
                }
                _ => return Err(format!("the {t}-thread child printed {line:?}")),
            }
        }
        if !status.success() && !mismatched {
            return Err(format!("the {t}-thread child failed ({status})"));
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "outputs disagree with sepconv's:\n  {}",
            failures.join("\n  ")
        ));
    }
    let results: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"case\": \"{}\", \"threads\": {}, \"median_ms\": {}, \"runs\": {}, \"max_rel_diff\": {:e}}}",
                r.case, r.threads, r.median_ms, args.runs, r.max_rel_diff
            )
        })
        .collect();
    println!(
        "{{\"engine\": \"candle\", \"version\": \"{CANDLE_VERSION}\", \"results\": [{}]}}",
        results.join(", ")
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let args = parse()?;
    match std::env::var(CHILD_ENV) {
        Ok(t) => {
            let t: usize = parse_num(&t, CHILD_ENV)?;
            if args.threads != [t] {
                return Err(format!("{CHILD_ENV}={t} but --threads {:?}", args.threads));
            }
            child(&args, t)
        }
        Err(_) => parent(&args),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("candle: {e}");
        std::process::exit(1);
    }
}
