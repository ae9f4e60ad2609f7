//! Seeded weight initializers (He and Glorot, normal and uniform) and the
//! crate's one random generator, [`SplitMix64`].
//!
//! Everything here is deterministic: the same seed gives the same bits on
//! every machine, so a network can be built and run without an RNG crate, and
//! a test or benchmark sees the same weights on every run.
//!
//! [`Init`] draws arrays in the crate's weight layouts, element by element in
//! standard (row-major) order, computing in f64 and rounding once to `F`:
//!
//! | method | shape | fan-in | fan-out |
//! | --- | --- | --- | --- |
//! | [`Init::conv2d`] | HWIO `[kh, kw, C_in / groups, C_out]` | `kh·kw·C_in/groups` | `kh·kw·C_out` |
//! | [`Init::depthwise`] | `[kh, kw, C, m]` | `kh·kw` | `kh·kw·m` |
//! | [`Init::dense`] | `[in, out]` (also pointwise `[C_in, C_out]`) | `in` | `out` |
//!
//! ```
//! use ndarray::Array4;
//! use sepconv::DepthwiseConv2d;
//! use sepconv::init::{Init, SplitMix64};
//!
//! let mut rng = SplitMix64::new(42);
//! let w = Init::HeNormal.depthwise::<f32>([3, 3, 16, 1], &mut rng)?;
//! let x = Array4::<f32>::ones((1, 8, 8, 16));
//! let y = DepthwiseConv2d::builder(w).build()?.forward(x.view())?;
//! assert_eq!(y.shape(), &[1, 6, 6, 16]);
//! # Ok::<(), sepconv::Error>(())
//! ```

use ndarray::{Array2, Array4};

use crate::Float;
use crate::error::{Error, Result, Shape};

/// The most elements one initializer call draws: 2³² (16 GiB of f32).
///
/// Larger shapes are refused with [`Error::InvalidParameter`] before anything
/// is allocated, whatever the operating system's overcommit policy; no weight
/// tensor of a CPU network comes near it.
pub const MAX_ELEMENTS: u64 = 1 << 32;

/// splitmix64 (Steele, Lea & Flood 2014; Vigna's reference `splitmix64.c`):
/// a 64-bit state advanced by the golden-ratio increment, each output a
/// bijective mix of the state.
///
/// Small, fast and well mixed; meant for initialization and test data, not
/// for cryptography.
///
/// ```
/// use sepconv::init::SplitMix64;
/// let mut rng = SplitMix64::new(0);
/// assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
/// let u = rng.uniform();
/// assert!(0.0 < u && u < 1.0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose first output is the splitmix64 mix of
    /// `seed + 0x9E3779B97F4A7C15`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1): the top 53 bits of one
    /// [`next_u64`](Self::next_u64), plus ½, over 2⁵³. Never 0 or 1, so its
    /// logarithm is finite.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// `lo + (hi − lo)·u` with `u` from [`uniform`](Self::uniform): uniform
    /// between `lo` and `hi` (an endpoint only through rounding).
    #[inline]
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (mean 0, variance 1) by Box–Muller from two
    /// [`uniform`](Self::uniform)s `u, v`: `√(−2 ln u)·cos(2πv)`. The sine
    /// half is discarded, so every call takes exactly two outputs.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A variance-scaling initializer. See the [module docs](self) for the fan-in
/// and fan-out of each layout.
///
/// The normal ones are plain (not truncated) normals, as PyTorch's
/// `kaiming_normal_` / `xavier_normal_`; He uses fan-in mode with the ReLU
/// gain 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Init {
    /// He (Kaiming) normal: mean 0, std `√(2 / fan_in)`.
    HeNormal,
    /// He (Kaiming) uniform: uniform in `[−limit, limit]`, limit `√(6 / fan_in)`.
    HeUniform,
    /// Glorot (Xavier) normal: mean 0, std `√(2 / (fan_in + fan_out))`.
    GlorotNormal,
    /// Glorot (Xavier) uniform: uniform in `[−limit, limit]`, limit
    /// `√(6 / (fan_in + fan_out))`.
    GlorotUniform,
}

impl Init {
    /// Standard conv weights, HWIO `[kh, kw, C_in / groups, C_out]`:
    /// fan-in `kh·kw·C_in/groups`, fan-out `kh·kw·C_out`.
    ///
    /// # Errors
    /// As [`dense`](Self::dense).
    pub fn conv2d<F: Float>(self, shape: [usize; 4], rng: &mut SplitMix64) -> Result<Array4<F>> {
        let data = self.draw("Init::conv2d shape", &shape, rng, |[kh, kw, ci, co]| {
            (kh * kw * ci, kh * kw * co)
        })?;
        Array4::from_shape_vec(shape, data).map_err(|_| Error::Overflow("Init::conv2d shape"))
    }

