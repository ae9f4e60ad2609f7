//! MobileNet v1: architecture, paper costs, weights I/O, validation, and the
//! folded network against an unfolded computation by the oracle.

use crate::common;
use ndarray::{Array1, Array4, ArrayD, Axis, Ix1, Ix4, IxDyn};
use sepconv::mobilenet::{
    LayerKind, MobileNet, MobileNetConfig, MobileNetWeights, Variant, softmax, tensor_names, top_k,
};
use sepconv::{Activation, BatchNorm, ConvGeometry, ConvParams, Error, Padding, reference};

fn m() -> MobileNetConfig {
    MobileNetConfig::new()
}

#[test]
fn one_point_oh_224_is_the_papers_anchor() {
    let s = m().summary().unwrap();
    assert_eq!(s.total.mult_adds, 568_740_352);
    assert_eq!(s.total.params.paper(), 4_209_088);
    // Keras' figure: + FC bias + BN γ, β, moving mean and variance.
    assert_eq!(s.total.params.total(), 4_253_864);
    assert_eq!(
        s.rows.len(),
        28,
        "27 conv layers + FC; 28 layers counting dw and pw apart, with the FC"
    );
    assert_eq!(
        s.rows
            .iter()
            .filter(|r| r.spec.kind != LayerKind::FullyConnected)
            .count(),
        27
    );
}

/// Table 1's input sizes, row by row (block 13's depthwise at stride 1).
#[test]
fn table_1_shapes() {
    let table: [(&str, usize, [usize; 3]); 28] = [
        ("Conv2d_0", 2, [224, 224, 3]),
        ("Conv2d_1_depthwise", 1, [112, 112, 32]),
        ("Conv2d_1_pointwise", 1, [112, 112, 32]),
        ("Conv2d_2_depthwise", 2, [112, 112, 64]),
        ("Conv2d_2_pointwise", 1, [56, 56, 64]),
        ("Conv2d_3_depthwise", 1, [56, 56, 128]),
        ("Conv2d_3_pointwise", 1, [56, 56, 128]),
        ("Conv2d_4_depthwise", 2, [56, 56, 128]),
        ("Conv2d_4_pointwise", 1, [28, 28, 128]),
        ("Conv2d_5_depthwise", 1, [28, 28, 256]),
        ("Conv2d_5_pointwise", 1, [28, 28, 256]),
        ("Conv2d_6_depthwise", 2, [28, 28, 256]),
        ("Conv2d_6_pointwise", 1, [14, 14, 256]),
        ("Conv2d_7_depthwise", 1, [14, 14, 512]),
        ("Conv2d_7_pointwise", 1, [14, 14, 512]),
        ("Conv2d_8_depthwise", 1, [14, 14, 512]),
        ("Conv2d_8_pointwise", 1, [14, 14, 512]),
        ("Conv2d_9_depthwise", 1, [14, 14, 512]),
        ("Conv2d_9_pointwise", 1, [14, 14, 512]),
        ("Conv2d_10_depthwise", 1, [14, 14, 512]),
        ("Conv2d_10_pointwise", 1, [14, 14, 512]),
        ("Conv2d_11_depthwise", 1, [14, 14, 512]),
        ("Conv2d_11_pointwise", 1, [14, 14, 512]),
        ("Conv2d_12_depthwise", 2, [14, 14, 512]),
        ("Conv2d_12_pointwise", 1, [7, 7, 512]),
        ("Conv2d_13_depthwise", 1, [7, 7, 1024]),
        ("Conv2d_13_pointwise", 1, [7, 7, 1024]),
        ("Logits", 1, [1, 1, 1024]),
    ];
    let layers = m().layers().unwrap();
    for (spec, (name, stride, input)) in layers.iter().zip(table) {
        assert_eq!(
            (spec.name.as_str(), spec.stride, spec.input),
            (name, stride, input)
        );
    }
    assert_eq!(layers[27].output, [1, 1, 1000]);
}

