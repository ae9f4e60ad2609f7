//! The one rule for non-finite values (see `sepconv::conv`): padding
//! contributes nothing, so a NaN or ±inf in an input or a weight reaches
//! exactly the outputs whose window uses it inside the input, on every path.
//! Each layer on each path this CPU has is compared with the oracle on
//! which outputs are NaN, +inf, −inf or finite.

use ndarray::{Array2, Array4};
use proptest::prelude::*;
use sepconv::{
    Activation, Algorithm, BatchNorm, Conv2d, DepthwiseConv2d, Error, Layer, Padding,
    PointwiseConv2d, SeparableConv2d,
};

/// 0 finite, 1 NaN, 2 +inf, 3 −inf.
fn class(v: f32) -> u8 {
    if v.is_nan() {
        1
    } else if v == f32::INFINITY {
        2
    } else if v == f32::NEG_INFINITY {
        3
    } else {
        0
    }
}

fn classes(a: &Array4<f32>) -> Array4<u8> {
    a.mapv(class)
}

/// Values in [−1, 1] in steps of 1/4 (a ninth of them exactly 0, so that
/// 0 × inf happens inside the image too).
fn values(shape: [usize; 4], seed: u64) -> Array4<f32> {
    let mut i = 0u64;
    Array4::from_shape_simple_fn(shape, || {
        i += 1;
        let h = sepconv::init::SplitMix64::new(seed ^ (i << 20)).next_u64();
        (h % 9) as f32 / 4.0 - 1.0
    })
}

const SPECIAL: [f32; 3] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];

/// Puts `SPECIAL[kind]` at flat position `at` of `a` (modulo its length).
fn poison(a: &mut Array4<f32>, at: usize, kind: usize) {
    let n = a.len();
    let v = a.iter_mut().nth(at % n).expect("non-empty");
    *v = SPECIAL[kind % 3];
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0usize..=2, 0usize..=2).prop_map(|(a, b)| Padding::Explicit {
            top: a,
            bottom: b,
            left: b,
            right: a,
        }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: Padding,
    /// Where the weight is poisoned, and with what.
    w_at: usize,
    w_kind: usize,
    /// Where the input is poisoned (if at all), and with what.
    x_at: Option<usize>,
    x_kind: usize,
    seed: u64,
}

prop_compose! {
    fn case()(
        n in 1usize..=2, h in 3usize..=9, w in 3usize..=9,
        // 1–4 channels take the direct kernel, more im2col; 8 and 16 the
        // blocked depthwise kernels.
        c in prop_oneof![1usize..=4, Just(8usize), Just(16usize), 5usize..=20],
        cout in 1usize..=20, k in 1usize..=3, stride in 1usize..=2,
        padding in padding(),
        w_at in 0usize..10_000, w_kind in 0usize..3,
        x_at in proptest::option::of(0usize..10_000), x_kind in 0usize..3,
        seed in any::<u64>(),
    ) -> Case {
        Case { n, h, w, c, cout, k, stride, padding, w_at, w_kind, x_at, x_kind, seed }
    }
}

impl Case {
    fn input(&self) -> Array4<f32> {
        let mut x = values([self.n, self.h, self.w, self.c], self.seed);
        if let Some(at) = self.x_at {
            poison(&mut x, at, self.x_kind);
        }
        x
    }
}

