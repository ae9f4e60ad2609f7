//! Layout hints and export converters: an NCHW input or PyTorch-shaped
//! weights fail with `Error::Layout` naming the converter, and the export
//! converters invert the imports exactly.

use ndarray::{Array2, Array4};
use proptest::prelude::*;
use sepconv::layout::{
    depthwise_to_torch, hwio_to_oihw, nchw_to_nhwc, oihw_to_hwio, pointwise_to_torch,
    torch_depthwise, torch_pointwise,
};
use sepconv::mobilenet::{MobileNet, MobileNetConfig};
use sepconv::{Conv2d, DepthwiseConv2d, Error, Layer, Padding, PointwiseConv2d, Sequential};

fn hint(e: Error) -> String {
    match e {
        Error::Layout { hint, .. } => hint,
        other => panic!("expected Error::Layout, got {other:?}"),
    }
}

#[test]
fn an_nchw_photo_into_mobilenet_says_nhwc() {
    let net = MobileNet::<f32>::seeded(
        &MobileNetConfig::new().with_alpha(0.25).with_resolution(64),
        0,
    )
    .unwrap();
    let nchw = Array4::<f32>::zeros((1, 3, 64, 64));
    let e = net.forward(nchw.view()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("MobileNet input (RGB): expected 3 input channels, got 64"),
        "{text}"
    );
    assert!(text.contains("input [1, 3, 64, 64]"), "{text}");
    let h = hint(e);
    assert!(h.contains("NCHW") && h.contains("NHWC"), "{h}");
    assert!(h.contains("sepconv::layout::nchw_to_nhwc"), "{h}");
    // Converted, it runs.
    let x = nchw_to_nhwc(nchw.view());
    assert_eq!(net.forward(x.view()).unwrap().shape(), &[1, 1000]);
    // A wrong channel count that does not look NCHW stays a plain mismatch.
    assert!(matches!(
        net.forward(Array4::zeros((1, 64, 64, 1)).view()),
        Err(Error::ChannelMismatch {
            expected: 3,
            got: 1,
            ..
        })
    ));
}

#[test]
fn an_nchw_input_into_each_layer_says_nhwc() {
    let conv = Conv2d::builder(Array4::<f32>::ones((3, 3, 8, 4)))
        .padding(Padding::Same)
        .build()
        .unwrap();
    let dw = DepthwiseConv2d::builder(Array4::<f32>::ones((3, 3, 8, 1)))
        .build()
        .unwrap();
    let pw = PointwiseConv2d::new(Array2::<f32>::ones((8, 4)), None).unwrap();
    let nchw = Array4::<f32>::zeros((2, 8, 10, 10));
    for e in [
        conv.forward(nchw.view()).unwrap_err(),
        dw.forward(nchw.view()).unwrap_err(),
        pw.forward(nchw.view()).unwrap_err(),
    ] {
        let text = e.to_string();
        assert!(text.contains("expected 8 input channels, got 10"), "{text}");
        assert!(hint(e).contains("nchw_to_nhwc"));
    }
    // Inside a network, the layer that refused it is named, hint included.
    let net = Sequential::new().with_named("stem", conv);
    let e = net.forward(nchw.view()).unwrap_err();
    assert!(
        matches!(&e, Error::Layer { name, .. } if name == "stem"),
        "{e:?}"
    );
    assert!(e.to_string().contains("nchw_to_nhwc"), "{e}");
}