/// The paper's figures (millions, rounded) for every table, reproduced from
/// the architecture. Conv MobileNet is 4,867.3M here against the paper's
/// 4,866M: within 0.03%, the only row that is not within rounding.
#[test]
fn paper_tables_4_to_7() {
    let v = |variant| m().with_variant(variant);
    let cases = [
        (v(Variant::FullConv), 4866.0, 29.3, 1.5),
        (m(), 569.0, 4.2, 0.5),
        (m().with_alpha(0.75), 325.0, 2.6, 0.5),
        (v(Variant::Shallow), 307.0, 2.9, 0.5),
        (m().with_alpha(0.5), 149.0, 1.3, 0.5),
        (m().with_alpha(0.25), 41.0, 0.5, 0.5),
        (m().with_resolution(192), 418.0, 4.2, 0.5),
        (m().with_resolution(160), 290.0, 4.2, 1.0), // 290.68: the paper truncates here
        (m().with_resolution(128), 186.0, 4.2, 0.5),
    ];
    for (config, madds, params, slack) in cases {
        let s = config.summary().unwrap();
        let (got_m, got_p) = (
            s.total.mult_adds as f64 / 1e6,
            s.total.params.paper() as f64 / 1e6,
        );
        assert!(
            (got_m - madds).abs() <= slack,
            "{}: {got_m}M mult-adds vs the paper's {madds}M",
            config.name()
        );
        assert!(
            (got_p - params).abs() <= 0.05,
            "{}: {got_p}M params vs the paper's {params}M",
            config.name()
        );
    }
    // ρ leaves parameters unchanged and scales mult-adds by about ρ².
    let (full, r128) = (
        m().summary().unwrap(),
        m().with_rho(4.0 / 7.0).summary().unwrap(),
    );
    assert_eq!(r128.config.resolution, 128);
    assert_eq!(full.total.params, r128.total.params);
}

/// Every α × resolution × variant: the spec chain is consistent with the conv
/// geometry, and a seeded network runs end to end with the right output shape.
#[test]
fn shapes_through_every_alpha_resolution_and_variant() {
    for variant in [Variant::Standard, Variant::Shallow, Variant::FullConv] {
        for alpha in [1.0, 0.75, 0.5, 0.25] {
            for res in [224, 192, 160, 128] {
                let config = m()
                    .with_alpha(alpha)
                    .with_resolution(res)
                    .with_variant(variant)
                    .with_classes(7);
                let specs = config.layers().unwrap();
                for pair in specs.windows(2) {
                    if pair[1].kind != LayerKind::FullyConnected {
                        assert_eq!(
                            pair[0].output, pair[1].input,
                            "{} → {}",
                            pair[0].name, pair[1].name
                        );
                    }
                }
                for s in specs.iter().filter(|s| s.kind != LayerKind::FullyConnected) {
                    let g = ConvGeometry::new(
                        [s.input[0], s.input[1]],
                        s.kernel,
                        [s.stride; 2],
                        [1, 1],
                        Padding::Same,
                    )
                    .unwrap();
                    assert_eq!(g.output(), [s.output[0], s.output[1]], "{}", s.name);
                }
                let last = specs
                    .iter()
                    .rev()
                    .find(|s| s.kind != LayerKind::FullyConnected)
                    .unwrap();
                assert_eq!(
                    last.output[0],
                    res.div_ceil(32),
                    "final feature map of {}",
                    config.name()
                );
                assert_eq!(last.output[2], ((1024.0 * alpha) as usize).max(8));
                // Running the big FullConv models in a test costs seconds; run the
                // smallest resolution of each width and variant.
                if res == 128 {
                    let net = MobileNet::<f32>::seeded(&config, 1).unwrap();
                    let y = net
                        .forward(Array4::zeros(net.input_shape(1)).view())
                        .unwrap();
                    assert_eq!(y.shape(), &[1, 7]);
                    assert!(y.iter().all(|v| v.is_finite()));
                }
            }
        }
    }
}

#[test]
fn channels_follow_tf_slim_rounding() {
    // max(int(c·α), min_depth): int truncates; the floor applies.
    let c = m().with_alpha(0.3);
    assert_eq!(c.depth(32), 9);
    assert_eq!(c.depth(1024), 307);
    assert_eq!(m().with_alpha(0.1).depth(32), 8);
    assert_eq!(m().with_alpha(0.1).with_min_depth(1).depth(32), 3);
    let s = m().with_depth_multiplier(2).layers().unwrap();
    assert_eq!(
        s[1].output[2], 64,
        "depthwise with multiplier 2 doubles channels"
    );
    assert_eq!(s[2].input[2], 64);
}

