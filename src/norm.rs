//! Inference BatchNorm, and folding it into the convolution before it.
//!
//! ```
//! use ndarray::{Array1, Array4};
//! use sepconv::{BatchNorm, Conv2d};
//! // γ = 2, β = 1, mean = 0, variance = 1 (ε = 0): y = 2x + 1.
//! let bn = BatchNorm::new(Array1::from_elem(2, 2.0_f64), Array1::ones(2), Array1::zeros(2), Array1::ones(2), 0.0)?;
//! let x = Array4::from_elem((1, 2, 2, 2), 3.0);
//! assert!(bn.forward(x.view())?.iter().all(|&v| v == 7.0));
//! // Folded into the conv before it, the pair is one conv.
//! let conv = Conv2d::builder(Array4::ones((1, 1, 2, 2))).build()?;
//! let folded = conv.fold_batch_norm(&bn)?;
//! assert_eq!(folded.forward(x.view())?, bn.forward(conv.forward(x.view())?.view())?);
//! # Ok::<(), sepconv::Error>(())
//! ```

use ndarray::{Array1, Array4, ArrayView4, ArrayViewMut2, ArrayViewMut4, Axis, Zip};

use crate::Float;
use crate::cost::{self, Cost};
use crate::error::{Error, Result};

/// BatchNorm in inference form, over the last (channel) axis:
/// `y = γ·(x − mean) / sqrt(var + ε) + β`.
///
/// TF-slim's MobileNet uses ε = 0.001, PyTorch's default is 1e-5.
///
/// ```
/// use ndarray::{arr1, Array4};
/// use sepconv::BatchNorm;
/// let bn = BatchNorm::new(arr1(&[2.0]), arr1(&[1.0]), arr1(&[3.0]), arr1(&[4.0]), 0.0)?;
/// let y = bn.forward(Array4::from_elem((1, 1, 1, 1), 5.0).view())?;
/// assert_eq!(y[[0, 0, 0, 0]], 2.0 * (5.0 - 3.0) / 2.0 + 1.0);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm<F> {
    gamma: Array1<F>,
    beta: Array1<F>,
    mean: Array1<F>,
    var: Array1<F>,
    eps: F,
    scale: Array1<F>,
    shift: Array1<F>,
}

