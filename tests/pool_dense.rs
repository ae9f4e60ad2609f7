//! Pooling, flatten and dense: hand-computed cases (oracle and layers), then
//! property tests of every layer against its oracle, then the error cases.
//!
//! Property problems: batch 1–3, sizes 1–12 (global pooling up to 16),
//! channels 1–6, kernels 1–4, strides 1–3, every padding mode (explicit pads
//! up to the kernel, so the "padding ≥ kernel" error is drawn too), four input
//! layouts and two output layouts, outputs pre-filled with NaN. Max pooling
//! and flatten must match their oracle bit for bit on any input (NaN
//! included); average pooling and dense do on dyadic inputs, and in f64 for
//! pooling (same order of the same operations), else within
//! `common::Tolerance`.

use crate::common::{Stored, Tolerance, View, array, assert_close, poisoned, view_strategy};
use ndarray::{Array1, Array2, Array4, ArrayView4, array, s};
use proptest::prelude::*;
use sepconv::dense::Dense;
use sepconv::pool::{AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d};
use sepconv::{Activation, Algorithm, Error, Layer, Padding, reference};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// `got == expected` element-wise, NaN matching NaN; shapes equal.
fn assert_same<F: Tolerance>(got: ArrayView4<'_, F>, expected: ArrayView4<'_, F>, what: &str) {
    assert_eq!(got.shape(), expected.shape(), "{what}: shape");
    for ((idx, &g), &e) in got.indexed_iter().zip(expected.iter()) {
        let (g, e) = (g.to_f64_exact(), e.to_f64_exact());
        assert!(
            g == e || (g.is_nan() && e.is_nan()),
            "{what}: at {idx:?} got {g}, expected {e}"
        );
    }
}

/// The 4×4 image 0, 1, …, 15 (row-major), one channel.
fn ramp() -> Array4<f64> {
    Array4::from_shape_fn((1, 4, 4, 1), |(_, y, x, _)| (4 * y + x) as f64)
}

fn flat(a: &Array4<f64>) -> Vec<f64> {
    a.iter().copied().collect()
}

// ---------------------------------------------------------------------------
// Hand-computed cases: the oracle first, then each layer against the same numbers.

#[test]
fn pooling_a_4x4_ramp() {
    let x = ramp();
    let v = Padding::Valid;
    // 2×2, stride 2 (the default).
    let max = [5.0, 7.0, 13.0, 15.0];
    let avg = [2.5, 4.5, 10.5, 12.5];
    assert_eq!(
        flat(&reference::max_pool2d(x.view(), [2, 2], [2, 2], v).unwrap()),
        max
    );
    assert_eq!(
        flat(&reference::avg_pool2d(x.view(), [2, 2], [2, 2], v, false).unwrap()),
        avg
    );
    assert_eq!(flat(&MaxPool2d::new(2).forward(x.view()).unwrap()), max);
    assert_eq!(flat(&AvgPool2d::new(2).forward(x.view()).unwrap()), avg);
    // 3×3, stride 1: the 2×2 of window centres 5, 6, 9, 10.
    let max = [10.0, 11.0, 14.0, 15.0];
    let avg = [5.0, 6.0, 9.0, 10.0];
    assert_eq!(
        flat(&reference::max_pool2d(x.view(), [3, 3], [1, 1], v).unwrap()),
        max
    );
    assert_eq!(
        flat(&reference::avg_pool2d(x.view(), [3, 3], [1, 1], v, true).unwrap()),
        avg
    );
    assert_eq!(
        flat(&MaxPool2d::new(3).with_stride(1).forward(x.view()).unwrap()),
        max
    );
    assert_eq!(
        flat(&AvgPool2d::new(3).with_stride(1).forward(x.view()).unwrap()),
        avg
    );
    // 1×4 rows, stride [1, 4]: one output per row.
    let avg = [1.5, 5.5, 9.5, 13.5];
    assert_eq!(
        flat(&reference::avg_pool2d(x.view(), [1, 4], [1, 4], v, false).unwrap()),
        avg
    );
    assert_eq!(
        flat(&AvgPool2d::new([1, 4]).forward(x.view()).unwrap()),
        avg
    );
    // Global: the mean of 0..16.
    assert_eq!(flat(&reference::global_avg_pool(x.view()).unwrap()), [7.5]);
    assert_eq!(flat(&GlobalAvgPool.forward(x.view()).unwrap()), [7.5]);
    // Flatten: the raw row-major order.
    let all: Vec<f64> = (0..16).map(f64::from).collect();
    assert_eq!(flat(&Flatten.forward(x.view()).unwrap()), all);
    assert_eq!(Flatten.output_shape([2, 4, 4, 3]).unwrap(), [2, 1, 1, 48]);
}