#[test]
fn validation_errors_name_the_value() {
    let name = |e: Error| match e {
        Error::InvalidParameter { name, .. } => name,
        e => panic!("unexpected {e}"),
    };
    for alpha in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(name(m().with_alpha(alpha).summary().unwrap_err()), "alpha");
    }
    assert_eq!(
        name(m().with_resolution(31).summary().unwrap_err()),
        "resolution"
    );
    assert_eq!(
        name(m().with_rho(-1.0).summary().unwrap_err()),
        "resolution"
    );
    assert_eq!(name(m().with_classes(0).summary().unwrap_err()), "classes");
    assert!(
        m().with_classes(0)
            .with_include_top(false)
            .summary()
            .is_ok()
    );
    assert_eq!(
        name(m().with_depth_multiplier(0).summary().unwrap_err()),
        "depth_multiplier"
    );
    assert_eq!(
        name(m().with_bn_epsilon(-1e-3).summary().unwrap_err()),
        "bn_epsilon"
    );
    let e = m().with_alpha(-0.5).validate().unwrap_err().to_string();
    assert!(e.contains("alpha = -0.5"), "{e}");

    let net = MobileNet::<f32>::seeded(&m().with_alpha(0.25).with_resolution(64), 0).unwrap();
    assert_eq!(
        net.forward(Array4::zeros((1, 64, 64, 1)).view())
            .unwrap_err(),
        Error::ChannelMismatch {
            what: "MobileNet input (RGB)".into(),
            expected: 3,
            got: 1
        }
    );
    assert!(matches!(
        net.forward(Array4::zeros((1, 65, 64, 3)).view()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        net.forward(Array4::zeros((0, 64, 64, 3)).view()),
        Err(Error::ZeroSize { .. })
    ));
}

#[test]
fn missing_or_misshaped_weights_are_named() {
    let config = m().with_alpha(0.25).with_resolution(64);
    let good = MobileNetWeights::<f32>::seeded(&config, 3).unwrap();
    assert_eq!(good.len(), tensor_names(&config).unwrap().len());
    good.check(&config).unwrap();

    let mut missing = MobileNetWeights::new();
    for n in good
        .names()
        .filter(|n| !n.ends_with("Conv2d_5_pointwise/BatchNorm/beta"))
    {
        missing.insert(n, good.get(n).unwrap().clone());
    }
    assert_eq!(
        MobileNet::new(&config, &missing).unwrap_err(),
        Error::MissingTensor {
            name: "MobilenetV1/Conv2d_5_pointwise/BatchNorm/beta".into()
        }
    );
    let mut wrong = good.clone();
    wrong.insert(
        "MobilenetV1/Conv2d_3_depthwise/depthwise_weights",
        ArrayD::zeros(IxDyn(&[3, 3, 32, 2])),
    );
    assert_eq!(
        MobileNet::new(&config, &wrong).unwrap_err(),
        Error::ShapeMismatch {
            what: "MobilenetV1/Conv2d_3_depthwise/depthwise_weights".into(),
            expected: [3, 3, 32, 1].into(),
            got: [3, 3, 32, 2].into()
        }
    );
    let mut negative = good.clone();
    negative.insert(
        "MobilenetV1/Conv2d_0/BatchNorm/moving_variance",
        ArrayD::from_elem(IxDyn(&[8]), -1.0),
    );
    assert!(matches!(
        MobileNet::new(&config, &negative),
        Err(Error::InvalidParameter {
            name: "moving_variance",
            ..
        })
    ));
}

