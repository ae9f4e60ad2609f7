//! Imports the real TF-slim MobileNet v1 1.0-224 frozen graph fetched by
//! `scripts/fetch_assets.py` and checks every tensor a loader needs.
//!
//! The script is run here (it only verifies hashes when the cache is already filled);
//! if it fails the test fails with its output: nothing is skipped.
#![cfg(feature = "tf")]

use crate::support;

use sepconv::Error;
use sepconv::io::tf::{GraphDefWeights, TfAttr};

/// The frozen graph, fetched (or verified) by `scripts/fetch_assets.py`.
fn load() -> GraphDefWeights {
    let dir = support::asset_dir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(support::MODEL_FILE);
    GraphDefWeights::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (depthwise stride, input channels, output channels) of blocks 1..=13 (paper Table 1,
/// with block 13's depthwise at stride 1).
const BLOCKS: [(i64, usize, usize); 13] = [
    (1, 32, 64),
    (2, 64, 128),
    (1, 128, 128),
    (2, 128, 256),
    (1, 256, 256),
    (2, 256, 512),
    (1, 512, 512),
    (1, 512, 512),
    (1, 512, 512),
    (1, 512, 512),
    (1, 512, 512),
    (2, 512, 1024),
    (1, 1024, 1024),
];

fn assert_bn(g: &GraphDefWeights, layer: &str, channels: usize) {
    for p in ["gamma", "beta", "moving_mean", "moving_variance"] {
        let name = format!("MobilenetV1/{layer}/BatchNorm/{p}");
        let t = g.tensor(&name, &[channels]).unwrap();
        assert!(
            t.data.iter().all(|v| v.is_finite()),
            "{name} has non-finite values"
        );
        if p == "moving_variance" {
            assert!(
                t.data.iter().all(|&v| v >= 0.0),
                "{name} has a negative variance"
            );
        }
    }
    // BN is not fused: y = x·(γ·rsqrt(var + ε)) + (β − mean·γ·rsqrt(var + ε)), with ε a
    // scalar Const feeding the `add`.
    let eps_name = format!("MobilenetV1/MobilenetV1/{layer}/BatchNorm/batchnorm/add/y");
    let eps = g.tensor(&eps_name, &[]).unwrap();
    assert_eq!(eps.data, vec![0.001f32], "{eps_name}");
    let add = g
        .node(&format!(
            "MobilenetV1/MobilenetV1/{layer}/BatchNorm/batchnorm/add"
        ))
        .unwrap();
    assert_eq!(add.op, "Add");
    assert_eq!(
        add.inputs,
        vec![
            format!("MobilenetV1/{layer}/BatchNorm/moving_variance/read"),
            eps_name.clone(),
        ]
    );
}

#[test]
fn real_mobilenet_v1_graph_has_every_tensor_a_loader_needs() {
    let g = load();

    // Input: a fixed-size NHWC float placeholder.
    let input = g.node("input").expect("no `input` node");
    assert_eq!(input.op, "Placeholder");
    assert_eq!(
        input.attrs.get("shape"),
        Some(&TfAttr::Shape(Some(vec![1, 224, 224, 3])))
    );

    // First conv: HWIO, stride 2, SAME, then BN.
    g.tensor("MobilenetV1/Conv2d_0/weights", &[3, 3, 3, 32])
        .unwrap();
    let conv0 = g
        .node("MobilenetV1/MobilenetV1/Conv2d_0/convolution")
        .unwrap();
    assert_eq!(conv0.op, "Conv2D");
    assert_eq!(conv0.attr_ints("strides"), Some(&[1, 2, 2, 1][..]));
    assert_eq!(conv0.attr_str("padding"), Some("SAME"));
    assert_bn(&g, "Conv2d_0", 32);

    // The 13 separable blocks.
    for (i, &(stride, c_in, c_out)) in BLOCKS.iter().enumerate() {
        let b = i + 1;
        g.tensor(
            &format!("MobilenetV1/Conv2d_{b}_depthwise/depthwise_weights"),
            &[3, 3, c_in, 1],
        )
        .unwrap();
        g.tensor(
            &format!("MobilenetV1/Conv2d_{b}_pointwise/weights"),
            &[1, 1, c_in, c_out],
        )
        .unwrap();
        let dw = g
            .node(&format!(
                "MobilenetV1/MobilenetV1/Conv2d_{b}_depthwise/depthwise"
            ))
            .unwrap();
        assert_eq!(dw.op, "DepthwiseConv2dNative");
        assert_eq!(
            dw.attr_ints("strides"),
            Some(&[1, stride, stride, 1][..]),
            "block {b}"
        );
        assert_eq!(dw.attr_str("padding"), Some("SAME"));
        assert_bn(&g, &format!("Conv2d_{b}_depthwise"), c_in);
        assert_bn(&g, &format!("Conv2d_{b}_pointwise"), c_out);
        // No conv biases before a BN.
        assert!(matches!(
            g.tensor(
                &format!("MobilenetV1/Conv2d_{b}_pointwise/biases"),
                &[c_out]
            ),
            Err(Error::MissingTensor { .. })
        ));
    }
    g.tensor(
        "MobilenetV1/Conv2d_13_pointwise/weights",
        &[1, 1, 1024, 1024],
    )
    .unwrap();

    // Head: 1001-way 1×1 conv with bias.
    g.tensor(
        "MobilenetV1/Logits/Conv2d_1c_1x1/weights",
        &[1, 1, 1024, 1001],
    )
    .unwrap();
    g.tensor("MobilenetV1/Logits/Conv2d_1c_1x1/biases", &[1001])
        .unwrap();

    // 27 BN layers, all unfused, all ReLU6.
    assert_eq!(g.nodes_with_op("FusedBatchNorm").count(), 0);
    assert_eq!(g.nodes_with_op("FusedBatchNormV3").count(), 0);
    assert_eq!(g.nodes_with_op("Rsqrt").count(), 27);
    assert_eq!(g.nodes_with_op("Relu6").count(), 27);

    // Every float const under MobilenetV1/ is one of: 27 × (weights + γ, β, mean, var
    // + ε) and the 2 logits tensors.
    let body = g.names().filter(|n| n.starts_with("MobilenetV1/")).count();
    assert_eq!(body, 27 * 6 + 2);
    let body_params: usize = g
        .names()
        .filter(|n| n.starts_with("MobilenetV1/") && !n.ends_with("/add/y"))
        .map(|n| g.get(n).unwrap().data.len())
        .sum();
    // Paper: 4,209,088 conv + FC weights at 1000 classes; TF-slim has 1001 classes
    // (+1024 weights), the FC bias (1001), and 4 BN vectors per layer
    // (4 × 10,944 channels, counting the first conv's 32 and both halves of each block).
    assert_eq!(body_params, 4_209_088 + 1024 + 1001 + 4 * 10_944);
}
