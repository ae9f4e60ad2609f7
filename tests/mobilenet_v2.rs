//! MobileNetV2: the inverted residual block against the oracle, the
//! architecture's costs against TF-slim's published table, a network built
//! by hand from the public layers against the builder's, and the weights'
//! round trip.

use crate::common::{self, Stored, View, array, view_strategy};
use ndarray::{Array1, Array2, Array4, ArrayView4, Axis, Ix1, Ix4};
use proptest::prelude::*;
use sepconv::mobilenet::v2::{BOTTLENECKS, make_divisible};
use sepconv::mobilenet::{MobileNetV2, MobileNetV2Config, MobileNetWeights, tensor_names};
use sepconv::{
    Activation, Algorithm, BatchNorm, Conv2d, ConvParams, DepthwiseConv2d, Error, Float,
    GlobalAvgPool, InvertedResidual, Layer, Padding, PointwiseConv2d, Residual, Sequential,
    reference,
};

fn bits<F: Float>(a: &Array4<F>) -> Vec<u64> {
    a.iter().map(|v| v.to_f64_exact().to_bits()).collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// One random block: its weights, kept apart for the oracle.
#[derive(Clone, Debug)]
struct Block<F> {
    expand: Option<(Array2<F>, Array1<F>)>,
    depthwise: (Array4<F>, Array1<F>),
    project: (Array2<F>, Array1<F>),
    stride: usize,
    dilation: usize,
    padding: Padding,
    act: Activation,
}

impl<F: Float> Block<F> {
    fn random(seed: u64, c_in: usize, c_out: usize, t: usize, stride: usize, exact: bool) -> Self {
        let wide = c_in * t;
        let act = match seed % 3 {
            0 => Activation::Relu6,
            1 => Activation::Relu,
            // Exact sums stay within f32's 24 bits only when clamped.
            _ if exact => Activation::Relu6,
            _ => Activation::Identity,
        };
        Block {
            expand: (t > 1).then(|| {
                (
                    array([c_in, wide], seed ^ 1, exact),
                    array(wide, seed ^ 2, exact),
                )
            }),
            depthwise: (
                array([3, 3, wide, 1], seed ^ 3, exact),
                array(wide, seed ^ 4, exact),
            ),
            project: (
                array([wide, c_out], seed ^ 5, exact),
                array(c_out, seed ^ 6, exact),
            ),
            stride,
            dilation: 1,
            padding: Padding::Same,
            act,
        }
    }

    fn params(&self) -> ConvParams {
        ConvParams {
            stride: [self.stride; 2],
            dilation: [self.dilation; 2],
            padding: self.padding,
        }
    }

    fn layer(&self) -> InvertedResidual<F> {
        let expand = self.expand.as_ref().map(|(w, b)| {
            PointwiseConv2d::new(w.clone(), Some(b.clone()))
                .unwrap()
                .with_activation(self.act)
        });
        let (w, b) = &self.depthwise;
        let depthwise = DepthwiseConv2d::builder(w.clone())
            .bias(b.clone())
            .params(self.params())
            .activation(self.act)
            .build()
            .unwrap();
        let (w, b) = &self.project;
        let project = PointwiseConv2d::new(w.clone(), Some(b.clone())).unwrap();
        InvertedResidual::new(expand, depthwise, project).unwrap()
    }

    /// The oracle: each conv through `sepconv::reference`, then the sum.
    fn oracle(&self, x: ArrayView4<'_, F>, residual: bool) -> Array4<F> {
        let act = |mut y: Array4<F>| {
            y.mapv_inplace(|v| self.act.apply(v));
            y
        };
        let expanded = match &self.expand {
            Some((w, b)) => act(reference::pointwise_conv2d(x, w.view(), Some(b.view())).unwrap()),
            None => x.to_owned(),
        };
        let (w, b) = &self.depthwise;
        let d = act(reference::depthwise_conv2d(
            expanded.view(),
            w.view(),
            Some(b.view()),
            &self.params(),
        )
        .unwrap());
        let (w, b) = &self.project;
        let mut y = reference::pointwise_conv2d(d.view(), w.view(), Some(b.view())).unwrap();
        if residual {
            y += &x;
        }
        y
    }
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    input: [usize; 4],
    c_out_same: bool,
    t: usize,
    stride: usize,
    exact: bool,
    view: View,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        (1usize..=2, 1usize..=9, 1usize..=9, 1usize..=8),
        any::<bool>(),
        prop_oneof![Just(1usize), Just(2), Just(6)],
        1usize..=2,
        any::<bool>(),
        view_strategy(),
    )
        .prop_map(
            |(seed, (n, h, w, c), c_out_same, t, stride, exact, view)| Case {
                seed,
                input: [n, h, w, c],
                c_out_same,
                t,
                stride,
                exact,
                view,
            },
        )
}