/// Every path's output classes equal the oracle's.
fn same_classes(
    what: &str,
    mut layer: Box<dyn Layer<f32>>,
    x: &Array4<f32>,
) -> Result<(), TestCaseError> {
    layer.set_algorithm(Algorithm::Reference);
    let expected = match layer.forward(x.view()) {
        Ok(y) => classes(&y),
        Err(Error::KernelTooLarge { .. }) => return Ok(()),
        Err(e) => return Err(TestCaseError::fail(format!("{what}: {e}"))),
    };
    for algorithm in Algorithm::available() {
        layer.set_algorithm(algorithm);
        let got = classes(&layer.forward(x.view()).unwrap());
        let differ = expected.iter().zip(&got).filter(|(e, g)| e != g).count();
        prop_assert_eq!(
            differ,
            0,
            "{} on {:?}: {} outputs differ from the oracle in NaN/inf\noracle {:?}\ngot {:?}",
            what,
            algorithm,
            differ,
            expected,
            got
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_non_finite_positions_match_the_oracle(p in case()) {
        let mut w = values([p.k, p.k, p.c, p.cout], p.seed ^ 1);
        poison(&mut w, p.w_at, p.w_kind);
        let conv = Conv2d::builder(w)
            .stride(p.stride)
            .padding(p.padding)
            .activation(Activation::Identity)
            .build()
            .unwrap();
        same_classes("Conv2d", Box::new(conv), &p.input())?;
    }

    #[test]
    fn depthwise_non_finite_positions_match_the_oracle(p in case(), m in 1usize..=2) {
        let mut w = values([p.k, p.k, p.c, m], p.seed ^ 2);
        poison(&mut w, p.w_at, p.w_kind);
        let dw = DepthwiseConv2d::builder(w)
            .stride(p.stride)
            .padding(p.padding)
            .build()
            .unwrap();
        same_classes("DepthwiseConv2d", Box::new(dw), &p.input())?;
    }

    #[test]
    fn pointwise_and_separable_non_finite_positions_match_the_oracle(p in case()) {
        let mut pw = values([1, 1, p.c, p.cout], p.seed ^ 3);
        poison(&mut pw, p.w_at, p.w_kind);
        let pw = pw.into_shape_with_order((p.c, p.cout)).unwrap();
        let layer = PointwiseConv2d::new(pw.clone(), None).unwrap();
        same_classes("PointwiseConv2d", Box::new(layer), &p.input())?;
        let mut dw = values([p.k, p.k, p.c, 1], p.seed ^ 4);
        poison(&mut dw, p.w_at / 7, p.w_kind + 1);
        let sep = SeparableConv2d::builder(dw, pw)
            .stride(p.stride)
            .padding(p.padding)
            .build()
            .unwrap();
        same_classes("SeparableConv2d", Box::new(sep), &p.input())?;
    }
}

#[test]
fn padding_times_an_infinite_weight_is_not_nan() {
    // The case the issue found: a 3×3 SAME conv with one +inf weight on an
    // image of ones. Every output's window has the +inf tap inside the
    // image or in the padding; where it is in the padding the output is
    // finite (8 or fewer finite taps), elsewhere +inf, on every path.
    let mut w = Array4::<f32>::ones((3, 3, 8, 4));
    w[[0, 0, 0, 0]] = f32::INFINITY;
    let x = Array4::<f32>::ones((1, 5, 5, 8));
    for algorithm in Algorithm::available() {
        let conv = Conv2d::builder(w.clone())
            .padding(Padding::Same)
            .algorithm(algorithm)
            .build()
            .unwrap();
        let y = conv.forward(x.view()).unwrap();
        for ((_, oy, ox, o), &v) in y.indexed_iter() {
            // Tap (0, 0) reads pixel (oy − 1, ox − 1).
            let inside = oy >= 1 && ox >= 1;
            match (o, inside) {
                (0, true) => assert_eq!(v, f32::INFINITY, "{algorithm:?} at {oy},{ox}"),
                _ => assert!(v.is_finite(), "{algorithm:?} at {oy},{ox},{o}: {v}"),
            }
        }
    }
}

#[test]
fn batch_norm_refuses_non_finite_vectors_and_overflowing_scales() {
    let ones = || ndarray::Array1::<f32>::ones(3);
    let with = |v: f32| {
        let mut a = ones();
        a[1] = v;
        a
    };
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for (what, r) in [
            (
                "BatchNorm gamma",
                BatchNorm::new(with(bad), ones(), ones(), ones(), 1e-3),
            ),
            (
                "BatchNorm beta",
                BatchNorm::new(ones(), with(bad), ones(), ones(), 1e-3),
            ),
            (
                "BatchNorm mean",
                BatchNorm::new(ones(), ones(), with(bad), ones(), 1e-3),
            ),
        ] {
            match r {
                Err(Error::NonFinite {
                    what: w,
                    index: 1,
                    value,
                }) => {
                    assert_eq!(w, what);
                    assert_eq!(value.to_bits(), (bad as f64).to_bits());
                }
                other => panic!("{what} = {bad}: {other:?}"),
            }
        }
        assert!(matches!(
            BatchNorm::new(ones(), ones(), ones(), with(bad), 1e-3),
            Err(Error::InvalidVariance { channel: 1, .. })
        ));
    }
    // γ / √ε overflows f32 with γ = 3e38 and ε = 0.01; in f64 it is fine.
    let r = BatchNorm::new(
        with(3e38),
        ones(),
        ones(),
        ndarray::Array1::zeros(3),
        0.01f32,
    );
    assert!(
        matches!(&r, Err(Error::NonFinite { what, index: 1, .. }) if what.contains("scale")),
        "{r:?}"
    );
    let wide = BatchNorm::<f64>::new(
        ndarray::Array1::from_elem(3, 3e38),
        ndarray::Array1::ones(3),
        ndarray::Array1::ones(3),
        ndarray::Array1::zeros(3),
        0.01,
    );
    assert!(wide.is_ok());
}

#[test]
fn softmax_takes_infinite_logits_to_their_limit() {
    use sepconv::mobilenet::softmax;
    let inf = f32::INFINITY;
    let logits = Array2::from_shape_vec(
        (5, 3),
        vec![
            inf,
            0.0,
            1.0, // one +inf: all the mass
            inf,
            inf,
            -inf, // two: shared
            -inf,
            0.0,
            0.0, // −inf: zero
            -inf,
            -inf,
            -inf, // all −inf: uniform
            f32::NAN,
            0.0,
            1.0, // NaN: all NaN
        ],
    )
    .unwrap();
    let p = softmax(logits.view());
    assert_eq!(p.row(0).to_vec(), vec![1.0, 0.0, 0.0]);
    assert_eq!(p.row(1).to_vec(), vec![0.5, 0.5, 0.0]);
    assert_eq!(p.row(2).to_vec(), vec![0.0, 0.5, 0.5]);
    let third = 1.0f32 / 3.0;
    assert_eq!(p.row(3).to_vec(), vec![third; 3]);
    assert!(p.row(4).iter().all(|v| v.is_nan()));
}
