//! A small separable CNN built from the public API alone: a 3×3 stride-2
//! stem, three depthwise-separable blocks (one inside a residual), global
//! average pooling and a dense classifier, with seeded weights from
//! `sepconv::init`. It prints the network's summary, runs a batch of seeded
//! random images on a chosen number of threads, and prints each image's
//! class scores.
//!
//! ```text
//! cargo run --release --example custom_net -- --batch 4 --threads 2
//! cargo run --release --example custom_net -- --resolution 96 --seed 7
//! ```

#[path = "support/mod.rs"]
mod support;

use ndarray::Array4;
use sepconv::init::{Init, SplitMix64};
use sepconv::mobilenet::{softmax, top_k};
use sepconv::{
    Activation, Conv2d, Dense, GlobalAvgPool, Layer, Padding, Residual, SeparableConv2d, Sequential,
};

const HELP: &str = "\
custom_net: a small separable CNN with a residual block (seeded weights): summary and class scores

usage: cargo run --release --example custom_net -- [OPTIONS]

  --batch N            images per forward (default 4)
  --threads T          rayon threads (default 2; 0: all cores)
  --resolution R       input side (default 64)
  --seed S             weight and input seed (default 0)
  -h, --help           this text";

/// Classifier outputs.
const CLASSES: usize = 10;

/// A 3×3 depthwise-separable block `c_in → c_out`, ReLU6 after both convs.
fn separable(
    c_in: usize,
    c_out: usize,
    stride: usize,
    rng: &mut SplitMix64,
) -> sepconv::Result<SeparableConv2d<f32>> {
    SeparableConv2d::builder(
        Init::HeNormal.depthwise([3, 3, c_in, 1], rng)?,
        Init::HeNormal.dense([c_in, c_out], rng)?,
    )
    .stride(stride)
    .padding(Padding::Same)
    .depthwise_activation(Activation::Relu6)
    .activation(Activation::Relu6)
    .build()
}

/// Stem 3 → 16 (stride 2), blocks 16 → 32, 32 → 32 (residual), 32 → 64
/// (stride 2), global average pooling, dense 64 → 10.
fn build(rng: &mut SplitMix64) -> sepconv::Result<Sequential<f32>> {
    let stem = Conv2d::builder(Init::HeNormal.conv2d([3, 3, 3, 16], rng)?)
        .stride(2)
        .padding(Padding::Same)
        .activation(Activation::Relu6)
        .build()?;
    Ok(Sequential::new()
        .with_named("stem", stem)
        .with_named("block1", separable(16, 32, 1, rng)?)
        .with_named(
            "block2",
            Residual::new(Sequential::new().with_named("sep", separable(32, 32, 1, rng)?)),
        )
        .with_named("block3", separable(32, 64, 2, rng)?)
        .with_named("pool", GlobalAvgPool)
        .with_named(
            "logits",
            Dense::new(Init::GlorotUniform.dense([64, CLASSES], rng)?, None)?,
        ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use lexopt::prelude::*;
    let (mut batch, mut threads, mut resolution, mut seed) = (4usize, 2usize, 64usize, 0u64);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                println!("{HELP}");
                return Ok(());
            }
            Long("batch") => batch = support::value(&mut parser, "--batch")?,
            Long("threads") => threads = support::value(&mut parser, "--threads")?,
            Long("resolution") => resolution = support::value(&mut parser, "--resolution")?,
            Long("seed") => seed = support::value(&mut parser, "--seed")?,
            _ => return Err(format!("{}; see --help", arg.unexpected()).into()),
        }
    }
    if batch == 0 || resolution == 0 {
        return Err("--batch and --resolution must be ≥ 1".into());
    }

    let mut rng = SplitMix64::new(seed);
    let net = build(&mut rng)?;
    let input = [batch, resolution, resolution, 3];
    println!("{}", net.summary(input)?.to_text());

    let x = Array4::from_shape_simple_fn(input, || rng.uniform_in(-1.0, 1.0) as f32);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let logits = pool.install(|| net.forward(x.view()))?;
    let scores = softmax(logits.into_shape_with_order((batch, CLASSES))?.view());

    println!(
        "class scores (untrained, {batch} seeded random images in [-1, 1], {} threads):",
        pool.current_num_threads()
    );
    for (i, row) in scores.rows().into_iter().enumerate() {
        let (top, p) = top_k(row, 1)[0];
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.3}")).collect();
        println!("image {i}: [{}]  top class {top} ({p:.3})", cells.join(" "));
    }
    Ok(())
}