    /// Depthwise weights `[kh, kw, C, m]` (output channel `c·m + j`): each
    /// output sees `kh·kw` inputs and each input feeds `kh·kw·m` outputs, so
    /// fan-in `kh·kw`, fan-out `kh·kw·m`.
    ///
    /// # Errors
    /// As [`dense`](Self::dense).
    pub fn depthwise<F: Float>(self, shape: [usize; 4], rng: &mut SplitMix64) -> Result<Array4<F>> {
        let data = self.draw("Init::depthwise shape", &shape, rng, |[kh, kw, _, m]| {
            (kh * kw, kh * kw * m)
        })?;
        Array4::from_shape_vec(shape, data).map_err(|_| Error::Overflow("Init::depthwise shape"))
    }

    /// Dense (and pointwise `[C_in, C_out]`) weights `[in, out]`: fan-in `in`,
    /// fan-out `out`.
    ///
    /// # Errors
    /// - [`Error::ZeroSize`] if a dimension is 0;
    /// - [`Error::Overflow`] if the element count overflows `usize` or the
    ///   array cannot be allocated;
    /// - [`Error::InvalidParameter`] if it exceeds [`MAX_ELEMENTS`] (checked
    ///   before allocating).
    pub fn dense<F: Float>(self, shape: [usize; 2], rng: &mut SplitMix64) -> Result<Array2<F>> {
        let data = self.draw("Init::dense shape", &shape, rng, |[i, o]| (i, o))?;
        Array2::from_shape_vec(shape, data).map_err(|_| Error::Overflow("Init::dense shape"))
    }

    /// `n` values for `shape` in standard order, after checking its size;
    /// `fans` maps the (non-zero, non-overflowing) shape to (fan-in, fan-out).
    fn draw<F: Float, const N: usize>(
        self,
        what: &'static str,
        shape: &[usize; N],
        rng: &mut SplitMix64,
        fans: impl FnOnce([usize; N]) -> (usize, usize),
    ) -> Result<Vec<F>> {
        if shape.contains(&0) {
            return Err(Error::ZeroSize {
                what: what.into(),
                shape: Shape::from(*shape),
            });
        }
        let n = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or(Error::Overflow(what))?;
        if n as u64 > MAX_ELEMENTS {
            return Err(Error::param(
                "initializer shape",
                Shape::from(*shape),
                format!("{n} elements exceed init::MAX_ELEMENTS = 2^32"),
            ));
        }
        // Both fans are products of some of the dimensions, all ≥ 1, so they
        // are at most n and cannot overflow.
        let (fan_in, fan_out) = fans(*shape);
        let mut data = Vec::new();
        data.try_reserve_exact(n)
            .map_err(|_| Error::Overflow("initializer allocation"))?;
        // Normal: std; uniform: limit.
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        let (normal, scale) = match self {
            Init::HeNormal => (true, (2.0 / fi).sqrt()),
            Init::HeUniform => (false, (6.0 / fi).sqrt()),
            Init::GlorotNormal => (true, (2.0 / (fi + fo)).sqrt()),
            Init::GlorotUniform => (false, (6.0 / (fi + fo)).sqrt()),
        };
        data.extend((0..n).map(|_| {
            F::from_f64_lossy(if normal {
                rng.normal() * scale
            } else {
                rng.uniform_in(-scale, scale)
            })
        }));
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Init; 4] = [
        Init::HeNormal,
        Init::HeUniform,
        Init::GlorotNormal,
        Init::GlorotUniform,
    ];

    /// Std (normal) or limit (uniform) of `init` for the given fans.
    fn scale(init: Init, fan_in: usize, fan_out: usize) -> f64 {
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        match init {
            Init::HeNormal => (2.0 / fi).sqrt(),
            Init::HeUniform => (6.0 / fi).sqrt(),
            Init::GlorotNormal => (2.0 / (fi + fo)).sqrt(),
            Init::GlorotUniform => (6.0 / (fi + fo)).sqrt(),
        }
    }

