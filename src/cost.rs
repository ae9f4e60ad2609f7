//! The cost model: mult-adds and parameters from shapes alone.
//!
//! # Convention (the MobileNet paper's)
//!
//! - A **mult-add** is one multiplication plus one addition; 1 mult-add = 2
//!   FLOPs. Counted: the multiplications of convolution and fully connected
//!   layers. Not counted: bias additions, BatchNorm, activations, pooling,
//!   softmax.
//! - **Parameters** are reported in parts: conv/FC `weights` (the paper's
//!   figure), `biases`, BatchNorm `bn_affine` (γ and β) and `bn_stats` (moving
//!   mean and variance). [`Params::paper`] is the paper's count,
//!   [`Params::total`] what a framework stores (Keras' 4,253,864 for 1.0-224).
//! - A layer's cost is for the whole batch of the input shape given; pass a
//!   batch of 1 for the per-image figure the paper quotes.
//!
//! ```
//! use sepconv::cost;
//! // One 14×14×512 → 512 layer, 3×3, stride 1, SAME (the paper's Table 3 example).
//! let standard = cost::conv2d([1, 14, 14], [3, 3], 512, 512, 1, false)?;
//! let separable = cost::depthwise([1, 14, 14], [3, 3], 512, 1, false)?
//!     + cost::pointwise([1, 14, 14], 512, 512, false)?;
//! assert_eq!(standard.mult_adds, 462_422_016);
//! assert_eq!(separable.mult_adds, 52_283_392);
//! # Ok::<(), sepconv::Error>(())
//! ```

use std::iter::Sum;
use std::ops::{Add, AddAssign};

use crate::error::{Error, Result};

/// Parameter counts, by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Params {
    /// Convolution and fully connected weights (the paper's count).
    pub weights: u64,
    /// Bias vectors.
    pub biases: u64,
    /// BatchNorm γ and β.
    pub bn_affine: u64,
    /// BatchNorm moving mean and moving variance.
    pub bn_stats: u64,
}

impl Params {
    /// The paper's parameter count: weights only.
    pub fn paper(&self) -> u64 {
        self.weights
    }

    /// Everything stored: weights, biases, BN γ, β, mean and variance.
    pub fn total(&self) -> u64 {
        self.weights + self.biases + self.bn_affine + self.bn_stats
    }
}

impl Add for Params {
    type Output = Params;
    fn add(self, o: Params) -> Params {
        Params {
            weights: self.weights + o.weights,
            biases: self.biases + o.biases,
            bn_affine: self.bn_affine + o.bn_affine,
            bn_stats: self.bn_stats + o.bn_stats,
        }
    }
}

/// The cost of a layer or a network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Cost {
    /// Multiply-accumulates (the paper's "mult-adds").
    pub mult_adds: u64,
    /// Parameters, by part.
    pub params: Params,
}

impl Cost {
    /// Floating-point operations, counting a mult-add as 2.
    pub fn flops(&self) -> u64 {
        2 * self.mult_adds
    }

    /// `self + o`, or [`Error::Overflow`] naming `what` when a count
    /// overflows `u64` (the sum of a network's layers).
    ///
    /// # Errors
    /// [`Error::Overflow`].
    pub fn checked_add(self, o: Cost, what: &'static str) -> Result<Cost> {
        let add = |a: u64, b: u64| a.checked_add(b).ok_or(Error::Overflow(what));
        Ok(Cost {
            mult_adds: add(self.mult_adds, o.mult_adds)?,
            params: Params {
                weights: add(self.params.weights, o.params.weights)?,
                biases: add(self.params.biases, o.params.biases)?,
                bn_affine: add(self.params.bn_affine, o.params.bn_affine)?,
                bn_stats: add(self.params.bn_stats, o.params.bn_stats)?,
            },
        })
    }
}

/// `568,740,352 mult-adds, 4,209,088 weights (4,253,864 parameters stored)`:
/// the paper's two figures, then everything stored (biases and BatchNorm
/// included).
///
/// ```
/// let c = sepconv::mobilenet::MobileNetConfig::new().summary()?.total;
/// assert_eq!(
///     c.to_string(),
///     "568,740,352 mult-adds, 4,209,088 weights (4,253,864 parameters stored)"
/// );
/// # Ok::<(), sepconv::Error>(())
/// ```
impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::net::summary::thousands;
        write!(
            f,
            "{} mult-adds, {} weights ({} parameters stored)",
            thousands(self.mult_adds),
            thousands(self.params.weights),
            thousands(self.params.total())
        )
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            mult_adds: self.mult_adds + o.mult_adds,
            params: self.params + o.params,
        }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        *self = *self + o;
    }
}

impl Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::default(), Add::add)
    }
}

