//! Shared test helpers: the one tolerance table, array generators, views.
#![allow(dead_code)]

use ndarray::{Array, Array4, ArrayView4, Dimension, IntoDimension, ShapeBuilder, s};
use proptest::prelude::*;
use sepconv::Float;
use sepconv::init::SplitMix64;

/// Tolerances, in one place: an output may differ from the f64-accumulated
/// oracle by `REL · Σ|terms|`, where Σ|terms| is the oracle run on the
/// absolute values (so the bound scales with the magnitude of the sum, not of
/// the result, which may cancel to ~0).
pub trait Tolerance: Float {
    const REL: f64;
}
impl Tolerance for f32 {
    const REL: f64 = 2e-6 * 8.0; // ~8 × a 20-term dot product's typical rounding
}
impl Tolerance for f64 {
    const REL: f64 = 1e-14;
}

/// Asserts `got ≈ expected` within `F::REL · magnitude` element-wise, and
/// that `got` has no NaN left from the poisoned buffer.
pub fn assert_close<F: Tolerance>(
    got: ArrayView4<'_, F>,
    expected: ArrayView4<'_, F>,
    magnitude: ArrayView4<'_, F>,
    what: &str,
) {
    assert_eq!(got.shape(), expected.shape(), "{what}: shape");
    for ((idx, &g), (&e, &m)) in got
        .indexed_iter()
        .zip(expected.iter().zip(magnitude.iter()))
    {
        let (g, e, m) = (g.to_f64_exact(), e.to_f64_exact(), m.to_f64_exact());
        assert!(
            !g.is_nan(),
            "{what}: NaN at {idx:?} (output element not written?)"
        );
        let tol = F::REL * m.abs() + f64::MIN_POSITIVE;
        assert!(
            (g - e).abs() <= tol,
            "{what}: at {idx:?} got {g}, expected {e} (|diff| {} > tol {tol}, magnitude {m})",
            (g - e).abs()
        );
    }
}

/// Dyadic values k/4, k ∈ [-8, 8]: products and sums of these are exact in
/// f32 for the sizes used here, so fast paths must match the oracle bit for bit.
pub fn dyadic(seed: u64, i: usize) -> f64 {
    let h = splitmix(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    ((h % 17) as f64 - 8.0) / 4.0
}

/// Uniform values in [-1, 1).
pub fn uniform(seed: u64, i: usize) -> f64 {
    let h = splitmix(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// A stateless hash of `z`: the first output of a SplitMix64 seeded with it.
fn splitmix(z: u64) -> u64 {
    SplitMix64::new(z).next_u64()
}

/// A deterministic array of the given shape.
pub fn array<F: Float, D: Dimension>(
    shape: impl IntoDimension<Dim = D>,
    seed: u64,
    exact: bool,
) -> Array<F, D> {
    let mut i = 0;
    Array::from_shape_simple_fn(shape.into_dimension(), || {
        i += 1;
        F::from_f64_lossy(if exact {
            dyadic(seed, i)
        } else {
            uniform(seed, i)
        })
    })
}

/// How an input is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// C-contiguous NHWC.
    Standard,
    /// Every other column of a twice-as-wide buffer.
    ColumnStrided,
    /// Stored NCHW, seen as NHWC through permuted axes.
    ChannelsFirst,
    /// Rows stored bottom-up (negative row stride).
    Flipped,
}

pub fn view_strategy() -> impl Strategy<Value = View> {
    prop_oneof![
        Just(View::Standard),
        Just(View::ColumnStrided),
        Just(View::ChannelsFirst),
        Just(View::Flipped)
    ]
}

/// Storage holding `x` so that [`Stored::view`] sees it with layout `kind`.
pub struct Stored<F> {
    data: Array4<F>,
    kind: View,
}

impl<F: Float> Stored<F> {
    pub fn new(x: &Array4<F>, kind: View) -> Self {
        let (n, h, w, c) = x.dim();
        let data = match kind {
            View::Standard => x.clone(),
            View::ColumnStrided => {
                let mut big = Array4::from_elem((n, h, 2 * w, c), F::nan());
                big.slice_mut(s![.., .., ..;2, ..]).assign(x);
                big
            }
            View::ChannelsFirst => {
                let mut t = Array4::zeros((n, h, w, c).f());
                t.assign(x);
                t
            }
            View::Flipped => {
                let mut f = x.clone();
                f.invert_axis(ndarray::Axis(1));
                f.as_standard_layout().into_owned()
            }
        };
        Stored { data, kind }
    }

    pub fn view(&self) -> ArrayView4<'_, F> {
        match self.kind {
            View::Standard | View::ChannelsFirst => self.data.view(),
            View::ColumnStrided => self.data.slice(s![.., .., ..;2, ..]),
            View::Flipped => {
                let mut v = self.data.view();
                v.invert_axis(ndarray::Axis(1));
                v
            }
        }
    }
}

/// A NaN-poisoned output buffer; `transposed` makes it non-standard layout.
pub fn poisoned<F: Float>(shape: [usize; 4], transposed: bool) -> Array4<F> {
    if transposed {
        Array4::from_elem(shape.f(), F::nan())
    } else {
        Array4::from_elem(shape, F::nan())
    }
}