#[test]
fn same_padding_windows_at_the_border() {
    // 3×3 stride 2 SAME on 4×4: out 2×2, pads 0 before and 1 after (TensorFlow).
    // Windows: rows {0,1,2} and {2,3,pad}, the same for columns.
    let x = ramp();
    let sums = [45.0, 39.0, 66.0, 50.0]; // 0..2×0..2, 0..2×2..3, 2..3×0..2, 2..3×2..3
    let counts = [9.0, 6.0, 6.0, 4.0];
    let tf: Vec<f64> = sums.iter().zip(counts).map(|(s, c)| s / c).collect();
    assert_eq!(tf, [5.0, 6.5, 11.0, 12.5]);
    let pt: Vec<f64> = sums.iter().map(|s| s / 9.0).collect();
    let p = Padding::Same;
    let layer = AvgPool2d::new(3).with_stride(2).with_padding(p);
    assert_eq!(layer.output_shape([1, 4, 4, 1]).unwrap(), [1, 2, 2, 1]);
    assert_eq!(
        flat(&reference::avg_pool2d(x.view(), [3, 3], [2, 2], p, false).unwrap()),
        tf
    );
    assert_eq!(
        flat(&reference::avg_pool2d(x.view(), [3, 3], [2, 2], p, true).unwrap()),
        pt
    );
    assert_eq!(flat(&layer.forward(x.view()).unwrap()), tf);
    assert_eq!(
        flat(&layer.with_count_padding(true).forward(x.view()).unwrap()),
        pt
    );
    // Max skips the padding.
    let max = [10.0, 11.0, 14.0, 15.0];
    assert_eq!(
        flat(&reference::max_pool2d(x.view(), [3, 3], [2, 2], p).unwrap()),
        max
    );
    let layer = MaxPool2d::new(3).with_stride(2).with_padding(p);
    assert_eq!(flat(&layer.forward(x.view()).unwrap()), max);
    // Negative inputs: the padding is not a 0 that would win.
    let neg = x.mapv(|v| -1.0 - v);
    assert_eq!(
        flat(&layer.forward(neg.view()).unwrap()),
        [-1.0, -3.0, -9.0, -11.0]
    );
    // Explicit PyTorch-style padding 1 all round, 2×2 stride 2: corners hold one element.
    let p = Padding::symmetric(1);
    let layer = AvgPool2d::new(2).with_padding(p);
    let got = flat(&layer.forward(x.view()).unwrap());
    assert_eq!(&got[..3], [0.0, 1.5, 3.0]);
    let got = flat(&layer.with_count_padding(true).forward(x.view()).unwrap());
    assert_eq!(&got[..3], [0.0, 0.75, 0.75]);
    assert_eq!(
        flat(&reference::avg_pool2d(x.view(), [2, 2], [2, 2], p, true).unwrap()),
        got
    );
}