fn product(what: &'static str, factors: &[usize]) -> Result<u64> {
    factors.iter().try_fold(1u64, |acc, &f| {
        u64::try_from(f)
            .ok()
            .and_then(|f| acc.checked_mul(f))
            .ok_or(Error::Overflow(what))
    })
}

/// A standard (optionally grouped) convolution producing `out` = [N, OH, OW]
/// pixels with a `kernel` = [kh, kw] filter: N·OH·OW·kh·kw·(C_in/groups)·C_out
/// mult-adds and kh·kw·(C_in/groups)·C_out weights.
///
/// # Errors
/// [`Error::InvalidGroups`] when `groups` does not divide both channel
/// counts; [`Error::Overflow`].
pub fn conv2d(
    out: [usize; 3],
    kernel: [usize; 2],
    in_channels: usize,
    out_channels: usize,
    groups: usize,
    bias: bool,
) -> Result<Cost> {
    if groups == 0 || !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        return Err(Error::InvalidGroups {
            groups,
            in_channels,
            out_channels,
        });
    }
    let weights = product(
        "conv weights",
        &[kernel[0], kernel[1], in_channels / groups, out_channels],
    )?;
    Ok(Cost {
        mult_adds: product("conv mult-adds", &[out[0], out[1], out[2]])?
            .checked_mul(weights)
            .ok_or(Error::Overflow("conv mult-adds"))?,
        params: Params {
            weights,
            biases: if bias { out_channels as u64 } else { 0 },
            ..Params::default()
        },
    })
}

/// A depthwise convolution of `channels` inputs with `multiplier` filters
/// each: the grouped conv with groups = C_in and C_out = C_in·multiplier.
///
/// # Errors
/// [`Error::Overflow`].
pub fn depthwise(
    out: [usize; 3],
    kernel: [usize; 2],
    channels: usize,
    multiplier: usize,
    bias: bool,
) -> Result<Cost> {
    let out_channels = channels
        .checked_mul(multiplier)
        .ok_or(Error::Overflow("depthwise channels"))?;
    conv2d(out, kernel, channels, out_channels, channels.max(1), bias)
}

/// A pointwise (1×1) convolution on `pixels` = [N, H, W].
///
/// # Errors
/// [`Error::Overflow`].
pub fn pointwise(
    pixels: [usize; 3],
    in_channels: usize,
    out_channels: usize,
    bias: bool,
) -> Result<Cost> {
    conv2d(pixels, [1, 1], in_channels, out_channels, 1, bias)
}

/// Inference BatchNorm over `channels`: no mult-adds in the paper's
/// convention, 2·C affine and 2·C statistics parameters.
pub fn batch_norm(channels: usize) -> Cost {
    Cost {
        mult_adds: 0,
        params: Params {
            bn_affine: 2 * channels as u64,
            bn_stats: 2 * channels as u64,
            ..Params::default()
        },
    }
}

/// A fully connected layer, `inputs` → `outputs` per image, over a batch.
///
/// # Errors
/// [`Error::Overflow`].
pub fn fully_connected(batch: usize, inputs: usize, outputs: usize, bias: bool) -> Result<Cost> {
    pointwise([batch, 1, 1], inputs, outputs, bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_over_standard_is_one_over_n_plus_one_over_k2() {
        for n in [64usize, 128, 256, 512, 1024] {
            let std = conv2d([1, 14, 14], [3, 3], 512, n, 1, false).unwrap();
            let sep = depthwise([1, 14, 14], [3, 3], 512, 1, false).unwrap()
                + pointwise([1, 14, 14], 512, n, false).unwrap();
            // sep / std = (9·M + M·N) / (9·M·N) = 1/N + 1/9 exactly, as integers:
            assert_eq!(sep.mult_adds * 9 * n as u64, std.mult_adds * (9 + n as u64));
        }
    }

    #[test]
    fn parts_are_separate() {
        let c = conv2d([2, 4, 4], [3, 3], 4, 8, 2, true).unwrap() + batch_norm(8);
        assert_eq!(c.params.weights, 3 * 3 * 2 * 8);
        assert_eq!(c.params.biases, 8);
        assert_eq!(c.params.bn_affine, 16);
        assert_eq!(c.params.bn_stats, 16);
        assert_eq!(c.params.paper(), 144);
        assert_eq!(c.params.total(), 144 + 8 + 32);
        assert_eq!(c.mult_adds, 2 * 16 * 144);
        assert_eq!(c.flops(), 2 * c.mult_adds);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            conv2d([1, 1, 1], [1, 1], 3, 4, 2, false),
            Err(Error::InvalidGroups { groups: 2, .. })
        ));
        assert_eq!(
            conv2d([usize::MAX, 2, 2], [3, 3], 8, 8, 1, false),
            Err(Error::Overflow("conv mult-adds"))
        );
    }
}