impl<F: Float> BatchNorm<F> {
    /// A BatchNorm over `gamma.len()` channels.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for zero channels, [`Error::ShapeMismatch`] when the
    /// four vectors differ in length, [`Error::InvalidEpsilon`] for a negative
    /// or non-finite ε, [`Error::InvalidVariance`] for a negative or non-finite
    /// variance or one with `var + ε = 0`, [`Error::NonFinite`] for a NaN or
    /// infinite γ, β or mean, or a scale `γ / √(var + ε)` or shift
    /// `β − mean·scale` (computed in f64) that overflows `F`.
    pub fn new(
        gamma: Array1<F>,
        beta: Array1<F>,
        mean: Array1<F>,
        var: Array1<F>,
        eps: F,
    ) -> Result<Self> {
        let c = gamma.len();
        if c == 0 {
            return Err(Error::ZeroSize {
                what: "BatchNorm gamma".into(),
                shape: [0].into(),
            });
        }
        for (what, v) in [
            ("BatchNorm beta", &beta),
            ("BatchNorm mean", &mean),
            ("BatchNorm variance", &var),
        ] {
            if v.len() != c {
                return Err(Error::shape(what, &[c], &[v.len()]));
            }
        }
        let eps64 = eps.to_f64_exact();
        if !(eps64.is_finite() && eps64 >= 0.0) {
            return Err(Error::InvalidEpsilon(eps64));
        }
        if let Some((channel, &v)) = var.iter().enumerate().find(|&(_, &v)| {
            let v = v.to_f64_exact();
            !(v.is_finite() && v >= 0.0 && v + eps64 > 0.0)
        }) {
            return Err(Error::InvalidVariance {
                channel,
                value: v.to_f64_exact(),
            });
        }
        for (what, v) in [
            ("BatchNorm gamma", &gamma),
            ("BatchNorm beta", &beta),
            ("BatchNorm mean", &mean),
        ] {
            check_finite(what, v.iter().map(|v| v.to_f64_exact()), |x| x)?;
        }
        // scale = γ / sqrt(var + ε), shift = β − mean·scale, in f64.
        let scale64: Vec<f64> = Zip::from(&gamma)
            .and(&var)
            .map_collect(|&g, &v| g.to_f64_exact() / (v.to_f64_exact() + eps64).sqrt())
            .to_vec();
        let narrow = |x: f64| F::from_f64_lossy(x).to_f64_exact();
        check_finite(
            "BatchNorm scale γ/√(var + ε)",
            scale64.iter().copied(),
            narrow,
        )?;
        let scale = scale64.iter().map(|&s| F::from_f64_lossy(s)).collect();
        let shift64 = Zip::from(&beta)
            .and(&mean)
            .and(&Array1::from(scale64))
            .map_collect(|&b, &m, &s| b.to_f64_exact() - m.to_f64_exact() * s);
        check_finite(
            "BatchNorm shift β − mean·scale",
            shift64.iter().copied(),
            narrow,
        )?;
        let shift = shift64.mapv(F::from_f64_lossy);
        Ok(BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps,
            scale,
            shift,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }
    /// γ.
    pub fn gamma(&self) -> &Array1<F> {
        &self.gamma
    }
    /// β.
    pub fn beta(&self) -> &Array1<F> {
        &self.beta
    }
    /// Moving mean.
    pub fn mean(&self) -> &Array1<F> {
        &self.mean
    }
    /// Moving variance.
    pub fn variance(&self) -> &Array1<F> {
        &self.var
    }
    /// ε.
    pub fn epsilon(&self) -> F {
        self.eps
    }

    /// The equivalent per-channel affine map `y = scale·x + shift`.
    pub fn scale_shift(&self) -> (&Array1<F>, &Array1<F>) {
        (&self.scale, &self.shift)
    }

    /// Parameters: 2·C affine (γ, β) and 2·C statistics (mean, variance).
    pub fn cost(&self) -> Cost {
        cost::batch_norm(self.channels())
    }

    /// Normalizes an NHWC tensor.
    ///
    /// # Errors
    /// [`Error::ZeroSize`], [`Error::ChannelMismatch`].
    pub fn forward(&self, x: ArrayView4<'_, F>) -> Result<Array4<F>> {
        let shape = crate::conv::dims4(x.shape());
        crate::conv::check_input("BatchNorm input", &shape, self.channels())?;
        let mut y = crate::layer::zeros4("BatchNorm output", shape)?;
        y.assign(&x);
        self.forward_inplace(y.view_mut())?;
        Ok(y)
    }

    /// Normalizes an NHWC tensor in place.
    ///
    /// # Errors
    /// [`Error::ZeroSize`], [`Error::ChannelMismatch`]; `x` is untouched then.
    pub fn forward_inplace(&self, mut x: ArrayViewMut4<'_, F>) -> Result<()> {
        crate::conv::check_input("BatchNorm input", x.shape(), self.channels())?;
        for mut lane in x.lanes_mut(Axis(3)) {
            Zip::from(&mut lane)
                .and(&self.scale)
                .and(&self.shift)
                .for_each(|x, &s, &t| *x = *x * s + t);
        }
        Ok(())
    }

    /// Folds this BN into the linear layer before it, given that layer's
    /// weight as columns `[rows, C]` (C = output channel, the last axis of
    /// every weight layout in the crate) and its bias. Scales the weight
    /// columns in place and returns the new bias `scale·b + shift`.
    pub(crate) fn fold_into(
        &self,
        mut weight_cols: ArrayViewMut2<'_, F>,
        bias: Option<&Array1<F>>,
    ) -> Array1<F> {
        debug_assert_eq!(weight_cols.ncols(), self.channels());
        for mut row in weight_cols.rows_mut() {
            Zip::from(&mut row)
                .and(&self.scale)
                .for_each(|w, &s| *w *= s);
        }
        match bias {
            Some(b) => Zip::from(b)
                .and(&self.scale)
                .and(&self.shift)
                .map_collect(|&b, &s, &t| b * s + t),
            None => self.shift.clone(),
        }
    }

    /// Checks that this BN fits a layer with `channels` outputs.
    pub(crate) fn check_channels(&self, what: &str, channels: usize) -> Result<()> {
        if self.channels() != channels {
            return Err(Error::ChannelMismatch {
                what: format!("BatchNorm folded into {what}"),
                expected: channels,
                got: self.channels(),
            });
        }
        Ok(())
    }
}

impl<F: Float> crate::Layer<F> for BatchNorm<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        crate::conv::check_input("BatchNorm input", &input, self.channels())?;
        Ok(input)
    }

    /// No mult-adds (the paper's convention), the BN's parameters.
    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        crate::Layer::output_shape(self, input)?;
        Ok(BatchNorm::cost(self))
    }

    fn info(&self) -> crate::LayerInfo {
        crate::LayerInfo::new("BatchNorm")
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        _scratch: &mut [F],
    ) -> Result<()> {
        let shape = crate::Layer::output_shape(self, crate::conv::dims4(x.shape()))?;
        crate::conv::check_output("BatchNorm output", out.shape(), shape)?;
        out.assign(&x);
        self.forward_inplace(out)
    }
}

