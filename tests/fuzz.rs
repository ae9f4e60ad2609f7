//! A seeded mutation fuzzer on the stable toolchain: no input may panic.
//!
//! Three targets: the GraphDef loader (`GraphDefWeights::from_bytes`, with
//! the `tf` feature), the safetensors loader
//! (`MobileNetWeights::from_safetensors`), and layer and configuration
//! construction (conv layers, BatchNorm, `MobileNetConfig` from raw bytes,
//! then shapes, costs and, where small, a forward). Each target starts from
//! its seeds (built here, plus every file of `tests/fuzz/<target>/`, the
//! committed regression corpus, each also run as it is) and runs
//! `SEPCONV_FUZZ_INPUTS` mutated inputs (default 20,000) under
//! `catch_unwind`; the seed of the run is `SEPCONV_FUZZ_SEED` (default 1),
//! so a run is repeatable. An input that panics is written to
//! `target/fuzz-crashes/<target>/` and fails the test, naming the file:
//! fix the bug and move the file into `tests/fuzz/<target>/`.
//!
//! The long run (README, "How it is tested"):
//! `SEPCONV_FUZZ_INPUTS=1000000 cargo test --test suite fuzz:: -- --nocapture` (the
//! test profile is optimized).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array1, Array4, ArrayD, IxDyn};
use sepconv::init::SplitMix64;
use sepconv::io::LoadOptions;
use sepconv::mobilenet::{MobileNetConfig, MobileNetWeights, Variant};
use sepconv::{Activation, BatchNorm, Conv2d, DepthwiseConv2d, Layer, Padding, PointwiseConv2d};