#[test]
fn safetensors_round_trip_and_corrupt_files() {
    let config = m().with_alpha(0.25).with_resolution(64).with_classes(11);
    let w = MobileNetWeights::<f32>::seeded(&config, 9).unwrap();
    let bytes = w.to_safetensors().unwrap();
    let back = MobileNetWeights::<f32>::from_safetensors(&bytes).unwrap();
    assert_eq!(back, w);
    // The same weights give the same bytes (each serialization builds its
    // metadata map afresh, with its own hash seed).
    for _ in 0..8 {
        assert!(
            w.to_safetensors().unwrap() == bytes,
            "safetensors bytes vary"
        );
    }
    // f64 files load into f32 networks and back.
    let w64 = MobileNetWeights::<f64>::from_safetensors(&bytes).unwrap();
    let back32 = MobileNetWeights::<f32>::from_safetensors(&w64.to_safetensors().unwrap()).unwrap();
    assert_eq!(back32, w);
    // Same weights, same logits.
    let x = common::array::<f32, _>((2, 64, 64, 3), 5, false);
    let a = MobileNet::new(&config, &w)
        .unwrap()
        .forward(x.view())
        .unwrap();
    let b = MobileNet::new(&config, &back)
        .unwrap()
        .forward(x.view())
        .unwrap();
    assert_eq!(a, b);
    // Files on disk.
    let dir = std::env::temp_dir().join(format!("sepconv-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    w.save_safetensors(&path).unwrap();
    assert_eq!(MobileNetWeights::<f32>::load_safetensors(&path).unwrap(), w);
    assert!(matches!(
        MobileNetWeights::<f32>::load_safetensors(dir.join("nope")),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    // Truncated, garbage, and a header that lies about its length: errors, not panics.
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(
                MobileNetWeights::<f32>::from_safetensors(&bytes[..cut]),
                Err(Error::Format {
                    format: "safetensors",
                    ..
                })
            ),
            "truncated at {cut}"
        );
    }
    let mut lying = bytes.clone();
    lying[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(MobileNetWeights::<f32>::from_safetensors(&lying).is_err());
    assert!(MobileNetWeights::<f32>::from_safetensors(b"not a safetensors file at all").is_err());
}

#[test]
fn wrong_dtype_in_safetensors_is_named() {
    let data = [1u8, 2, 3, 4];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![1], &data).unwrap();
    let bytes = safetensors::serialize([("MobilenetV1/Conv2d_0/weights", view)], None).unwrap();
    assert_eq!(
        MobileNetWeights::<f32>::from_safetensors(&bytes).unwrap_err(),
        Error::Dtype {
            name: "MobilenetV1/Conv2d_0/weights".into(),
            expected: "F32 or F64".into(),
            got: "I32".into()
        }
    );
}

/// The folded, fused f32 network equals the unfolded computation run with the
/// oracle in f64: conv, BN, ReLU6 per layer, pool, FC.
#[test]
fn folded_network_matches_unfolded_oracle() {
    for variant in [Variant::Standard, Variant::FullConv] {
        let config = m()
            .with_alpha(0.25)
            .with_resolution(32)
            .with_classes(10)
            .with_variant(variant);
        let w32 = MobileNetWeights::<f32>::seeded(&config, 21).unwrap();
        let w = MobileNetWeights::<f64>::from_safetensors(&w32.to_safetensors().unwrap()).unwrap();
        let x = common::array::<f64, _>((2, 32, 32, 3), 4, false);
        let mut cur = x.clone();
        for spec in config.layers().unwrap() {
            let get = |leaf: &str| {
                w.get(&format!("MobilenetV1/{}/{leaf}", spec.name))
                    .unwrap()
                    .clone()
            };
            let params = ConvParams {
                stride: [spec.stride; 2],
                dilation: [1, 1],
                padding: Padding::Same,
            };
            let y = match spec.kind {
                LayerKind::FullyConnected => {
                    let pooled = cur
                        .mean_axis(Axis(1))
                        .unwrap()
                        .mean_axis(Axis(1))
                        .unwrap()
                        .insert_axis(Axis(1))
                        .insert_axis(Axis(1));
                    let fw = w
                        .get("MobilenetV1/Logits/Conv2d_1c_1x1/weights")
                        .unwrap()
                        .clone()
                        .into_dimensionality::<Ix4>()
                        .unwrap();
                    let fb = w
                        .get("MobilenetV1/Logits/Conv2d_1c_1x1/biases")
                        .unwrap()
                        .clone()
                        .into_dimensionality::<Ix1>()
                        .unwrap();
                    cur = reference::conv2d(
                        pooled.view(),
                        fw.view(),
                        Some(fb.view()),
                        &ConvParams::default(),
                        1,
                    )
                    .unwrap();
                    continue;
                }
                LayerKind::Depthwise => {
                    let dw = get("depthwise_weights")
                        .into_dimensionality::<Ix4>()
                        .unwrap();
                    reference::depthwise_conv2d(cur.view(), dw.view(), None, &params).unwrap()
                }
                _ => {
                    let cw = get("weights").into_dimensionality::<Ix4>().unwrap();
                    reference::conv2d(cur.view(), cw.view(), None, &params, 1).unwrap()
                }
            };
            let part = |p: &str| -> Array1<f64> {
                get(&format!("BatchNorm/{p}"))
                    .into_dimensionality::<Ix1>()
                    .unwrap()
            };
            let bn = BatchNorm::new(
                part("gamma"),
                part("beta"),
                part("moving_mean"),
                part("moving_variance"),
                1e-3,
            )
            .unwrap();
            cur = bn
                .forward(y.view())
                .unwrap()
                .mapv(|v| Activation::Relu6.apply(v));
        }
        let expected = cur.into_shape_with_order((2, 10)).unwrap();
        let got = MobileNet::new(&config, &w32)
            .unwrap()
            .forward(x.mapv(|v| v as f32).view())
            .unwrap();
        let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                (*g as f64 - e).abs() <= 1e-4 * scale,
                "{variant:?}: got {g}, expected {e} (scale {scale})"
            );
        }
        // And the f64 network matches to f64 precision.
        let got64 = MobileNet::new(&config, &w)
            .unwrap()
            .forward(x.view())
            .unwrap();
        for (g, e) in got64.iter().zip(&expected) {
            assert!(
                (g - e).abs() <= 1e-11 * scale,
                "{variant:?} f64: got {g}, expected {e}"
            );
        }
    }
}