/// [`Error::NonFinite`] for the first of `values` that is not finite once
/// passed through `narrow` (the identity, or the narrowing to `F`).
fn check_finite(
    what: &str,
    values: impl IntoIterator<Item = f64>,
    narrow: impl Fn(f64) -> f64,
) -> Result<()> {
    match values
        .into_iter()
        .enumerate()
        .find(|&(_, v)| !narrow(v).is_finite())
    {
        Some((index, value)) => Err(Error::NonFinite {
            what: what.into(),
            index,
            value,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    #[test]
    fn validation() {
        let ok = || arr1(&[1.0f32, 2.0]);
        assert!(BatchNorm::new(ok(), ok(), ok(), ok(), 1e-3).is_ok());
        assert_eq!(
            BatchNorm::new(ok(), ok(), ok(), arr1(&[1.0, -0.5]), 1e-3).unwrap_err(),
            Error::InvalidVariance {
                channel: 1,
                value: -0.5
            }
        );
        assert_eq!(
            BatchNorm::new(ok(), ok(), ok(), arr1(&[0.0, 1.0]), 0.0).unwrap_err(),
            Error::InvalidVariance {
                channel: 0,
                value: 0.0
            }
        );
        assert!(matches!(
            BatchNorm::new(ok(), ok(), ok(), arr1(&[f32::NAN, 1.0]), 1e-3),
            Err(Error::InvalidVariance { channel: 0, .. })
        ));
        assert_eq!(
            BatchNorm::new(ok(), ok(), ok(), ok(), f32::INFINITY).unwrap_err(),
            Error::InvalidEpsilon(f64::INFINITY)
        );
        assert_eq!(
            BatchNorm::new(ok(), ok(), ok(), ok(), -1.0).unwrap_err(),
            Error::InvalidEpsilon(-1.0)
        );
        assert_eq!(
            BatchNorm::new(ok(), arr1(&[1.0]), ok(), ok(), 1e-3).unwrap_err(),
            Error::shape("BatchNorm beta", &[2], &[1])
        );
        assert!(matches!(
            BatchNorm::<f64>::new(arr1(&[]), arr1(&[]), arr1(&[]), arr1(&[]), 1e-3),
            Err(Error::ZeroSize { .. })
        ));
    }

    #[test]
    fn forward_matches_formula_and_rejects_wrong_channels() {
        let bn = BatchNorm::new(
            arr1(&[2.0, 0.5]),
            arr1(&[1.0, -1.0]),
            arr1(&[3.0, 0.0]),
            arr1(&[4.0, 0.25]),
            0.0,
        )
        .unwrap();
        let x = Array4::from_shape_vec((1, 1, 2, 2), vec![5.0, 1.0, 3.0, -1.0]).unwrap();
        let y = bn.forward(x.view()).unwrap();
        assert_eq!(y.into_raw_vec_and_offset().0, vec![3.0, 0.0, 1.0, -2.0]);
        let wrong = Array4::<f64>::zeros((1, 1, 1, 3));
        assert_eq!(
            bn.forward(wrong.view()).unwrap_err(),
            Error::ChannelMismatch {
                what: "BatchNorm input".into(),
                expected: 2,
                got: 3
            }
        );
    }
}