#[test]
fn max_pool_propagates_nan() {
    let mut x = ramp();
    x[[0, 0, 2, 0]] = f64::NAN; // first tap of window (0, 1)
    x[[0, 3, 3, 0]] = f64::NAN; // last tap of window (1, 1)
    for y in [
        reference::max_pool2d(x.view(), [2, 2], [2, 2], Padding::Valid).unwrap(),
        MaxPool2d::new(2).forward(x.view()).unwrap(),
    ] {
        let y = flat(&y);
        assert_eq!(y[0], 5.0);
        assert!(y[1].is_nan() && y[3].is_nan());
        assert_eq!(y[2], 13.0);
    }
    // f32 too, and a NaN among larger values.
    let mut x = ramp().mapv(|v| v as f32);
    x[[0, 1, 1, 0]] = f32::NAN;
    let y = MaxPool2d::new(3).with_stride(1).forward(x.view()).unwrap();
    assert!(y.iter().all(|v| v.is_nan()), "{y}"); // (1, 1) is in every 3×3 window
    // Infinities are values, not NaN.
    let mut x = ramp();
    x[[0, 0, 0, 0]] = f64::INFINITY;
    x[[0, 3, 3, 0]] = f64::NEG_INFINITY;
    let y = flat(&MaxPool2d::new(2).forward(x.view()).unwrap());
    assert_eq!(y, [f64::INFINITY, 7.0, 13.0, 14.0]);
}

#[test]
fn dense_with_two_features_by_hand() {
    // y = x · W + b, W = [[1, 2, 3], [4, 5, 6]], b = [0.5, −1, 0].
    let w = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let b = array![0.5, -1.0, 0.0];
    let x = Array4::from_shape_vec((2, 1, 1, 2), vec![1.0, 2.0, -1.0, 0.5]).unwrap();
    let want = [9.5, 11.0, 15.0, 1.5, -0.5, 0.0];
    let oracle = reference::dense(x.view(), w.view(), Some(b.view())).unwrap();
    assert_eq!(oracle.shape(), &[2, 1, 1, 3]);
    assert_eq!(flat(&oracle), want);
    let fc = Dense::new(w.clone(), Some(b.clone())).unwrap();
    assert_eq!((fc.in_features(), fc.out_features()), (2, 3));
    assert_eq!(flat(&fc.forward(x.view()).unwrap()), want);
    // The same two features as a 1×2×1 image: flattened in NHWC order.
    let x2 = x.to_shape((2, 1, 2, 1)).unwrap().to_owned();
    assert_eq!(flat(&fc.forward(x2.view()).unwrap()), want);
    // Fused ReLU; every algorithm.
    for a in Algorithm::available() {
        let relu = fc
            .clone()
            .with_activation(Activation::Relu)
            .with_algorithm(a);
        assert_eq!(relu.activation(), Activation::Relu);
        assert_eq!(
            flat(&relu.forward(x.view()).unwrap()),
            [9.5, 11.0, 15.0, 1.5, 0.0, 0.0]
        );
    }
    // Cost: the fully connected count.
    assert_eq!(fc.cost([2, 1, 1, 2]).unwrap().mult_adds, 2 * 2 * 3);
    assert_eq!(fc.cost([2, 1, 1, 2]).unwrap().params.weights, 6);
    assert_eq!(fc.cost([2, 1, 1, 2]).unwrap().params.biases, 3);
    assert_eq!(fc.info().filter.as_deref(), Some("2×3"));
}

// ---------------------------------------------------------------------------
// Property tests.

#[derive(Clone, Debug)]
struct PoolProblem {
    batch: usize,
    hw: [usize; 2],
    channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    /// 0 Valid, 1 Same, 2 Explicit with `pads` taken modulo kernel + 1.
    padding_kind: u8,
    pads: [usize; 4],
    count_padding: bool,
    view: View,
    out_transposed: bool,
    exact: bool,
    f64: bool,
    /// Sets this element (modulo the size) to NaN, in max pooling.
    nan_at: Option<usize>,
    seed: u64,
}

impl PoolProblem {
    fn padding(&self) -> Padding {
        let [kh, kw] = self.kernel;
        match self.padding_kind {
            0 => Padding::Valid,
            1 => Padding::Same,
            _ => Padding::Explicit {
                top: self.pads[0] % (kh + 1),
                bottom: self.pads[1] % (kh + 1),
                left: self.pads[2] % (kw + 1),
                right: self.pads[3] % (kw + 1),
            },
        }
    }
    fn shape(&self) -> (usize, usize, usize, usize) {
        (self.batch, self.hw[0], self.hw[1], self.channels)
    }
}