#[test]
fn oihw_weights_given_as_hwio_name_the_converter() {
    // PyTorch's Conv2d(8, 16, 3).weight is [16, 8, 3, 3]: read as HWIO it
    // builds (a 16×8 kernel from 3 channels to 3), and the forward on an
    // 8-channel input fails.
    let oihw = Array4::<f32>::from_shape_fn((16, 8, 3, 3), |(o, i, y, x)| {
        (o * 1000 + i * 100 + y * 10 + x) as f32
    });
    let conv = Conv2d::builder(oihw.clone()).build().unwrap();
    let x = Array4::<f32>::ones((1, 20, 20, 8));
    let e = conv.forward(x.view()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("expected 3 input channels, got 8"), "{text}");
    let h = hint(e);
    assert!(h.contains("[16, 8, 3, 3]") && h.contains("OIHW"), "{h}");
    assert!(h.contains("sepconv::layout::oihw_to_hwio"), "{h}");
    let fixed = Conv2d::builder(oihw_to_hwio(oihw.view())).build().unwrap();
    assert_eq!(fixed.forward(x.view()).unwrap().shape(), &[1, 18, 18, 16]);

    // PyTorch's depthwise Conv2d(8, 16, 3, groups=8).weight is [16, 1, 3, 3].
    let torch = Array4::<f32>::ones((16, 1, 3, 3));
    let dw = DepthwiseConv2d::builder(torch.clone()).build().unwrap();
    let h = hint(dw.forward(x.view()).unwrap_err());
    assert!(h.contains("[16, 1, 3, 3]"), "{h}");
    assert!(h.contains("sepconv::layout::torch_depthwise"), "{h}");
    let fixed = DepthwiseConv2d::builder(torch_depthwise(torch.view(), 8).unwrap())
        .build()
        .unwrap();
    assert_eq!(fixed.forward(x.view()).unwrap().shape(), &[1, 18, 18, 16]);

    // An HWIO weight whose channels are simply wrong gets no layout hint.
    let conv = Conv2d::builder(Array4::<f32>::ones((3, 3, 4, 8)))
        .build()
        .unwrap();
    assert!(matches!(
        conv.forward(Array4::ones((1, 5, 5, 3)).view()),
        Err(Error::ChannelMismatch {
            expected: 4,
            got: 3,
            ..
        })
    ));
}

proptest! {
    #[test]
    fn export_converters_invert_the_imports(
        c in 1usize..6, m in 1usize..4, kh in 1usize..4, kw in 1usize..4, co in 1usize..6,
    ) {
        let id = |v: [usize; 4]| (v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3]) as f64;
        let dw = Array4::from_shape_fn((kh, kw, c, m), |(a, b, d, e)| id([a, b, d, e]));
        let t = depthwise_to_torch(dw.view());
        prop_assert_eq!(t.shape(), &[c * m, 1, kh, kw]);
        prop_assert_eq!(&torch_depthwise(t.view(), c).unwrap(), &dw);
        prop_assert_eq!(depthwise_to_torch(torch_depthwise(t.view(), c).unwrap().view()), t);

        let pw = Array2::from_shape_fn((c, co), |(i, o)| (i * 10 + o) as f32);
        let t = pointwise_to_torch(pw.view());
        prop_assert_eq!(t.shape(), &[co, c, 1, 1]);
        prop_assert_eq!(&torch_pointwise(t.view()).unwrap(), &pw);
        prop_assert_eq!(pointwise_to_torch(torch_pointwise(t.view()).unwrap().view()), t);

        let full = Array4::from_shape_fn((kh, kw, c, co), |(a, b, d, e)| id([a, b, d, e]));
        prop_assert_eq!(oihw_to_hwio(hwio_to_oihw(full.view()).view()), full);
    }

    /// The exported weights compute what the crate's do: a PyTorch-layout
    /// depthwise then pointwise, imported back, gives the same output.
    #[test]
    fn exported_weights_compute_the_same(c in 1usize..5, m in 1usize..3, seed in 0u64..100) {
        let mut rng = sepconv::init::SplitMix64::new(seed);
        let dw = Array4::from_shape_simple_fn((3, 3, c, m), || rng.uniform_in(-1.0, 1.0));
        let pw = Array2::from_shape_simple_fn((c * m, 4), || rng.uniform_in(-1.0, 1.0));
        let x = Array4::from_shape_simple_fn((1, 6, 6, c), || rng.uniform_in(-1.0, 1.0));
        let run = |dw: Array4<f64>, pw: Array2<f64>| {
            let d = DepthwiseConv2d::builder(dw).padding(Padding::Same).build().unwrap();
            let p = PointwiseConv2d::new(pw, None).unwrap();
            p.forward(d.forward(x.view()).unwrap().view()).unwrap()
        };
        let back = run(
            torch_depthwise(depthwise_to_torch(dw.view()).view(), c).unwrap(),
            torch_pointwise(pointwise_to_torch(pw.view()).view()).unwrap(),
        );
        prop_assert_eq!(back, run(dw, pw));
    }
}