/// Every available algorithm, and `Auto`, on 1 and 2 threads, alone and
/// inside a `Sequential` with garbage scratch and a NaN-poisoned output:
/// dyadic cases bit for bit the oracle's, the others within tolerance.
fn run_case<F: Float + common::Tolerance>(p: &Case) -> Result<(), TestCaseError> {
    let c_in = p.input[3];
    let c_out = if p.c_out_same { c_in } else { c_in + 3 };
    let spec = Block::<F>::random(p.seed, c_in, c_out, p.t, p.stride, p.exact);
    let residual = p.stride == 1 && c_out == c_in;
    let x: Array4<F> = array(p.input, p.seed ^ 0x5A, p.exact);
    let stored = Stored::new(&x, p.view);
    let want = spec.oracle(x.view(), residual);
    let magnitude = {
        let abs = Block {
            expand: spec
                .expand
                .as_ref()
                .map(|(w, b)| (w.mapv(F::abs), b.mapv(F::abs))),
            depthwise: (spec.depthwise.0.mapv(F::abs), spec.depthwise.1.mapv(F::abs)),
            project: (spec.project.0.mapv(F::abs), spec.project.1.mapv(F::abs)),
            act: Activation::Identity,
            ..spec.clone()
        };
        abs.oracle(x.mapv(F::abs).view(), residual)
    };
    let mut block = spec.layer();
    prop_assert_eq!(block.has_residual(), residual);
    let shape = block.output_shape(p.input).unwrap();
    prop_assert_eq!(&shape[..], want.shape());
    let mut algorithms = Algorithm::available();
    algorithms.push(Algorithm::Auto);
    for algorithm in algorithms {
        block.set_algorithm(algorithm);
        let one = pool(1).install(|| block.forward(stored.view())).unwrap();
        let two = pool(2).install(|| block.forward(stored.view())).unwrap();
        prop_assert!(
            bits(&one) == bits(&two),
            "{algorithm:?}: 1 and 2 threads differ"
        );
        let net = Sequential::new().with_named("block", block.clone());
        let mut scratch = vec![F::from_f64_lossy(1e30); net.scratch_len(p.input).unwrap()];
        let mut out = common::poisoned::<F>(shape, true);
        net.forward_with_scratch(stored.view(), out.view_mut(), &mut scratch)
            .unwrap();
        prop_assert!(bits(&out) == bits(&one), "{algorithm:?}: in a Sequential");
        let what = format!("{algorithm:?} {p:?}");
        if p.exact {
            prop_assert!(
                bits(&one) == bits(&want),
                "{what}: exact case differs from the oracle: {:?}",
                one.iter().zip(&want).find(|(a, b)| a != b)
            );
        } else {
            // Three convs deep: the per-layer tolerance, a few times over.
            let m = magnitude.mapv(|v| v * F::from_f64_lossy(8.0));
            common::assert_close(one.view(), want.view(), m.view(), &what);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn inverted_residual_matches_the_oracle_f64(p in case()) {
        run_case::<f64>(&p)?;
    }

    #[test]
    fn inverted_residual_matches_the_oracle_f32(p in case()) {
        run_case::<f32>(&p)?;
    }
}

/// The four kinds of block the issue names, each checked once by hand:
/// with and without the residual, strides 1 and 2, t = 1 and t = 6.
#[test]
fn every_kind_of_block_matches_the_oracle() {
    for (c_in, c_out, t, stride, residual) in [
        (8, 8, 1, 1, true),
        (8, 8, 6, 1, true),
        (8, 16, 6, 1, false),
        (8, 8, 6, 2, false),
        (8, 16, 1, 2, false),
    ] {
        let spec = Block::<f64>::random(7, c_in, c_out, t, stride, true);
        let block = spec.layer();
        assert_eq!(
            block.has_residual(),
            residual,
            "{c_in}→{c_out} t={t} s={stride}"
        );
        assert_eq!(block.expansion(), t);
        assert_eq!(block.expand().is_some(), t > 1);
        let x: Array4<f64> = array([2, 7, 6, c_in], 11, true);
        let want = spec.oracle(x.view(), residual);
        assert_eq!(bits(&block.forward(x.view()).unwrap()), bits(&want));
    }
}

/// Blocks whose expanded map passes 1 MiB an image run band by band (the
/// expansion, depthwise conv and projection of a few rows at a time, in
/// buffers that stay in L2): the oracle's bits on every path, at 1 and 2
/// threads, with and without the residual, strides 1 and 2, odd heights, a
/// batch, a strided input, dilation and explicit padding.
#[test]
fn banded_blocks_match_the_oracle_exactly() {
    fn check<F: Float>() {
        let same = Padding::Same;
        let explicit = Padding::Explicit {
            top: 2,
            bottom: 1,
            left: 0,
            right: 2,
        };
        let cases = [
            (32, 32, 6, [1, 1], same, [2, 40, 36, 32]),
            (32, 24, 6, [2, 2], same, [1, 41, 40, 32]),
            (16, 24, 6, [1, 1], explicit, [1, 97, 31, 16]),
            (16, 24, 6, [2, 1], same, [1, 131, 21, 16]),
        ];
        for (c_in, c_out, t, [stride, dilation], padding, input) in cases {
            let [_, h, w, _] = input;
            assert!(h * w * c_in * t * std::mem::size_of::<F>() > 1 << 20);
            let mut spec = Block::<F>::random(5, c_in, c_out, t, stride, true);
            spec.dilation = dilation;
            spec.padding = padding;
            let mut block = spec.layer();
            let x: Array4<F> = array(input, 13, true);
            let want = bits(&spec.oracle(x.view(), block.has_residual()));
            // The same values in a buffer twice as wide: a strided view.
            let wide = Stored::new(&x, View::ColumnStrided);
            let strided = wide.view();
            let mut algorithms = Algorithm::available();
            algorithms.push(Algorithm::Auto);
            for algorithm in algorithms {
                block.set_algorithm(algorithm);
                for threads in [1, 2] {
                    for (view, what) in [(x.view(), "standard"), (strided, "strided")] {
                        let y = pool(threads).install(|| block.forward(view)).unwrap();
                        assert!(
                            bits(&y) == want,
                            "{} {algorithm:?}, {c_in}→{c_out} t={t} s={stride} d={dilation} \
                             {padding:?}, {threads} thread(s), {what} input",
                            F::NAME
                        );
                    }
                }
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

/// A block whose maps stay whole (the expanded map under 1 MiB) but whose
/// output is large enough for the residual sum to be split over threads
/// (32 × 32 × 32 = 32,768 elements, two chunks): the oracle's bits at 1 and
/// 2 threads, on every path.
#[test]
fn whole_map_blocks_with_a_split_residual_match_the_oracle_exactly() {
    let input = [1, 32, 32, 32];
    let spec = Block::<f32>::random(9, 32, 32, 6, 1, true);
    let mut block = spec.layer();
    assert!(block.has_residual());
    assert!(32 * 32 * 32 * 6 * std::mem::size_of::<f32>() <= 1 << 20);
    let x: Array4<f32> = array(input, 17, true);
    let want = bits(&spec.oracle(x.view(), true));
    let mut algorithms = Algorithm::available();
    algorithms.push(Algorithm::Auto);
    for algorithm in algorithms {
        block.set_algorithm(algorithm);
        for threads in [1, 2] {
            let y = pool(threads).install(|| block.forward(x.view())).unwrap();
            assert!(bits(&y) == want, "{algorithm:?}, {threads} thread(s)");
        }
    }
}

/// TF-slim's published table (`mobilenet_v2` README: millions of MACs,
/// truncated, and millions of parameters, to two decimals, 1001 classes):
/// every checkpoint from the rules alone.
#[test]
fn costs_match_tf_slims_published_checkpoints() {
    let published: [(f64, usize, u64, f64); 22] = [
        (1.4, 224, 582, 6.06),
        (1.3, 224, 509, 5.34),
        (1.0, 224, 300, 3.47),
        (1.0, 192, 221, 3.47),
        (1.0, 160, 154, 3.47),
        (1.0, 128, 99, 3.47),
        (1.0, 96, 56, 3.47),
        (0.75, 224, 209, 2.61),
        (0.75, 192, 153, 2.61),
        (0.75, 160, 107, 2.61),
        (0.75, 128, 69, 2.61),
        (0.75, 96, 39, 2.61),
        (0.5, 224, 97, 1.95),
        (0.5, 192, 71, 1.95),
        (0.5, 160, 50, 1.95),
        (0.5, 128, 32, 1.95),
        (0.5, 96, 18, 1.95),
        (0.35, 224, 59, 1.66),
        (0.35, 192, 43, 1.66),
        (0.35, 160, 30, 1.66),
        (0.35, 128, 20, 1.66),
        (0.35, 96, 11, 1.66),
    ];
    for (alpha, side, macs, params) in published {
        let config = MobileNetV2Config::new()
            .with_alpha(alpha)
            .with_resolution(side)
            .with_classes(1001);
        let total = config.summary().unwrap().total;
        assert_eq!(total.mult_adds / 1_000_000, macs, "{}", config.name());
        let p = (total.params.paper() as f64 / 1e4).round() / 100.0;
        assert_eq!(
            p,
            params,
            "{}: {} weights",
            config.name(),
            total.params.paper()
        );
    }
}

/// The figures for 1.0-224 with 1001 classes, exactly, and the same
/// totals from the built network's own summary.
#[test]
fn one_point_oh_224_exactly() {
    let config = MobileNetV2Config::new().with_classes(1001);
    let summary = config.summary().unwrap();
    assert_eq!(summary.total.mult_adds, 300_775_552);
    assert_eq!(summary.total.params.paper(), 3_471_040);
    // 52 convs (17 depthwise, 16 expansions, 17 projections, stem, Conv_1)
    // and the classifier.
    assert_eq!(summary.rows.len(), 53);
    let text = summary.to_text();
    assert!(
        text.contains("MobileNetV2 1.0-224: 300,775,552 mult-adds"),
        "{text}"
    );
    let net = MobileNetV2::<f32>::seeded(&config, 0).unwrap();
    let built = net.network().summary(net.input_shape(1)).unwrap();
    assert_eq!(built.total.mult_adds, summary.total.mult_adds);
    // Folded: the weights are the same, BN's β went into biases.
    assert_eq!(built.total.params.weights, summary.total.params.weights);
}

/// Shapes through the α × resolution grid: the stem halves the side, four
/// strided sequences halve it again, every block chains, and the network's
/// output is the classes.
#[test]
fn shapes_through_the_grid() {
    for alpha in [1.4, 1.3, 1.0, 0.75, 0.5, 0.35, 0.1, 2.0] {
        for side in [224, 192, 160, 128, 96, 32, 33, 225] {
            let config = MobileNetV2Config::new()
                .with_alpha(alpha)
                .with_resolution(side)
                .with_classes(5);
            let blocks = config.blocks().unwrap();
            assert_eq!(blocks.len(), BOTTLENECKS.iter().map(|b| b.2).sum::<usize>());
            let mut s = side.div_ceil(2);
            assert_eq!(blocks[0].input, [s, s, make_divisible(32.0 * alpha, 8)]);
            for w in blocks.windows(2) {
                assert_eq!(w[0].output, w[1].input);
            }
            for _ in 0..4 {
                s = s.div_ceil(2);
            }
            let last = blocks.last().unwrap();
            assert_eq!(last.output, [s, s, make_divisible(320.0 * alpha, 8)]);
            for b in &blocks {
                assert_eq!(b.residual, b.stride == 1 && b.input[2] == b.output[2]);
                assert!(b.output[2] % 8 == 0 && b.output[2] >= 8);
            }
            let last_conv = if alpha > 1.0 {
                make_divisible(1280.0 * alpha, 8)
            } else {
                1280
            };
            assert_eq!(config.last_channels(), last_conv);
            let layers = config.layers().unwrap();
            assert_eq!(layers[layers.len() - 2].output, [s, s, last_conv]);
            if side == 96 && alpha < 1.0 {
                let net = MobileNetV2::<f32>::seeded(&config, 1).unwrap();
                assert_eq!(
                    net.network().output_shape([2, side, side, 3]).unwrap(),
                    [2, 1, 1, 5]
                );
            }
        }
    }
}

fn tensor<F: Float>(w: &MobileNetWeights<F>, name: &str) -> ndarray::ArrayD<F> {
    w.get(&format!("MobilenetV2/{name}"))
        .unwrap_or_else(|| panic!("{name} missing"))
        .clone()
}

fn bn<F: Float>(w: &MobileNetWeights<F>, layer: &str) -> BatchNorm<F> {
    let part = |p: &str| {
        tensor(w, &format!("{layer}/BatchNorm/{p}"))
            .into_dimensionality::<Ix1>()
            .unwrap()
    };
    BatchNorm::new(
        part("gamma"),
        part("beta"),
        part("moving_mean"),
        part("moving_variance"),
        F::from_f64_lossy(1e-3),
    )
    .unwrap()
}

fn pointwise<F: Float>(w: &MobileNetWeights<F>, layer: &str) -> PointwiseConv2d<F> {
    let w4 = tensor(w, &format!("{layer}/weights"))
        .into_dimensionality::<Ix4>()
        .unwrap();
    let w2 = w4.index_axis_move(Axis(0), 0).index_axis_move(Axis(0), 0);
    PointwiseConv2d::new(w2, None)
        .unwrap()
        .fold_batch_norm(&bn(w, layer))
        .unwrap()
}

/// MobileNetV2 written out from the public layers alone (the block as a
/// `Residual` around a `Sequential` where it has the residual), from the
/// same named weights: the same logits, bit for bit, as the builder's.
#[test]
fn a_v2_built_by_hand_equals_the_builders() {
    let config = MobileNetV2Config::new()
        .with_alpha(0.5)
        .with_resolution(64)
        .with_classes(7);
    let weights = MobileNetWeights::<f32>::seeded(&config, 3).unwrap();
    let relu6 = Activation::Relu6;
    let same = |stride: usize| ConvParams {
        stride: [stride; 2],
        dilation: [1, 1],
        padding: Padding::Same,
    };
    let stem = Conv2d::builder(
        tensor(&weights, "Conv/weights")
            .into_dimensionality()
            .unwrap(),
    )
    .params(same(2))
    .build()
    .unwrap()
    .fold_batch_norm(&bn(&weights, "Conv"))
    .unwrap()
    .with_activation(relu6);
    let mut net = Sequential::new().with(stem);
    let (mut c, mut block) = (make_divisible(32.0 * 0.5, 8), 0);
    for (t, c_out, n, s) in BOTTLENECKS {
        let c_out = make_divisible(c_out as f64 * 0.5, 8);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let name = match block {
                0 => "expanded_conv".to_string(),
                b => format!("expanded_conv_{b}"),
            };
            let mut body = Sequential::new();
            if t > 1 {
                body.push(pointwise(&weights, &format!("{name}/expand")).with_activation(relu6));
            }
            let dw = format!("{name}/depthwise");
            body.push(
                DepthwiseConv2d::builder(
                    tensor(&weights, &format!("{dw}/depthwise_weights"))
                        .into_dimensionality()
                        .unwrap(),
                )
                .params(same(stride))
                .build()
                .unwrap()
                .fold_batch_norm(&bn(&weights, &dw))
                .unwrap()
                .with_activation(relu6),
            );
            body.push(pointwise(&weights, &format!("{name}/project")));
            if stride == 1 && c == c_out {
                net.push(Residual::new(body));
            } else {
                net.push(body);
            }
            (c, block) = (c_out, block + 1);
        }
    }
    net.push(pointwise(&weights, "Conv_1").with_activation(relu6));
    net.push(GlobalAvgPool);
    let logits = tensor(&weights, "Logits/Conv2d_1c_1x1/weights")
        .into_dimensionality::<Ix4>()
        .unwrap()
        .index_axis_move(Axis(0), 0)
        .index_axis_move(Axis(0), 0);
    let bias = tensor(&weights, "Logits/Conv2d_1c_1x1/biases")
        .into_dimensionality::<Ix1>()
        .unwrap();
    net.push(PointwiseConv2d::new(logits, Some(bias)).unwrap());

    let built = MobileNetV2::new(&config, &weights).unwrap();
    let x: Array4<f32> = array([2, 64, 64, 3], 9, false);
    let by_hand = net.forward(x.view()).unwrap();
    let ours = built.forward(x.view()).unwrap();
    let flat = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        flat(&by_hand),
        ours.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // The folded network's cost is the summary's without the BN parameters.
    let (folded, total) = (
        net.cost([1, 64, 64, 3]).unwrap(),
        config.summary().unwrap().total,
    );
    assert_eq!(folded.mult_adds, total.mult_adds);
    assert_eq!(folded.params.weights, total.params.weights);
    assert_eq!(folded.params.bn_affine + folded.params.bn_stats, 0);
}

/// safetensors keeps every tensor, with TF-slim's v2 names, and the network
/// loaded from the file gives the same bits.
#[test]
fn safetensors_round_trip() {
    let config = MobileNetV2Config::new()
        .with_alpha(0.35)
        .with_resolution(96)
        .with_classes(11);
    let weights = MobileNetWeights::<f32>::seeded(&config, 5).unwrap();
    let names: Vec<String> = tensor_names(&config)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for name in [
        "MobilenetV2/Conv/weights",
        "MobilenetV2/Conv/BatchNorm/moving_variance",
        "MobilenetV2/expanded_conv/depthwise/depthwise_weights",
        "MobilenetV2/expanded_conv/project/weights",
        "MobilenetV2/expanded_conv_1/expand/weights",
        "MobilenetV2/expanded_conv_16/project/BatchNorm/gamma",
        "MobilenetV2/Conv_1/weights",
        "MobilenetV2/Logits/Conv2d_1c_1x1/biases",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not among {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.contains("expanded_conv/expand")));
    assert_eq!(weights.len(), names.len());
    let bytes = weights.to_safetensors().unwrap();
    let back = MobileNetWeights::<f32>::from_safetensors(&bytes).unwrap();
    back.check(&config).unwrap();
    assert_eq!(back, weights);
    let x: Array4<f32> = array([1, 96, 96, 3], 2, false);
    let a = MobileNetV2::new(&config, &weights)
        .unwrap()
        .forward(x.view())
        .unwrap();
    let b = MobileNetV2::new(&config, &back)
        .unwrap()
        .forward(x.view())
        .unwrap();
    assert_eq!(a, b);
    // A v1 file is not a v2 network: the first missing tensor is named.
    let v1 = MobileNetWeights::<f32>::seeded(
        &sepconv::mobilenet::MobileNetConfig::new()
            .with_alpha(0.25)
            .with_resolution(96),
        0,
    )
    .unwrap();
    match MobileNetV2::new(&config, &v1) {
        Err(Error::MissingTensor { name }) => assert_eq!(name, "MobilenetV2/Conv/weights"),
        other => panic!("expected a missing tensor, got {other:?}"),
    }
}

#[test]
fn bad_configs_and_blocks_are_errors() {
    let base = MobileNetV2Config::new();
    for (config, field) in [
        (base.with_alpha(0.0), "alpha"),
        (base.with_alpha(f64::NAN), "alpha"),
        (base.with_alpha(1e5), "alpha"),
        (base.with_resolution(31), "resolution"),
        (base.with_resolution(1 << 20), "resolution"),
        (base.with_rho(-1.0), "resolution"),
        (base.with_classes(0), "classes"),
        (base.with_classes(1 << 40), "classes"),
        (base.with_bn_epsilon(-1.0), "bn_epsilon"),
    ] {
        match config.summary() {
            Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, field, "{config:?}"),
            other => panic!("{config:?}: expected an error naming {field}, got {other:?}"),
        }
        assert!(MobileNetV2::<f32>::seeded(&config, 0).is_err());
    }
    // Without the top, the class count does not matter.
    assert!(
        base.with_include_top(false)
            .with_classes(0)
            .summary()
            .is_ok()
    );

    // The input must be RGB at the resolution, and the error says so.
    let net = MobileNetV2::<f32>::seeded(&base.with_alpha(0.35).with_resolution(32), 0).unwrap();
    let err = net
        .forward(Array4::zeros((1, 3, 32, 32)).view())
        .unwrap_err();
    assert!(err.to_string().contains("RGB"), "{err}");
    let err = net
        .forward(Array4::zeros((1, 64, 64, 3)).view())
        .unwrap_err();
    assert!(err.to_string().contains("MobileNetV2 0.35-32"), "{err}");

    // Blocks whose convs do not chain.
    let pw = |i: usize, o: usize| PointwiseConv2d::<f32>::new(Array2::ones((i, o)), None).unwrap();
    let dw = |c: usize| {
        DepthwiseConv2d::builder(Array4::<f32>::ones((3, 3, c, 1)))
            .build()
            .unwrap()
    };
    assert!(matches!(
        InvertedResidual::new(Some(pw(4, 8)), dw(6), pw(6, 4)),
        Err(Error::ChannelMismatch {
            expected: 8,
            got: 6,
            ..
        })
    ));
    assert!(matches!(
        InvertedResidual::new(None, dw(6), pw(5, 4)),
        Err(Error::ChannelMismatch {
            expected: 6,
            got: 5,
            ..
        })
    ));
    // Valid padding shrinks the map, so the residual cannot be added.
    let block = InvertedResidual::new(None, dw(4), pw(4, 4)).unwrap();
    assert!(block.has_residual());
    let err = block.output_shape([1, 8, 8, 4]).unwrap_err();
    assert!(err.to_string().contains("residual"), "{err}");
    // A wrong input names the conv inside the block.
    let err = InvertedResidual::new(Some(pw(4, 8)), dw(8), pw(8, 4))
        .unwrap()
        .output_shape([1, 8, 8, 5])
        .unwrap_err();
    assert!(
        matches!(&err, Error::Layer { name, .. } if name == "expand"),
        "{err}"
    );
    let mut rng = sepconv::init::SplitMix64::new(0);
    for (c_in, c_out, t) in [(0, 4, 6), (4, 0, 6), (4, 4, 0)] {
        assert!(
            InvertedResidual::<f32>::init(
                c_in,
                c_out,
                t,
                1,
                Activation::Relu6,
                sepconv::init::Init::HeNormal,
                &mut rng
            )
            .is_err()
        );
    }
}

/// The summary of a network holding blocks names each conv inside them.
#[test]
fn summary_rows_inside_blocks() {
    let config = MobileNetV2Config::new()
        .with_alpha(0.35)
        .with_resolution(96)
        .with_classes(3);
    let net = MobileNetV2::<f32>::seeded(&config, 0).unwrap();
    let summary = net.network().summary([1, 96, 96, 3]).unwrap();
    let names: Vec<&str> = summary.rows.iter().map(|r| r.name.as_str()).collect();
    for name in [
        "Conv",
        "expanded_conv/depthwise",
        "expanded_conv/project",
        "expanded_conv_1/expand",
        "expanded_conv_2/add",
        "Conv_1",
        "AvgPool",
        "Logits",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    assert!(!names.contains(&"expanded_conv_1/add"));
    assert_eq!(names.iter().filter(|n| n.ends_with("/add")).count(), 10);
}