#[test]
fn features_without_the_classifier() {
    let config = m()
        .with_alpha(0.5)
        .with_resolution(64)
        .with_include_top(false);
    let net = MobileNet::<f32>::seeded(&config, 2).unwrap();
    assert_eq!(
        net.forward(Array4::zeros((3, 64, 64, 3)).view())
            .unwrap()
            .shape(),
        &[3, 512]
    );
    assert!(
        config
            .layers()
            .unwrap()
            .iter()
            .all(|l| l.kind != LayerKind::FullyConnected)
    );
}

#[test]
fn softmax_and_top_k() {
    let logits = ndarray::arr2(&[[1.0f64, 3.0, 2.0, 3.0], [1000.0, 0.0, -1000.0, 999.0]]);
    let p = softmax(logits.view());
    for row in p.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12);
    }
    assert!(
        p.iter().all(|v| v.is_finite()),
        "large logits must not overflow"
    );
    assert_eq!(
        top_k(p.row(0), 3).iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![1, 3, 2]
    );
    assert_eq!(
        top_k(ndarray::arr1(&[0.5, f64::NAN, 0.7]).view(), 3)[2].0,
        1,
        "NaN sorts last"
    );
    assert_eq!(top_k(p.row(1), 10).len(), 4);
}

#[test]
fn seeded_weights_are_deterministic() {
    let config = m().with_alpha(0.25).with_resolution(32);
    let a = MobileNetWeights::<f32>::seeded(&config, 5).unwrap();
    assert_eq!(a, MobileNetWeights::<f32>::seeded(&config, 5).unwrap());
    assert_ne!(a, MobileNetWeights::<f32>::seeded(&config, 6).unwrap());
    let w = a.get("MobilenetV1/Conv2d_1_pointwise/weights").unwrap();
    let std = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    let he = (2.0f64 / 8.0).sqrt(); // fan-in 1·1·8
    assert!((std / he - 1.0).abs() < 0.3, "He-normal std {std} vs {he}");
}

/// A batch gives each image's logits bit for bit: with 5 images at 1.0-128
/// the early 64×64 layers run image by image and the later ones batched.
#[test]
fn a_batch_equals_its_images_one_by_one() {
    let config = m().with_resolution(128).with_classes(10);
    let net = MobileNet::<f32>::seeded(&config, 3).unwrap();
    let x = common::array::<f32, _>((5, 128, 128, 3), 8, false);
    let batched = net.forward(x.view()).unwrap();
    for b in 0..5 {
        let one = net
            .forward(x.slice(ndarray::s![b..b + 1, .., .., ..]))
            .unwrap();
        assert_eq!(one.row(0), batched.row(b), "image {b}");
    }
    let (_, times) = net.forward_profiled(x.view()).unwrap();
    assert_eq!(
        times.len(),
        net.layers().len(),
        "one time per layer, summed over images"
    );
}