fn inputs() -> usize {
    std::env::var("SEPCONV_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn seed() -> u64 {
    std::env::var("SEPCONV_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The committed corpus of a target.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no corpus", dir.display());
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// One mutation of `input` (splicing with `other`), as libFuzzer's
/// mutators do: bit flips, interesting bytes, inserts, deletes, truncation,
/// repeats, little-endian integers at boundaries, splices.
fn mutate(rng: &mut SplitMix64, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    let rounds = 1 + (rng.next_u64() % 4) as usize;
    for _ in 0..rounds {
        let r = rng.next_u64();
        let at = |n: usize| if n == 0 { 0 } else { (r >> 8) as usize % n };
        match r % 9 {
            0 if !b.is_empty() => {
                let i = at(b.len());
                b[i] ^= 1 << ((r >> 40) % 8);
            }
            1 if !b.is_empty() => {
                let i = at(b.len());
                b[i] = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe, 0x0a, 0x12][(r >> 40) as usize % 8];
            }
            2 => {
                let i = at(b.len() + 1);
                b.insert(i, (r >> 40) as u8);
            }
            3 if !b.is_empty() => {
                let i = at(b.len());
                let n = 1 + (r >> 40) as usize % 8;
                b.drain(i..(i + n).min(b.len()));
            }
            4 => {
                let n = at(b.len() + 1);
                b.truncate(n);
            }
            5 if !b.is_empty() => {
                // Repeat a chunk.
                let i = at(b.len());
                let n = 1 + (r >> 40) as usize % 32;
                let chunk = b[i..(i + n).min(b.len())].to_vec();
                b.splice(i..i, chunk);
            }
            6 if b.len() >= 8 => {
                // A boundary integer (u32 / u64 little-endian).
                let i = at(b.len() - 7);
                let v: u64 = [0, 1, u64::MAX, 1 << 31, 1 << 32, 1 << 63, 0x7fff_ffff]
                    [(r >> 40) as usize % 7];
                let n = if r & (1 << 39) == 0 { 4 } else { 8 };
                b[i..i + n].copy_from_slice(&v.to_le_bytes()[..n]);
            }
            7 if !other.is_empty() => {
                // Splice: our head, the other's tail.
                let i = at(b.len() + 1);
                let j = (r >> 32) as usize % other.len();
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            }
            _ if !b.is_empty() => {
                // A random byte.
                let i = at(b.len());
                b[i] = (r >> 48) as u8;
            }
            _ => b.push(r as u8),
        }
    }
    b
}

/// Runs `check` on every corpus file as it is, then on `inputs()` mutants;
/// panics (failing the test) naming the file an input that panicked was
/// saved to.
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, check: impl Fn(&[u8]) -> bool) {
    let mut pool: Vec<Vec<u8>> = seeds;
    for (path, bytes) in corpus(target) {
        if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
            panic!("{target}: the corpus file {} panics", path.display());
        }
        pool.push(bytes);
    }
    let n = inputs();
    let mut rng = SplitMix64::new(seed() ^ target.len() as u64);
    let start = Instant::now();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let (mut crash, mut accepted) = (None, 0usize);
    for i in 0..n {
        let a = &pool[(rng.next_u64() % pool.len() as u64) as usize];
        let b = &pool[(rng.next_u64() % pool.len() as u64) as usize];
        // One input in eight is random bytes; the rest mutants of the pool,
        // which keeps (up to 1024) the inputs that were accepted, the
        // fuzzer's only feedback.
        let input = match rng.next_u64() % 8 {
            0 => (0..rng.next_u64() % 256)
                .map(|_| rng.next_u64() as u8)
                .collect(),
            _ => mutate(&mut rng, a, b),
        };
        match catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Ok(ok) => {
                accepted += usize::from(ok);
                if ok && pool.len() < 1024 {
                    pool.push(input);
                }
            }
            Err(_) => {
                crash = Some((i, input));
                break;
            }
        }
    }
    std::panic::set_hook(quiet);
    if let Some((i, input)) = crash {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/fuzz-crashes")
            .join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("seed{}-input{i}", seed()));
        std::fs::write(&path, &input).unwrap();
        // Run it again with the hook back, so the panic message shows.
        let _ = catch_unwind(AssertUnwindSafe(|| check(&input)));
        panic!("{target}: input {i} panicked; saved to {}", path.display());
    }
    eprintln!(
        "fuzz {target}: {n} inputs (seed {}) in {:.2} s, no panic; {accepted} accepted",
        seed(),
        start.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// Seeds.
// ---------------------------------------------------------------------------

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(tag << 3 | 2), out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A GraphDef node `name` of op `op` whose `value` attribute is a float
/// tensor of `dims`, with raw `content` or `float_val` values, and a float
/// attribute `epsilon`.
fn node(name: &str, op: &str, dims: &[i64], content: Option<&[f32]>, vals: &[f32]) -> Vec<u8> {
    let mut shape = Vec::new();
    for &d in dims {
        let mut dim = Vec::new();
        varint(1 << 3, &mut dim);
        varint(d as u64, &mut dim);
        field(2, &dim, &mut shape);
    }
    let mut tensor = vec![1 << 3, 1];
    field(2, &shape, &mut tensor);
    if let Some(c) = content {
        let raw: Vec<u8> = c.iter().flat_map(|v| v.to_le_bytes()).collect();
        field(4, &raw, &mut tensor);
    }
    if !vals.is_empty() {
        let packed: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        field(5, &packed, &mut tensor);
    }
    let mut value = Vec::new();
    field(8, &tensor, &mut value);
    let mut entry = Vec::new();
    field(1, b"value", &mut entry);
    field(2, &value, &mut entry);
    let mut eps = Vec::new();
    field(1, b"epsilon", &mut eps);
    field(2, &[0x25, 0x6f, 0x12, 0x83, 0x3a], &mut eps); // float 0.001
    let mut n = Vec::new();
    field(1, name.as_bytes(), &mut n);
    field(2, op.as_bytes(), &mut n);
    field(3, b"input:0", &mut n);
    field(5, &entry, &mut n);
    field(5, &eps, &mut n);
    let mut g = Vec::new();
    field(1, &n, &mut g);
    g
}

fn graphdef_seeds() -> Vec<Vec<u8>> {
    let w: Vec<f32> = (0..36).map(|i| i as f32 / 8.0 - 2.0).collect();
    let graph = [
        node("net/conv/weights", "Const", &[3, 3, 1, 4], Some(&w), &[]),
        node("net/bn/gamma", "Const", &[4], None, &[1.0, 0.5]),
        node("net/bn/beta", "Const", &[4], None, &[]),
        node("net/bn/FusedBatchNorm", "FusedBatchNorm", &[], None, &[]),
        node("scalar", "Const", &[], None, &[2.5]),
    ]
    .concat();
    vec![
        graph,
        node("c", "Const", &[1 << 14, 1 << 14], None, &[1.0]),
        node("w", "Const", &[3], None, &[0.5, f32::NAN, 1.0]),
    ]
}

fn safetensors_seeds() -> Vec<Vec<u8>> {
    let mut w = MobileNetWeights::<f32>::new();
    w.insert(
        "MobilenetV1/Conv2d_0/weights",
        ArrayD::from_shape_fn(IxDyn(&[3, 3, 3, 2]), |i| i[3] as f32 - 0.5),
    );
    w.insert(
        "MobilenetV1/Conv2d_0/BatchNorm/gamma",
        ArrayD::ones(IxDyn(&[2])),
    );
    w.insert("scalar", ArrayD::from_elem(IxDyn(&[]), 3.0));
    let mut d = MobileNetWeights::<f64>::new();
    d.insert(
        "wide",
        ArrayD::from_shape_vec(IxDyn(&[2]), vec![1e300, -1.0]).unwrap(),
    );
    vec![w.to_safetensors().unwrap(), d.to_safetensors().unwrap()]
}

// ---------------------------------------------------------------------------
// Targets.
// ---------------------------------------------------------------------------

#[cfg(feature = "tf")]
#[test]
fn fuzz_graphdef_loader() {
    use sepconv::io::tf::GraphDefWeights;
    let allow = LoadOptions::new().with_allow_non_finite(true);
    fuzz("graphdef", graphdef_seeds(), |b| {
        let mut loaded = false;
        for opts in [LoadOptions::new(), allow] {
            if let Ok(g) = GraphDefWeights::from_bytes_with(b, &opts) {
                loaded = true;
                // What loads is consistent: every tensor holds its shape's
                // elements, and finite ones unless allowed.
                for name in g.names() {
                    let t = g.get(name).unwrap();
                    assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
                    assert!(opts.allow_non_finite || t.data.iter().all(|v| v.is_finite()));
                    let again = &g.tensor(name, &t.shape).unwrap().data;
                    assert!(
                        again
                            .iter()
                            .zip(&t.data)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                    );
                }
                for node in g.nodes() {
                    let _ = g.node_attr_f32(&node.name, "epsilon");
                }
            }
        }
        loaded
    });
}

#[test]
fn fuzz_safetensors_loader() {
    let allow = LoadOptions::new().with_allow_non_finite(true);
    fuzz("safetensors", safetensors_seeds(), |b| {
        let mut loaded = false;
        for opts in [LoadOptions::new(), allow] {
            if let Ok(w) = MobileNetWeights::<f32>::from_safetensors_with(b, &opts) {
                loaded = true;
                for name in w.names() {
                    let t = w.get(name).unwrap();
                    assert!(opts.allow_non_finite || t.iter().all(|v| v.is_finite()));
                }
                // What loads saves and loads again to the same tensors.
                let again = MobileNetWeights::<f32>::from_safetensors_with(
                    &w.to_safetensors().unwrap(),
                    &opts,
                )
                .unwrap();
                assert_eq!(again.len(), w.len());
            }
            let _ = MobileNetWeights::<f64>::from_safetensors_with(b, &opts);
        }
        loaded
    });
}

/// Reads little-endian values from fuzz bytes, zeros past the end.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    /// A size: mostly small, sometimes huge.
    fn size(&mut self) -> usize {
        match self.u8() {
            0..=199 => self.u8() as usize % 6,
            200..=219 => self.u8() as usize,
            220..=237 => 1 << (self.u8() % 64),
            _ => usize::MAX - self.u8() as usize,
        }
    }
    fn f64(&mut self) -> f64 {
        let mut b = [0u8; 8];
        b.iter_mut().for_each(|x| *x = self.u8());
        match b[0] % 4 {
            0 => f64::from_le_bytes(b),
            _ => (b[1] as f64 - 64.0) / 16.0,
        }
    }
}

