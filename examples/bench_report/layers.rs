//! The layers suite: MobileNet v1's nine separable block shapes, a standard
//! 3×3 conv against depthwise 3×3 + pointwise, timed in alternating runs.

use std::hint::black_box;
use std::time::Instant;

use ndarray::{Array2, Array4};
use sepconv::init::SplitMix64;
use sepconv::mobilenet::{LayerKind, MobileNetConfig};
use sepconv::{Conv2d, DepthwiseConv2d, Padding, PointwiseConv2d};

use crate::args::Options;
use crate::support;

/// One depthwise separable block of 1.0 MobileNet-224.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Input height = width.
    pub size: usize,
    pub cin: usize,
    pub cout: usize,
    pub stride: usize,
}

impl Block {
    /// `14x14x512->512`, as in `benches/layers.rs` without the `sep/` prefix.
    pub fn shape(&self) -> String {
        format!("{0}x{0}x{1}->{2}", self.size, self.cin, self.cout)
    }

    /// `sep/14x14x512->512`, `sep/112x112x64->128/s2`: the criterion group of `benches/layers.rs`.
    pub fn name(&self) -> String {
        match self.stride {
            1 => format!("sep/{}", self.shape()),
            s => format!("sep/{}/s{s}", self.shape()),
        }
    }
}