prop_compose! {
    fn pool_problem(max_hw: usize)(
        batch in 1usize..=3,
        hw in [1usize..=max_hw, 1usize..=max_hw],
        channels in 1usize..=6,
        kernel in [1usize..=4, 1usize..=4],
        stride in [1usize..=3, 1usize..=3],
        padding_kind in 0u8..3,
        pads in [0usize..=4, 0usize..=4, 0usize..=4, 0usize..=4],
        count_padding in any::<bool>(),
        view in view_strategy(),
        out_transposed in any::<bool>(),
        exact in any::<bool>(),
        f64 in any::<bool>(),
        nan_at in proptest::option::weighted(0.3, any::<usize>()),
        seed in any::<u64>(),
    ) -> PoolProblem {
        PoolProblem {
            batch, hw, channels, kernel, stride, padding_kind, pads, count_padding, view,
            out_transposed, exact, f64, nan_at, seed,
        }
    }
}

/// Runs `layer` into a NaN-poisoned output from a stored view of `x`, and
/// through `forward`; compares with `oracle` (bit for bit when `exact`, else
/// within the tolerance against `magnitude`). When the oracle fails the layer
/// must fail with the same error, up to the name.
fn check_layer<F: Tolerance, L: Layer<F>>(
    layer: &L,
    x: &Array4<F>,
    view: View,
    out_transposed: bool,
    oracle: Result<Array4<F>, Error>,
    exact: bool,
    magnitude: impl FnOnce() -> Array4<F>,
) -> Result<(), TestCaseError> {
    let stored = Stored::new(x, view);
    let input = <[usize; 4]>::try_from(x.shape()).unwrap();
    let expected = match oracle {
        Err(e) => {
            let got = layer.forward(stored.view()).unwrap_err();
            prop_assert_eq!(strip_name(&got), strip_name(&e), "{} vs {}", got, e);
            prop_assert_eq!(layer.output_shape(input).unwrap_err(), got);
            return Ok(());
        }
        Ok(y) => y,
    };
    let shape = layer.output_shape(input).unwrap();
    prop_assert_eq!(&shape[..], expected.shape());
    // Dirty scratch of exactly the announced length.
    let mut scratch = vec![F::nan(); layer.scratch_len(input).unwrap()];
    let mut out = poisoned::<F>(shape, out_transposed);
    layer
        .forward_with_scratch(stored.view(), out.view_mut(), &mut scratch)
        .unwrap();
    if exact {
        assert_same(
            out.view(),
            expected.view(),
            "exact case must match the oracle",
        );
    } else {
        assert_close(
            out.view(),
            expected.view(),
            magnitude().view(),
            "layer vs oracle",
        );
    }
    assert_same(
        layer.forward(stored.view()).unwrap().view(),
        out.view(),
        "forward",
    );
    assert_same(stored.view(), x.view(), "the input is unchanged");
    Ok(())
}

/// An error with the layer's name taken out (the oracle names itself).
fn strip_name(e: &Error) -> Error {
    match e.clone() {
        Error::InvalidParameter { value, reason, .. } => Error::InvalidParameter {
            name: "",
            value,
            reason,
        },
        Error::ZeroSize { shape, .. } => Error::ZeroSize {
            what: String::new(),
            shape,
        },
        other => other,
    }
}

fn abs<F: Tolerance, D: ndarray::Dimension>(a: &ndarray::Array<F, D>) -> ndarray::Array<F, D> {
    a.mapv(|v| v.abs())
}

fn run_avg_pool<F: Tolerance>(p: &PoolProblem) -> Result<(), TestCaseError> {
    let x: Array4<F> = array(p.shape(), p.seed, p.exact);
    let layer = AvgPool2d::new(p.kernel)
        .with_stride(p.stride)
        .with_padding(p.padding())
        .with_count_padding(p.count_padding);
    let run = |x: ArrayView4<'_, F>| {
        reference::avg_pool2d(x, p.kernel, p.stride, p.padding(), p.count_padding)
    };
    // f64 sums in the oracle's order: the same operations, the same result.
    let exact = p.exact || F::NAME == "f64";
    check_layer(
        &layer,
        &x,
        p.view,
        p.out_transposed,
        run(x.view()),
        exact,
        || run(abs(&x).view()).unwrap(),
    )
}