/// Builds a layer and a config from `data` and asks them everything;
/// whether the config validated.
fn construct(data: &[u8]) -> bool {
    let mut r = Bytes(data);
    // At most 4096 elements, counting the non-zero axes (ndarray refuses
    // shapes whose non-zero axes overflow, even when one axis is 0).
    let small = |s: &[usize]| {
        s.iter()
            .filter(|&&d| d > 0)
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .is_some_and(|n| n <= 4096)
    };
    let kernel = [r.size(), r.size(), r.size(), r.size()];
    let padding = match r.u8() % 3 {
        0 => Padding::Valid,
        1 => Padding::Same,
        _ => Padding::Explicit {
            top: r.size(),
            bottom: r.size(),
            left: r.size(),
            right: r.size(),
        },
    };
    let (stride, dilation, groups) = ([r.size(), r.size()], [r.size(), r.size()], r.size());
    let input = [r.size(), r.size(), r.size(), r.size()];
    let activation =
        [Activation::Identity, Activation::Relu, Activation::Relu6][r.u8() as usize % 3];
    let mut layers: Vec<Box<dyn Layer<f32>>> = Vec::new();
    if small(&kernel) {
        let w = Array4::from_shape_fn(kernel, |(a, b, c, d)| (a + b + c + d) as f32 - 2.0);
        if let Ok(c) = Conv2d::builder(w.clone())
            .stride(stride)
            .dilation(dilation)
            .padding(padding)
            .groups(groups)
            .activation(activation)
            .build()
        {
            layers.push(Box::new(c));
        }
        if let Ok(d) = DepthwiseConv2d::builder(w.clone())
            .stride(stride)
            .dilation(dilation)
            .padding(padding)
            .build()
        {
            layers.push(Box::new(d));
        }
        let [a, b, ..] = kernel;
        if let Ok(p) = ndarray::Array2::from_shape_vec((a, b), vec![0.5; a * b])
            .map_err(|_| ())
            .and_then(|w| PointwiseConv2d::new(w, None).map_err(|_| ()))
        {
            layers.push(Box::new(p));
        }
    }
    let c = kernel[0];
    if c <= 4096 {
        let v = |x: f64| Array1::from_elem(c, x as f32);
        let _ = BatchNorm::new(
            v(r.f64()),
            v(r.f64()),
            v(r.f64()),
            v(r.f64()),
            r.f64() as f32,
        );
    }
    for layer in &layers {
        let _ = layer.output_shape(input);
        let _ = layer.cost(input);
        let _ = layer.scratch_len(input);
        if let Ok(out) = layer.output_shape(input)
            && small(&input)
            && small(&out)
        {
            let x = Array4::from_elem(input, 0.25f32);
            let y = layer.forward(x.view());
            assert!(
                y.is_ok() || matches!(y, Err(sepconv::Error::Unsupported(_))),
                "{y:?}"
            );
        }
    }
    // Mostly plausible knobs (so that some configurations validate), one in
    // eight anything.
    let mut knob = |plausible: usize| match r.u8() % 8 {
        0 => r.size(),
        _ => plausible + r.u8() as usize,
    };
    let (resolution, classes) = (knob(32), knob(1));
    let (depth_multiplier, min_depth) = (1 + knob(0) % 3, knob(1));
    let alpha = match r.u8() % 8 {
        0 => r.f64(),
        1 => 10f64.powi(i32::from(r.u8() % 12)),
        _ => (f64::from(r.u8()) + 1.0) / 128.0,
    };
    let config = MobileNetConfig::new()
        .with_alpha(alpha)
        .with_resolution(resolution)
        .with_classes(classes)
        .with_depth_multiplier(depth_multiplier)
        .with_min_depth(min_depth)
        .with_include_top(r.u8() % 2 == 0)
        .with_variant([Variant::Standard, Variant::Shallow, Variant::FullConv][r.u8() as usize % 3])
        .with_bn_epsilon(if r.u8() % 8 == 0 { r.f64() } else { 1e-3 });
    let valid = config.validate();
    assert_eq!(config.summary().err(), valid.clone().err());
    assert_eq!(config.layers().err(), valid.clone().err());
    if valid.is_ok() {
        let params = config.summary().unwrap().total.params.paper();
        if params <= 50_000 {
            MobileNetWeights::<f32>::seeded(&config, 1).unwrap();
        }
    }
    valid.is_ok()
}

