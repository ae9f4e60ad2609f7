//! Property tests: every layer and every algorithm path against the oracle.
//!
//! Problems are drawn over batch 1–3, sizes 1–20, channels 1–16 (pointwise up
//! to 40, past the GEMM register tiles), kernels 1–5, strides 1–3, dilations
//! 1–2, all padding modes, groups, multipliers, four input layouts (standard,
//! column-strided, channels-first storage, negative row stride) and two output
//! layouts, with outputs pre-filled with NaN. Half the cases use dyadic values
//! (k/4), whose sums are exact: there the fast paths must match the oracle bit
//! for bit. The others use uniform values and the tolerance of
//! `common::Tolerance`.

use crate::common::{Stored, Tolerance, View, array, assert_close, poisoned, view_strategy};
use ndarray::{Array1, Array2, Array4, ArrayView4, Axis};
use proptest::prelude::*;
use sepconv::{
    Activation, Algorithm, BatchNorm, Conv2d, ConvParams, DepthwiseConv2d, Error, Padding,
    PointwiseConv2d, SeparableConv2d, reference,
};

/// 256 cases, or `PROPTEST_CASES` when set (`.ci/run` runs one of these
/// under valgrind with a few).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3).prop_map(|(top, bottom, left, right)| {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            }
        }),
    ]
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Identity),
        Just(Activation::Relu),
        Just(Activation::Relu6)
    ]
}

/// `Auto` and every path this CPU runs (the SIMD paths it lacks are said
/// once, on stderr).
fn algorithm() -> impl Strategy<Value = Algorithm> {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        for a in Algorithm::unavailable() {
            eprintln!("not tested here: Algorithm::{a:?} (this CPU cannot run it)");
        }
    });
    let mut all = Algorithm::available();
    all.push(Algorithm::Auto);
    prop::sample::select(all)
}

/// Everything a conv test case varies.
#[derive(Clone, Debug)]
struct Problem {
    batch: usize,
    hw: [usize; 2],
    kernel: [usize; 2],
    params: ConvParams,
    /// Conv2d: channels per group; depthwise: channels; pointwise: C_in.
    cin: usize,
    /// Conv2d: outputs per group; depthwise: multiplier; pointwise: C_out.
    cout: usize,
    groups: usize,
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
    fn problem(max_channels: usize, max_groups: usize, max_kernel: usize)(
        batch in 1usize..=3,
        hw in [1usize..=20, 1usize..=20],
        kernel in [1usize..=max_kernel, 1usize..=max_kernel],
        stride in [1usize..=3, 1usize..=3],
        dilation in [1usize..=2, 1usize..=2],
        padding in padding(),
        cin in 1usize..=max_channels,
        cout in 1usize..=max_channels,
        groups in 1usize..=max_groups,
        bias in any::<bool>(),
        activation in activation(),
        algorithm in algorithm(),
        view in view_strategy(),
        out_transposed in any::<bool>(),
        exact in any::<bool>(),
        f64 in any::<bool>(),
        seed in any::<u64>(),
    ) -> Problem {
        Problem {
            batch, hw, kernel, params: ConvParams { stride, dilation, padding }, cin, cout, groups, bias,
            activation, algorithm, view, out_transposed, exact, f64, seed,
        }
    }
}