fn run_max_pool<F: Tolerance>(p: &PoolProblem) -> Result<(), TestCaseError> {
    let mut x: Array4<F> = array(p.shape(), p.seed, p.exact);
    if let Some(i) = p.nan_at {
        let len = x.len();
        x.as_slice_mut().unwrap()[i % len] = F::nan();
    }
    let layer = MaxPool2d::new(p.kernel)
        .with_stride(p.stride)
        .with_padding(p.padding());
    let oracle = reference::max_pool2d(x.view(), p.kernel, p.stride, p.padding());
    check_layer(
        &layer,
        &x,
        p.view,
        p.out_transposed,
        oracle,
        true,
        || unreachable!(),
    )
}

fn run_global<F: Tolerance>(p: &PoolProblem) -> Result<(), TestCaseError> {
    let x: Array4<F> = array(p.shape(), p.seed, p.exact);
    let exact = p.exact || F::NAME == "f64";
    let oracle = reference::global_avg_pool(x.view());
    check_layer(
        &GlobalAvgPool,
        &x,
        p.view,
        p.out_transposed,
        oracle,
        exact,
        || reference::global_avg_pool(abs(&x).view()).unwrap(),
    )?;
    // Flatten on the same input: a permutation, always exact.
    let (n, h, w, c) = x.dim();
    let flat = x.to_shape((n, 1, 1, h * w * c)).unwrap().to_owned();
    check_layer(
        &Flatten,
        &x,
        p.view,
        p.out_transposed,
        Ok(flat),
        true,
        || unreachable!(),
    )
}

#[derive(Clone, Debug)]
struct DenseProblem {
    batch: usize,
    hwc: [usize; 3],
    outputs: usize,
    bias: bool,
    activation: Activation,
    algorithm: Algorithm,
    view: View,
    out_transposed: bool,
    exact: bool,
    f64: bool,
    seed: u64,
}

prop_compose! {
    fn dense_problem()(
        batch in 1usize..=3,
        hwc in [1usize..=4, 1usize..=4, 1usize..=8],
        outputs in 1usize..=40,
        bias in any::<bool>(),
        activation in prop_oneof![
            Just(Activation::Identity),
            Just(Activation::Relu),
            Just(Activation::Relu6)
        ],
        algorithm in prop_oneof![
            Just(Algorithm::Auto),
            Just(Algorithm::Portable),
            Just(Algorithm::Reference)
        ],
        view in view_strategy(),
        out_transposed in any::<bool>(),
        exact in any::<bool>(),
        f64 in any::<bool>(),
        seed in any::<u64>(),
    ) -> DenseProblem {
        DenseProblem {
            batch, hwc, outputs, bias, activation, algorithm, view, out_transposed, exact, f64,
            seed,
        }
    }
}