fn construct_seeds() -> Vec<Vec<u8>> {
    vec![
        vec![0u8; 64],
        // A 3×3 conv, SAME, stride 1, on [1, 8, 8, 3]; then a config.
        vec![
            0, 3, 0, 3, 0, 3, 0, 4, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 8, 0, 8, 0, 3, 0, 1,
            1, 68, 0, 0, 0, 0, 0, 0, 200, 64, 200, 10, 0, 1, 0, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        ],
        (0..=255).collect(),
    ]
}

#[test]
fn fuzz_layer_and_config_construction() {
    fuzz("construct", construct_seeds(), construct);
}

/// Writes the built seeds into the corpus (run once with
/// `SEPCONV_FUZZ_WRITE_SEEDS=1`; the files are committed).
#[test]
fn write_seeds_when_asked() {
    if std::env::var_os("SEPCONV_FUZZ_WRITE_SEEDS").is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    for (target, seeds, ext) in [
        ("graphdef", graphdef_seeds(), "pb"),
        ("safetensors", safetensors_seeds(), "safetensors"),
        ("construct", construct_seeds(), "bin"),
    ] {
        std::fs::create_dir_all(root.join(target)).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(root.join(target).join(format!("seed{i}.{ext}")), s).unwrap();
        }
    }
}