/// The distinct (depthwise, pointwise) pairs of 1.0 MobileNet-224, in
/// network order, read off the architecture itself.
pub fn blocks() -> Vec<Block> {
    let specs = MobileNetConfig::new()
        .layers()
        .expect("the default config is valid");
    let mut out: Vec<Block> = Vec::new();
    for pair in specs.windows(2) {
        if let [dw, pw] = pair
            && dw.kind == LayerKind::Depthwise
            && pw.kind == LayerKind::Pointwise
        {
            let b = Block {
                size: dw.input[0],
                cin: dw.input[2],
                cout: pw.output[2],
                stride: dw.stride,
            };
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out
}

/// Standard / separable mult-adds, checked against the paper's closed form:
/// sep / std = 1/N + 1/9 for a 3×3 kernel. Checked three ways: in integers
/// (std·(9 + N) = sep·9·N), the f64 quotient equal to 9N/(9 + N) to the last
/// bit (both are the correctly rounded value of the same rational), and
/// equal to 1/(1/N + 1/9) to 12 significant digits (that form rounds four
/// times).
pub fn analytic_ratio(standard: u64, separable: u64, n: u64) -> Result<f64, String> {
    if standard * (9 + n) != separable * 9 * n {
        return Err(format!(
            "cost model: {standard} / {separable} mult-adds is not 9N/(9+N) for N = {n}"
        ));
    }
    let ratio = standard as f64 / separable as f64;
    let closed = (9 * n) as f64 / (9 + n) as f64;
    let paper = 1.0 / (1.0 / n as f64 + 1.0 / 9.0);
    if ratio != closed || (ratio - paper).abs() > 1e-12 * ratio {
        return Err(format!(
            "ratio {ratio} ≠ 9N/(9+N) = {closed} or 1/(1/N + 1/9) = {paper} for N = {n}"
        ));
    }
    Ok(ratio)
}

/// Deterministic uniform f32 values from the crate's [`SplitMix64`], without
/// a `rand` dependency.
pub struct Rng(pub SplitMix64);

impl Rng {
    /// Uniform in [0, 1), from the top 24 bits (exact in f32).
    pub fn next(&mut self) -> f32 {
        (self.0.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [−a, a): 1/√fan_in weights keep activations O(1) (no
    /// subnormals to slow anything down).
    pub fn array4(&mut self, shape: [usize; 4], a: f32) -> Array4<f32> {
        Array4::from_shape_simple_fn(shape, || a * (2.0 * self.next() - 1.0))
    }

    pub fn array2(&mut self, shape: [usize; 2], a: f32) -> Array2<f32> {
        Array2::from_shape_simple_fn(shape, || a * (2.0 * self.next() - 1.0))
    }
}

#[derive(Clone, Debug)]
pub struct LayerResult {
    pub block: Block,
    pub madds_standard: u64,
    pub madds_separable: u64,
    pub analytic_ratio: f64,
    pub ms_standard: f64,
    pub ms_separable: f64,
}

impl LayerResult {
    pub fn measured_ratio(&self) -> f64 {
        self.ms_standard / self.ms_separable
    }
    pub fn gmacs_standard(&self) -> f64 {
        gmacs(self.madds_standard, self.ms_standard)
    }
    pub fn gmacs_separable(&self) -> f64 {
        gmacs(self.madds_separable, self.ms_separable)
    }
}

pub fn gmacs(madds: u64, ms: f64) -> f64 {
    madds as f64 / (ms * 1e6)
}

pub fn time_block(b: Block, o: &Options, rng: &mut Rng) -> Result<LayerResult, String> {
    let e = |e: sepconv::Error| format!("{}: {e}", b.name());
    let fan = |n: usize| 1.0 / (n as f32).sqrt();
    let standard = Conv2d::builder(rng.array4([3, 3, b.cin, b.cout], fan(9 * b.cin)))
        .stride(b.stride)
        .padding(Padding::Same)
        .build()
        .map_err(e)?;
    let depthwise = DepthwiseConv2d::builder(rng.array4([3, 3, b.cin, 1], fan(9)))
        .stride(b.stride)
        .padding(Padding::Same)
        .build()
        .map_err(e)?;
    let pointwise =
        PointwiseConv2d::new(rng.array2([b.cin, b.cout], fan(b.cin)), None).map_err(e)?;

    let input = [1, b.size, b.size, b.cin];
    let x = rng.array4(input, 1.0);
    let mid_shape = depthwise.output_shape(input).map_err(e)?;
    let out_shape = pointwise.output_shape(mid_shape).map_err(e)?;
    if standard.output_shape(input).map_err(e)? != out_shape {
        return Err(format!(
            "{}: standard and separable shapes differ",
            b.name()
        ));
    }
    let mut mid = Array4::<f32>::zeros(mid_shape);
    let mut out_std = Array4::<f32>::zeros(out_shape);
    let mut out_sep = Array4::<f32>::zeros(out_shape);

    let madds_standard = standard.cost(input).map_err(e)?.mult_adds;
    let madds_separable = depthwise.cost(input).map_err(e)?.mult_adds
        + pointwise.cost(mid_shape).map_err(e)?.mult_adds;
    let analytic_ratio = analytic_ratio(madds_standard, madds_separable, b.cout as u64)?;

    let (mut t_std, mut t_sep) = (Vec::new(), Vec::new());
    for run in 0..o.warmup + o.runs {
        let t = Instant::now();
        standard
            .forward_into(black_box(x.view()), out_std.view_mut())
            .map_err(e)?;
        black_box(&mut out_std);
        let std_time = t.elapsed();
        let t = Instant::now();
        depthwise
            .forward_into(black_box(x.view()), mid.view_mut())
            .map_err(e)?;
        pointwise
            .forward_into(mid.view(), out_sep.view_mut())
            .map_err(e)?;
        black_box(&mut out_sep);
        let sep_time = t.elapsed();
        if run >= o.warmup {
            t_std.push(std_time);
            t_sep.push(sep_time);
        }
    }
    Ok(LayerResult {
        block: b,
        madds_standard,
        madds_separable,
        analytic_ratio,
        ms_standard: support::median_ms(t_std),
        ms_separable: support::median_ms(t_sep),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same nine shapes, in the same order and with the same names, as
    /// the criterion groups of benches/layers.rs.
    #[test]
    fn blocks_are_the_layer_bench_groups() {
        let names: Vec<String> = blocks().iter().map(Block::name).collect();
        assert_eq!(
            names,
            [
                "sep/112x112x32->64",
                "sep/112x112x64->128/s2",
                "sep/56x56x128->128",
                "sep/56x56x128->256/s2",
                "sep/28x28x256->256",
                "sep/28x28x256->512/s2",
                "sep/14x14x512->512",
                "sep/14x14x512->1024/s2",
                "sep/7x7x1024->1024",
            ]
        );
    }

    #[test]
    fn the_papers_ratio() {
        // Table 3's layer: 462,422,016 vs 52,283,392 mult-adds.
        let r = analytic_ratio(462_422_016, 52_283_392, 512).unwrap();
        assert_eq!(format!("{r:.4}"), "8.8445");
        assert_eq!(r, 4608.0 / 521.0);
        assert!(analytic_ratio(462_422_016, 52_283_393, 512).is_err());
    }
}