fn run_dense<F: Tolerance>(p: &DenseProblem) -> Result<(), TestCaseError> {
    let [h, w, c] = p.hwc;
    let x: Array4<F> = array((p.batch, h, w, c), p.seed, p.exact);
    let wt: Array2<F> = array((h * w * c, p.outputs), p.seed ^ 1, p.exact);
    let b: Option<Array1<F>> = p.bias.then(|| array(p.outputs, p.seed ^ 2, p.exact));
    let fc = Dense::new(wt.clone(), b.clone())
        .unwrap()
        .with_activation(p.activation)
        .with_algorithm(p.algorithm);
    prop_assert_eq!(fc.weight(), wt.view());
    prop_assert_eq!(fc.bias(), b.as_ref());
    let oracle = reference::dense(x.view(), wt.view(), b.as_ref().map(|b| b.view()))
        .map(|y| y.mapv(|v| p.activation.apply(v)));
    check_layer(&fc, &x, p.view, p.out_transposed, oracle, p.exact, || {
        let b = b.as_ref().map(abs);
        reference::dense(
            abs(&x).view(),
            abs(&wt).view(),
            b.as_ref().map(|b| b.view()),
        )
        .unwrap()
    })?;
    // set_algorithm through the trait reaches the GEMM: the reference path is
    // the oracle's sum in the same order.
    let mut forced = fc.clone();
    Layer::<F>::set_algorithm(&mut forced, Algorithm::Reference);
    let y = forced.forward(x.view()).unwrap();
    let want = reference::dense(x.view(), wt.view(), b.as_ref().map(|b| b.view()))
        .unwrap()
        .mapv(|v| p.activation.apply(v));
    assert_same(y.view(), want.view(), "Algorithm::Reference");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn avg_pool_matches_oracle(p in pool_problem(12)) {
        if p.f64 { run_avg_pool::<f64>(&p)?; } else { run_avg_pool::<f32>(&p)?; }
    }

    #[test]
    fn max_pool_matches_oracle_bit_for_bit(p in pool_problem(12)) {
        if p.f64 { run_max_pool::<f64>(&p)?; } else { run_max_pool::<f32>(&p)?; }
    }

    #[test]
    fn global_pool_and_flatten_match_oracle(p in pool_problem(16)) {
        if p.f64 { run_global::<f64>(&p)?; } else { run_global::<f32>(&p)?; }
    }

    #[test]
    fn dense_matches_oracle(p in dense_problem()) {
        if p.f64 { run_dense::<f64>(&p)?; } else { run_dense::<f32>(&p)?; }
    }
}