    #[test]
    fn splitmix64_matches_the_reference_outputs_for_seed_0() {
        // Vigna's splitmix64.c with x = 0 (checked against an independent
        // implementation of the same three lines).
        let mut rng = SplitMix64::new(0);
        let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                0xe220_a839_7b1d_cdaf,
                0x6e78_9e6a_a1b9_65f4,
                0x06c4_5d18_8009_454f,
                0xf88b_b8a8_724c_81ec,
            ]
        );
    }

    #[test]
    fn uniform_and_normal_are_built_from_next_u64() {
        let (mut a, mut b) = (SplitMix64::new(9), SplitMix64::new(9));
        let u = a.uniform();
        assert_eq!(
            u,
            ((b.next_u64() >> 11) as f64 + 0.5) / 9_007_199_254_740_992.0
        );
        assert_eq!(a.uniform_in(-3.0, 5.0), -3.0 + 8.0 * b.uniform());
        let n = a.normal();
        let (u, v) = (b.uniform(), b.uniform());
        assert_eq!(
            n,
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        );
        assert_eq!(a, b, "normal takes exactly two outputs");
    }

    #[test]
    fn uniform_stays_inside_the_open_unit_interval() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..100_000 {
            let u = rng.uniform();
            assert!(0.0 < u && u < 1.0, "{u}");
        }
    }

    #[test]
    fn statistics_match_the_formulas() {
        // 100 000 samples with different fans so He and Glorot differ.
        let (fan_in, fan_out) = (250, 400);
        for (k, init) in ALL.into_iter().enumerate() {
            let w = init
                .dense::<f64>([fan_in, fan_out], &mut SplitMix64::new(k as u64))
                .unwrap();
            let n = w.len() as f64;
            let mean = w.sum() / n;
            let std = (w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let s = scale(init, fan_in, fan_out);
            let (expected_std, uniform) = match init {
                Init::HeUniform | Init::GlorotUniform => (s / 3f64.sqrt(), true),
                _ => (s, false),
            };
            assert!(mean.abs() < 0.02 * expected_std, "{init:?}: mean {mean}");
            assert!(
                (std / expected_std - 1.0).abs() < 0.02,
                "{init:?}: std {std}, expected {expected_std}"
            );
            if uniform {
                let max = w.iter().fold(0f64, |m, x| m.max(x.abs()));
                assert!(
                    max <= s && max > 0.999 * s,
                    "{init:?}: max |w| {max}, limit {s}"
                );
            }
        }
    }

    #[test]
    fn each_layout_uses_its_fans_in_standard_order() {
        // Recompute each array from the generator directly: this pins the fans,
        // the draw order and the single rounding to f32.
        let cases: [(&str, [usize; 4], usize, usize); 2] = [
            ("conv2d", [3, 2, 5, 7], 3 * 2 * 5, 3 * 2 * 7),
            ("depthwise", [3, 2, 5, 4], 3 * 2, 3 * 2 * 4),
        ];
        for init in ALL {
            for (layout, shape, fan_in, fan_out) in cases {
                let mut rng = SplitMix64::new(11);
                let w = match layout {
                    "conv2d" => init.conv2d::<f32>(shape, &mut rng),
                    _ => init.depthwise::<f32>(shape, &mut rng),
                }
                .unwrap();
                let expected = manual(init, w.len(), fan_in, fan_out);
                assert_eq!(w.shape(), shape);
                assert_eq!(
                    w.iter().copied().collect::<Vec<_>>(),
                    expected,
                    "{init:?} {layout}"
                );
            }
            let w = init.dense::<f32>([6, 9], &mut SplitMix64::new(11)).unwrap();
            assert_eq!(
                w.iter().copied().collect::<Vec<_>>(),
                manual(init, 54, 6, 9)
            );
        }
    }

    fn manual(init: Init, n: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
        let mut rng = SplitMix64::new(11);
        let s = scale(init, fan_in, fan_out);
        (0..n)
            .map(|_| match init {
                Init::HeNormal | Init::GlorotNormal => rng.normal() * s,
                Init::HeUniform | Init::GlorotUniform => rng.uniform_in(-s, s),
            } as f32)
            .collect()
    }

    #[test]
    fn same_seed_same_bits_other_seed_other_bits() {
        for init in ALL {
            let draw = |seed| {
                init.conv2d::<f64>([3, 3, 4, 8], &mut SplitMix64::new(seed))
                    .unwrap()
                    .mapv(f64::to_bits)
            };
            assert_eq!(draw(5), draw(5), "{init:?}");
            assert_ne!(draw(5), draw(6), "{init:?}");
        }
        // One generator continues where the last array stopped.
        let mut rng = SplitMix64::new(5);
        let a = Init::HeNormal.dense::<f64>([4, 4], &mut rng).unwrap();
        let b = Init::HeNormal.dense::<f64>([4, 4], &mut rng).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let rng = &mut SplitMix64::new(0);
        assert!(matches!(
            Init::HeNormal.depthwise::<f32>([3, 3, 0, 1], rng),
            Err(Error::ZeroSize { shape, .. }) if shape == Shape(vec![3, 3, 0, 1])
        ));
        assert!(matches!(
            Init::GlorotUniform.dense::<f64>([usize::MAX, 2], rng),
            Err(Error::Overflow(_))
        ));
        // 2^60 and 2^40 elements: refused before anything is allocated.
        for init in ALL {
            assert!(
                init.conv2d::<f32>([1 << 20, 1 << 20, 1 << 20, 1], rng)
                    .is_err()
            );
            assert!(
                init.conv2d::<f64>([1 << 20, 1 << 20, 1 << 20, 1], rng)
                    .is_err()
            );
            assert!(matches!(
                init.dense::<f32>([1 << 20, 1 << 20], rng),
                Err(Error::InvalidParameter { .. })
            ));
        }
        // Nothing was drawn by the refused calls.
        assert_eq!(*rng, SplitMix64::new(0));
    }
}