/// Runs `layer` on the problem's input into a poisoned buffer (and through
/// `forward`), and compares both with the oracle's answer.
fn check<F: Tolerance>(
    p: &Problem,
    x: &Array4<F>,
    oracle: Result<Array4<F>, Error>,
    magnitude: impl FnOnce() -> Array4<F>,
    forward_into: impl Fn(ArrayView4<'_, F>, ndarray::ArrayViewMut4<'_, F>) -> Result<(), Error>,
    forward: impl Fn(ArrayView4<'_, F>) -> Result<Array4<F>, Error>,
) -> Result<(), TestCaseError> {
    let stored = Stored::new(x, p.view);
    let expected = match oracle {
        Err(e) => {
            // Only geometry can fail for these problems; the layer must say the same.
            prop_assert!(matches!(e, Error::KernelTooLarge { .. }), "{e}");
            prop_assert_eq!(forward(stored.view()).unwrap_err(), e);
            return Ok(());
        }
        Ok(y) => y.mapv(|v| p.activation.apply(v)),
    };
    let shape = <[usize; 4]>::try_from(expected.shape()).unwrap();
    let mut out = poisoned::<F>(shape, p.out_transposed);
    forward_into(stored.view(), out.view_mut()).unwrap();
    if p.exact {
        prop_assert_eq!(
            &out,
            &expected,
            "exact case must match the oracle bit for bit"
        );
    } else {
        assert_close(
            out.view(),
            expected.view(),
            magnitude().view(),
            &format!("{p:?}"),
        );
    }
    prop_assert_eq!(forward(stored.view()).unwrap(), out);
    Ok(())
}

fn abs<F: Tolerance, D: ndarray::Dimension>(a: &ndarray::Array<F, D>) -> ndarray::Array<F, D> {
    a.mapv(|v| v.abs())
}

fn run_conv2d<F: Tolerance>(p: &Problem) -> Result<(), TestCaseError> {
    let (cin, cout) = (p.cin * p.groups, p.cout * p.groups);
    let x: Array4<F> = array((p.batch, p.hw[0], p.hw[1], cin), p.seed, p.exact);
    let w: Array4<F> = array((p.kernel[0], p.kernel[1], p.cin, cout), p.seed ^ 1, p.exact);
    let b: Option<Array1<F>> = p.bias.then(|| array(cout, p.seed ^ 2, p.exact));
    let conv = Conv2d::builder(w.clone())
        .bias_opt(b.clone())
        .params(p.params)
        .groups(p.groups)
        .activation(p.activation)
        .algorithm(p.algorithm)
        .build()
        .unwrap();
    let oracle = reference::conv2d(
        x.view(),
        w.view(),
        b.as_ref().map(|b| b.view()),
        &p.params,
        p.groups,
    );
    let magnitude = || {
        let b = b.as_ref().map(abs);
        reference::conv2d(
            abs(&x).view(),
            abs(&w).view(),
            b.as_ref().map(|b| b.view()),
            &p.params,
            p.groups,
        )
        .unwrap()
    };
    check(
        p,
        &x,
        oracle,
        magnitude,
        |x, o| conv.forward_into(x, o),
        |x| conv.forward(x),
    )
}

fn run_depthwise<F: Tolerance>(p: &Problem) -> Result<(), TestCaseError> {
    let (c, m) = (p.cin, 1 + p.cout % 3);
    let x: Array4<F> = array((p.batch, p.hw[0], p.hw[1], c), p.seed, p.exact);
    let w: Array4<F> = array((p.kernel[0], p.kernel[1], c, m), p.seed ^ 1, p.exact);
    let b: Option<Array1<F>> = p.bias.then(|| array(c * m, p.seed ^ 2, p.exact));
    let dw = DepthwiseConv2d::builder(w.clone())
        .bias_opt(b.clone())
        .params(p.params)
        .activation(p.activation)
        .algorithm(p.algorithm)
        .build()
        .unwrap();
    let oracle =
        reference::depthwise_conv2d(x.view(), w.view(), b.as_ref().map(|b| b.view()), &p.params);
    let magnitude = || {
        let b = b.as_ref().map(abs);
        reference::depthwise_conv2d(
            abs(&x).view(),
            abs(&w).view(),
            b.as_ref().map(|b| b.view()),
            &p.params,
        )
        .unwrap()
    };
    check(
        p,
        &x,
        oracle,
        magnitude,
        |x, o| dw.forward_into(x, o),
        |x| dw.forward(x),
    )
}

fn run_pointwise<F: Tolerance>(p: &Problem) -> Result<(), TestCaseError> {
    let x: Array4<F> = array((p.batch, p.hw[0], p.hw[1], p.cin), p.seed, p.exact);
    let w: Array2<F> = array((p.cin, p.cout), p.seed ^ 1, p.exact);
    let b: Option<Array1<F>> = p.bias.then(|| array(p.cout, p.seed ^ 2, p.exact));
    let pw = PointwiseConv2d::new(w.clone(), b.clone())
        .unwrap()
        .with_activation(p.activation)
        .with_algorithm(p.algorithm);
    let oracle = reference::pointwise_conv2d(x.view(), w.view(), b.as_ref().map(|b| b.view()));
    let magnitude = || {
        let b = b.as_ref().map(abs);
        reference::pointwise_conv2d(abs(&x).view(), abs(&w).view(), b.as_ref().map(|b| b.view()))
            .unwrap()
    };
    check(
        p,
        &x,
        oracle,
        magnitude,
        |x, o| pw.forward_into(x, o),
        |x| pw.forward(x),
    )
}

/// The composed full kernel of a depthwise `[kh, kw, C, m]` and pointwise
/// `[C·m, N]` pair, in f64: W[y, x, c, n] = Σ_j D[y, x, c, j]·P[c·m + j, n].
fn compose<F: Tolerance>(d: &Array4<F>, pw: &Array2<F>) -> Array4<F> {
    let (kh, kw, c, m) = d.dim();
    Array4::from_shape_fn((kh, kw, c, pw.ncols()), |(y, x, ci, n)| {
        F::from_f64_lossy(
            (0..m)
                .map(|j| d[[y, x, ci, j]].to_f64_exact() * pw[[ci * m + j, n]].to_f64_exact())
                .sum(),
        )
    })
}

fn run_factorized<F: Tolerance>(p: &Problem) -> Result<(), TestCaseError> {
    let (c, m, n) = (p.cin, p.groups, p.cout);
    let x: Array4<F> = array((p.batch, p.hw[0], p.hw[1], c), p.seed, false);
    let d: Array4<F> = array((p.kernel[0], p.kernel[1], c, m), p.seed ^ 1, false);
    let pw: Array2<F> = array((c * m, n), p.seed ^ 2, false);
    let sep = SeparableConv2d::builder(d.clone(), pw.clone())
        .params(p.params)
        .algorithm(p.algorithm)
        .build()
        .unwrap();
    let full = compose(&d, &pw);
    let Ok(expected) = reference::conv2d(x.view(), full.view(), None, &p.params, 1) else {
        prop_assert!(sep.forward(x.view()).is_err());
        return Ok(());
    };
    let magnitude = {
        let full_abs = compose(&abs(&d), &abs(&pw));
        reference::conv2d(abs(&x).view(), full_abs.view(), None, &p.params, 1).unwrap()
    };
    // Two roundings (depthwise, then pointwise) instead of one: twice the budget.
    let got = sep.forward(x.view()).unwrap();
    assert_close(
        got.view(),
        expected.view(),
        magnitude.mapv(|v| v + v).view(),
        "separable vs composed full conv",
    );
    // to_standard() builds the same composed kernel.
    let std = sep.to_standard().unwrap();
    assert_close(
        std.weight(),
        full.view(),
        compose(&abs(&d), &abs(&pw)).view(),
        "to_standard weight",
    );
    // Cost: separable / standard = m·(1/N + 1/(kh·kw)), as exact integers.
    let shape = [p.batch, p.hw[0], p.hw[1], c];
    let (s, f) = (
        sep.cost(shape).unwrap().mult_adds,
        std.cost(shape).unwrap().mult_adds,
    );
    let k = (p.kernel[0] * p.kernel[1]) as u64;
    prop_assert_eq!(s * n as u64 * k, f * m as u64 * (k + n as u64));
    if m == 1 && p.params.stride == [1, 1] && p.params.padding == Padding::Same {
        let ratio = s as f64 / f as f64;
        let paper = 1.0 / n as f64 + 1.0 / k as f64;
        prop_assert!((ratio - paper).abs() <= 1e-15 * paper, "{ratio} vs {paper}");
    }
    Ok(())
}

fn bn<F: Tolerance>(c: usize, seed: u64) -> BatchNorm<F> {
    let g: Array1<F> = array(c, seed, false);
    let var: Array1<F> = array::<F, _>(c, seed ^ 3, false).mapv(|v| v.abs());
    BatchNorm::new(
        g,
        array(c, seed ^ 1, false),
        array(c, seed ^ 2, false),
        var,
        F::from_f64_lossy(1e-3),
    )
    .unwrap()
}

/// conv → BN equals the conv with BN folded in, for all three layers.
fn run_folding<F: Tolerance>(p: &Problem) -> Result<(), TestCaseError> {
    let x: Array4<F> = array((p.batch, p.hw[0], p.hw[1], p.cin), p.seed, false);
    let b: Option<Array1<F>> = p.bias.then(|| array(p.cout, p.seed ^ 2, false));
    let params = ConvParams {
        padding: Padding::Same,
        ..p.params
    };
    let norm = bn::<F>(p.cout, p.seed ^ 5);
    let b_abs = b.as_ref().map(abs);
    let (scale, shift) = norm.scale_shift();
    let fold_check = |plain: Array4<F>, folded: Array4<F>, magnitude: Array4<F>| {
        let unfolded = norm.forward(plain.view()).unwrap();
        // Error of the folded path ≈ rounding of Σ|x·s·w| + |s·b| + |t|.
        let mut mag = magnitude;
        for mut px in mag.lanes_mut(Axis(3)) {
            ndarray::Zip::from(&mut px)
                .and(scale)
                .and(shift)
                .for_each(|m, &s, &t| *m = (*m * s.abs() + t.abs()) * F::from_f64_lossy(4.0));
        }
        assert_close(folded.view(), unfolded.view(), mag.view(), "BN folding");
    };
    // Standard conv.
    let w: Array4<F> = array((p.kernel[0], p.kernel[1], p.cin, p.cout), p.seed ^ 1, false);
    let conv = Conv2d::builder(w.clone())
        .bias_opt(b.clone())
        .params(params)
        .build()
        .unwrap();
    let mag = reference::conv2d(
        abs(&x).view(),
        abs(&w).view(),
        b_abs.as_ref().map(|b| b.view()),
        &params,
        1,
    )
    .unwrap();
    fold_check(
        conv.forward(x.view()).unwrap(),
        conv.fold_batch_norm(&norm)
            .unwrap()
            .forward(x.view())
            .unwrap(),
        mag,
    );
    // Pointwise.
    let wp: Array2<F> = array((p.cin, p.cout), p.seed ^ 1, false);
    let pw = PointwiseConv2d::new(wp.clone(), b.clone()).unwrap();
    let mag = reference::pointwise_conv2d(
        abs(&x).view(),
        abs(&wp).view(),
        b_abs.as_ref().map(|b| b.view()),
    )
    .unwrap();
    fold_check(
        pw.forward(x.view()).unwrap(),
        pw.fold_batch_norm(&norm)
            .unwrap()
            .forward(x.view())
            .unwrap(),
        mag,
    );
    // Depthwise with C_out = cout: channels = cin, multiplier chosen so C·m = cout when possible.
    if p.cout.is_multiple_of(p.cin) {
        let wd: Array4<F> = array(
            (p.kernel[0], p.kernel[1], p.cin, p.cout / p.cin),
            p.seed ^ 1,
            false,
        );
        let dw = DepthwiseConv2d::builder(wd.clone())
            .bias_opt(b.clone())
            .params(params)
            .build()
            .unwrap();
        let mag = reference::depthwise_conv2d(
            abs(&x).view(),
            abs(&wd).view(),
            b_abs.as_ref().map(|b| b.view()),
            &params,
        )
        .unwrap();
        fold_check(
            dw.forward(x.view()).unwrap(),
            dw.fold_batch_norm(&norm)
                .unwrap()
                .forward(x.view())
                .unwrap(),
            mag,
        );
    }
    Ok(())
}

macro_rules! both_types {
    ($f:ident, $p:expr) => {
        if $p.f64 {
            $f::<f64>(&$p)
        } else {
            $f::<f32>(&$p)
        }
    };
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv2d_matches_oracle(p in problem(8, 3, 5)) {
        both_types!(run_conv2d, p)?;
    }

    #[test]
    fn depthwise_matches_oracle(p in problem(16, 1, 5)) {
        both_types!(run_depthwise, p)?;
    }

    /// Depthwise at MobileNet's shapes, which the general property rarely
    /// draws: f32, multiplier 1, channels a multiple of 8 up to 64 (every
    /// register block of the f32 kernel: 8 × 8, 4 × 16, 2 × 32, the sliding
    /// windows of 3-tap stride-1 rows: 8 or 4 pixels × 8, 16 or 32 channels,
    /// and AVX-512's windows of 3-tap stride-2 rows: 4 pixels × 32 or 64
    /// channels), at most 3×3 taps; any stride, dilation, padding.
    #[test]
    fn depthwise_mobilenet_shapes_match_oracle(p in problem(8, 1, 3), exact in any::<bool>()) {
        let p = Problem { cin: 8 * p.cin, cout: 3, exact, f64: false, ..p };
        run_depthwise::<f32>(&p)?;
    }

    #[test]
    fn pointwise_matches_oracle(p in problem(40, 1, 1)) {
        both_types!(run_pointwise, p)?;
    }

    /// Depthwise then pointwise (nothing between) equals the oracle run with
    /// the composed full kernel; `groups` is reused as the multiplier (1–3).
    #[test]
    fn separable_equals_composed_full_conv(p in problem(16, 3, 5)) {
        both_types!(run_factorized, p)?;
    }

    #[test]
    fn batch_norm_folding_is_equivalent(p in problem(12, 1, 3)) {
        both_types!(run_folding, p)?;
    }
}

/// The fast paths give the same bits with 1 and with 2 threads.
#[test]
fn one_and_two_threads_agree_bit_for_bit() {
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let x: Array4<f32> = array((2, 29, 31, 24), 7, false);
    let conv = Conv2d::builder(array((3, 3, 24, 40), 8, false))
        .padding(Padding::Same)
        .stride(2)
        .build()
        .unwrap();
    let dw = DepthwiseConv2d::builder(array((3, 3, 24, 2), 9, false))
        .padding(Padding::Same)
        .activation(Activation::Relu6)
        .build()
        .unwrap();
    let pw = PointwiseConv2d::new(array((24, 72), 10, false), Some(array(72, 11, false))).unwrap();
    // Fewer rows than columns: the GEMM splits column panels instead.
    let wide_x: Array4<f32> = array((1, 3, 5, 40), 12, false);
    let wide =
        PointwiseConv2d::new(array((40, 200), 13, false), Some(array(200, 14, false))).unwrap();
    for (name, run) in [
        (
            "conv2d",
            Box::new(|| conv.forward(x.view()).unwrap()) as Box<dyn Fn() -> Array4<f32> + Sync>,
        ),
        ("depthwise", Box::new(|| dw.forward(x.view()).unwrap())),
        ("pointwise", Box::new(|| pw.forward(x.view()).unwrap())),
        (
            "pointwise, column split",
            Box::new(|| wide.forward(wide_x.view()).unwrap()),
        ),
    ] {
        let one = pool(1).install(&run);
        let two = pool(2).install(&run);
        let ones: Vec<u32> = one.iter().map(|v| v.to_bits()).collect();
        let twos: Vec<u32> = two.iter().map(|v| v.to_bits()).collect();
        assert!(ones == twos, "{name}: 1 and 2 threads differ");
    }
}

/// Inputs whose pixels lie a multiple of 4 KiB apart (1024 or 2048 f32
/// channels) are copied into the scratch at a padded stride before the SIMD
/// GEMM, so that a tile's rows do not share one L1 set. The copy must give
/// the oracle's bits (dyadic values), as must the in-place path a scratch
/// too short for the copy falls back to, on every path and at 1 and 2
/// threads, over both row and column splits.
#[test]
fn pointwise_staged_inputs_match_oracle_exactly() {
    use sepconv::Layer;
    for (cin, cout, shape) in [
        (1024, 40, [2, 7, 5]),
        (2048, 24, [1, 3, 2]),
        (1024, 200, [1, 1, 3]),
    ] {
        let x: Array4<f32> = array((shape[0], shape[1], shape[2], cin), 21, true);
        let w: Array2<f32> = array((cin, cout), 22, true);
        let b: Array1<f32> = array(cout, 23, true);
        let expected = reference::pointwise_conv2d(x.view(), w.view(), Some(b.view())).unwrap();
        let mut all = Algorithm::available();
        all.push(Algorithm::Auto);
        for algorithm in all {
            let pw = PointwiseConv2d::new(w.clone(), Some(b.clone()))
                .unwrap()
                .with_algorithm(algorithm);
            let len = pw.scratch_len([shape[0], shape[1], shape[2], cin]).unwrap();
            match algorithm {
                Algorithm::Avx2Fma | Algorithm::Avx512F => assert!(len > 0, "{algorithm:?}"),
                Algorithm::Portable | Algorithm::Reference => assert_eq!(len, 0, "{algorithm:?}"),
                _ => {}
            }
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                for scratch_len in [len, 0] {
                    let mut out = Array4::<f32>::from_elem(expected.raw_dim(), f32::NAN);
                    let mut scratch = vec![f32::NAN; scratch_len];
                    pool.install(|| {
                        pw.forward_with_scratch(x.view(), out.view_mut(), &mut scratch)
                    })
                    .unwrap();
                    assert!(
                        out == expected,
                        "{algorithm:?}, {cin}→{cout}, {threads} thread(s), scratch {scratch_len}"
                    );
                }
            }
        }
    }
}