/// Named regression-style cases: the non-contiguous views the brief names
/// (columns reversed; permuted and back), through every layer.
#[test]
fn reversed_and_permuted_views() {
    let x: Array4<f32> = array((2, 5, 6, 3), 7, true);
    let reversed = x.slice(s![.., .., ..;-1, ..]);
    // NCHW in memory, seen as NHWC.
    let storage = x
        .clone()
        .permuted_axes([0, 3, 1, 2])
        .as_standard_layout()
        .into_owned();
    let permuted = storage.view().permuted_axes([0, 2, 3, 1]);
    assert_eq!(permuted, x.view());
    let fc = Dense::new(array((90, 7), 8, true), Some(array(7, 9, true))).unwrap();
    for v in [reversed, permuted] {
        let owned = v.to_owned();
        let max = MaxPool2d::new(3).with_stride(2).with_padding(Padding::Same);
        assert_same(
            max.forward(v).unwrap().view(),
            reference::max_pool2d(owned.view(), [3, 3], [2, 2], Padding::Same)
                .unwrap()
                .view(),
            "max",
        );
        let avg = AvgPool2d::new([2, 3]).with_padding(Padding::symmetric(1));
        assert_same(
            avg.forward(v).unwrap().view(),
            reference::avg_pool2d(owned.view(), [2, 3], [2, 3], Padding::symmetric(1), false)
                .unwrap()
                .view(),
            "avg",
        );
        assert_same(
            GlobalAvgPool.forward(v).unwrap().view(),
            reference::global_avg_pool(owned.view()).unwrap().view(),
            "global",
        );
        assert_same(
            fc.forward(v).unwrap().view(),
            reference::dense(owned.view(), fc.weight(), fc.bias().map(|b| b.view()))
                .unwrap()
                .view(),
            "dense",
        );
        assert_eq!(
            Flatten.forward(v).unwrap().into_raw_vec_and_offset().0,
            owned.iter().copied().collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------
// Errors: a value naming the layer and the numbers; input and `out` untouched.

/// Runs `layer` on `x` into a sentinel-filled `out` of shape `out_shape`;
/// asserts the error and that neither buffer changed.
fn assert_fails<L: Layer<f32>>(layer: &L, x: &Array4<f32>, out_shape: [usize; 4], want: &Error) {
    let before = x.clone();
    let mut out = Array4::from_elem(out_shape, 42.0_f32);
    let mut scratch = vec![0.0; 256];
    let e = layer
        .forward_with_scratch(x.view(), out.view_mut(), &mut scratch)
        .unwrap_err();
    assert_eq!(&e, want, "{e}");
    assert_eq!(x, &before, "input changed");
    assert!(out.iter().all(|&v| v == 42.0), "out changed on error");
}

#[test]
fn window_larger_than_the_padded_input() {
    let x = Array4::<f32>::ones((1, 4, 4, 2));
    let too_tall = Error::KernelTooLarge {
        axis: "height",
        kernel_extent: 5,
        padded_input: 4,
    };
    assert_eq!(
        MaxPool2d::new(5).output_shape([1, 4, 4, 2]).unwrap_err(),
        too_tall
    );
    assert_fails(&MaxPool2d::new(5), &x, [1, 1, 1, 2], &too_tall);
    assert_fails(&AvgPool2d::new([5, 1]), &x, [1, 1, 4, 2], &too_tall);
    // Padding 1 each side makes 6 rows: it fits; the width (3 + 0 + 1 = 4 < 5) does not.
    let p = Padding::Explicit {
        top: 1,
        bottom: 1,
        left: 0,
        right: 1,
    };
    let e = AvgPool2d::new([5, 5])
        .with_padding(p)
        .output_shape([1, 4, 3, 2])
        .unwrap_err();
    assert_eq!(
        e,
        Error::KernelTooLarge {
            axis: "width",
            kernel_extent: 5,
            padded_input: 4
        }
    );
    assert!(
        e.to_string().contains("5") && e.to_string().contains("4"),
        "{e}"
    );
    assert_eq!(
        reference::avg_pool2d(x.view(), [5, 5], [1, 1], Padding::Valid, false).unwrap_err(),
        too_tall
    );
}

#[test]
fn zero_size_inputs() {
    for shape in [[0, 4, 4, 2], [1, 0, 4, 2], [1, 4, 0, 2], [1, 4, 4, 0]] {
        let x = Array4::<f32>::zeros(shape);
        let zero = |what: &str| Error::ZeroSize {
            what: what.into(),
            shape: shape.into(),
        };
        assert_fails(
            &AvgPool2d::new(2),
            &x,
            [1, 2, 2, 2],
            &zero("AvgPool2d input"),
        );
        assert_fails(
            &MaxPool2d::new(2),
            &x,
            [1, 2, 2, 2],
            &zero("MaxPool2d input"),
        );
        assert_fails(
            &GlobalAvgPool,
            &x,
            [1, 1, 1, 2],
            &zero("GlobalAvgPool input"),
        );
        assert_fails(&Flatten, &x, [1, 1, 1, 32], &zero("Flatten input"));
        let fc = Dense::new(Array2::<f32>::ones((32, 3)), None).unwrap();
        assert_fails(&fc, &x, [1, 1, 1, 3], &zero("Dense input"));
        assert!(matches!(
            reference::global_avg_pool(x.view()),
            Err(Error::ZeroSize { .. })
        ));
    }
    assert_eq!(
        Dense::<f32>::new(Array2::zeros((0, 3)), None).unwrap_err(),
        Error::ZeroSize {
            what: "Dense weight".into(),
            shape: [0, 3].into()
        }
    );
}

#[test]
fn padding_not_smaller_than_the_kernel() {
    let x = Array4::<f32>::ones((1, 6, 6, 1));
    let p = Padding::Explicit {
        top: 0,
        bottom: 1,
        left: 3,
        right: 0,
    };
    let e = AvgPool2d::new([2, 3])
        .with_padding(p)
        .output_shape([1, 6, 6, 1])
        .unwrap_err();
    assert_eq!(
        e,
        Error::InvalidParameter {
            name: "AvgPool2d padding",
            value: "left = 3".into(),
            reason: "must be smaller than the kernel width 3, so that every window holds an \
                     input element"
                .into(),
        }
    );
    assert_fails(
        &AvgPool2d::new([2, 3]).with_padding(p),
        &x,
        [1, 3, 2, 1],
        &e,
    );
    let e = MaxPool2d::new(1)
        .with_padding(Padding::symmetric(1))
        .output_shape([1, 6, 6, 1]);
    assert!(
        matches!(&e, Err(Error::InvalidParameter { name: "MaxPool2d padding", value, .. }) if value == "top = 1"),
        "{e:?}"
    );
    assert!(matches!(
        reference::max_pool2d(x.view(), [2, 3], [2, 3], p),
        Err(Error::InvalidParameter { .. })
    ));
    // Zero kernel and stride.
    let e = MaxPool2d::new([0, 2])
        .output_shape([1, 6, 6, 1])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid MaxPool2d kernel = [0, 2]: must be ≥ 1 on both axes"
    );
    let e = AvgPool2d::new(2)
        .with_stride([1, 0])
        .output_shape([1, 6, 6, 1])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid AvgPool2d stride = [1, 0]: must be ≥ 1 on both axes"
    );
    assert_fails(&AvgPool2d::new(2).with_stride([1, 0]), &x, [1, 5, 6, 1], &e);
}

#[test]
fn wrong_dense_input_size() {
    let fc = Dense::new(Array2::<f32>::ones((12, 5)), Some(Array1::zeros(5))).unwrap();
    let want = Error::ChannelMismatch {
        what: "Dense input (H·W·C)".into(),
        expected: 12,
        got: 18,
    };
    let x = Array4::<f32>::ones((2, 3, 3, 2));
    assert_fails(&fc, &x, [2, 1, 1, 5], &want);
    assert_eq!(fc.output_shape([2, 3, 3, 2]).unwrap_err(), want);
    assert_eq!(
        want.to_string(),
        "Dense input (H·W·C): expected 12 input channels, got 18"
    );
    assert!(matches!(
        reference::dense(x.view(), fc.weight(), None),
        Err(Error::ChannelMismatch {
            expected: 12,
            got: 18,
            ..
        })
    ));
    assert_eq!(
        Dense::new(Array2::<f32>::ones((12, 5)), Some(Array1::zeros(4))).unwrap_err(),
        Error::ShapeMismatch {
            what: "Dense bias".into(),
            expected: [5].into(),
            got: [4].into()
        }
    );
}

#[test]
fn wrong_out_shape_and_short_scratch() {
    let x = Array4::<f32>::ones((2, 4, 4, 3));
    let mismatch = |what: &str, expected: [usize; 4], got: [usize; 4]| Error::ShapeMismatch {
        what: what.into(),
        expected: expected.into(),
        got: got.into(),
    };
    let bad = [2, 2, 2, 4];
    assert_fails(
        &AvgPool2d::new(2),
        &x,
        bad,
        &mismatch("AvgPool2d output", [2, 2, 2, 3], bad),
    );
    assert_fails(
        &MaxPool2d::new(2),
        &x,
        bad,
        &mismatch("MaxPool2d output", [2, 2, 2, 3], bad),
    );
    assert_fails(
        &GlobalAvgPool,
        &x,
        bad,
        &mismatch("GlobalAvgPool output", [2, 1, 1, 3], bad),
    );
    assert_fails(
        &Flatten,
        &x,
        bad,
        &mismatch("Flatten output", [2, 1, 1, 48], bad),
    );
    let fc = Dense::new(Array2::<f32>::ones((48, 4)), None).unwrap();
    assert_fails(&fc, &x, bad, &mismatch("Dense output", [2, 1, 1, 4], bad));
    // A scratch shorter than announced (the column-reversed view needs the copy).
    let rev = x.slice(s![.., .., ..;-1, ..]);
    let need = fc.scratch_len([2, 4, 4, 3]).unwrap();
    assert!(need >= 2 * 48);
    let mut out = Array4::from_elem((2, 1, 1, 4), 42.0_f32);
    let mut short = vec![0.0; need - 1];
    let e = fc
        .forward_with_scratch(rev, out.view_mut(), &mut short)
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert!(out.iter().all(|&v| v == 42.0));
    // With enough scratch the same call works.
    let mut scratch = vec![f32::NAN; need];
    fc.forward_with_scratch(rev, out.view_mut(), &mut scratch)
        .unwrap();
    assert!(out.iter().all(|&v| v == 48.0));
}
