//! Every error variant from the layers, and no panic on any configuration.

use crate::common::array;
use ndarray::{Array1, Array2, Array4};
use proptest::prelude::*;
use sepconv::{
    Activation, BatchNorm, Conv2d, DepthwiseConv2d, Error, Padding, PointwiseConv2d,
    SeparableConv2d,
};

fn w4(shape: (usize, usize, usize, usize)) -> Array4<f32> {
    Array4::ones(shape)
}

#[test]
fn channel_mismatch_names_both_counts() {
    let conv = Conv2d::builder(w4((3, 3, 4, 8))).build().unwrap();
    assert_eq!(
        conv.forward(w4((1, 5, 5, 3)).view()).unwrap_err(),
        Error::ChannelMismatch {
            what: "Conv2d input".into(),
            expected: 4,
            got: 3
        }
    );
    let dw = DepthwiseConv2d::builder(w4((3, 3, 4, 1))).build().unwrap();
    assert!(matches!(
        dw.forward(w4((1, 5, 5, 5)).view()),
        Err(Error::ChannelMismatch {
            expected: 4,
            got: 5,
            ..
        })
    ));
    let pw = PointwiseConv2d::new(Array2::<f32>::ones((4, 2)), None).unwrap();
    assert!(matches!(
        pw.forward(w4((1, 5, 5, 2)).view()),
        Err(Error::ChannelMismatch {
            expected: 4,
            got: 2,
            ..
        })
    ));
    let msg = conv
        .forward(w4((1, 5, 5, 3)).view())
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "Conv2d input: expected 4 input channels, got 3");
}

#[test]
fn groups_that_do_not_divide() {
    assert_eq!(
        Conv2d::builder(w4((3, 3, 2, 6)))
            .groups(4)
            .build()
            .unwrap_err(),
        Error::InvalidGroups {
            groups: 4,
            in_channels: 8,
            out_channels: 6
        }
    );
    assert!(matches!(
        Conv2d::builder(w4((3, 3, 2, 6))).groups(0).build(),
        Err(Error::InvalidGroups { groups: 0, .. })
    ));
}

#[test]
fn zero_sized_dimensions() {
    assert!(matches!(
        Conv2d::builder(w4((3, 0, 2, 6))).build(),
        Err(Error::ZeroSize { .. })
    ));
    assert!(matches!(
        DepthwiseConv2d::builder(w4((3, 3, 0, 1))).build(),
        Err(Error::ZeroSize { .. })
    ));
    assert!(matches!(
        PointwiseConv2d::new(Array2::<f32>::ones((0, 2)), None),
        Err(Error::ZeroSize { .. })
    ));
    let conv = Conv2d::builder(w4((1, 1, 2, 2))).build().unwrap();
    assert_eq!(
        conv.forward(w4((0, 4, 4, 2)).view()).unwrap_err(),
        Error::ZeroSize {
            what: "Conv2d input".into(),
            shape: [0, 4, 4, 2].into()
        }
    );
    assert!(matches!(
        conv.forward(w4((1, 4, 0, 2)).view()),
        Err(Error::ZeroSize { .. })
    ));
}

#[test]
fn zero_stride_and_dilation() {
    assert_eq!(
        Conv2d::builder(w4((3, 3, 1, 1)))
            .stride([1, 0])
            .build()
            .unwrap_err(),
        Error::InvalidStride([1, 0])
    );
    assert_eq!(
        DepthwiseConv2d::builder(w4((3, 3, 1, 1)))
            .dilation(0)
            .build()
            .unwrap_err(),
        Error::InvalidDilation([0, 0])
    );
}

#[test]
fn kernel_larger_than_padded_input() {
    let conv = Conv2d::builder(w4((5, 3, 1, 1)))
        .dilation([2, 1])
        .build()
        .unwrap();
    assert_eq!(
        conv.forward(w4((1, 8, 8, 1)).view()).unwrap_err(),
        Error::KernelTooLarge {
            axis: "height",
            kernel_extent: 9,
            padded_input: 8
        }
    );
    let conv = Conv2d::builder(w4((5, 3, 1, 1)))
        .dilation([2, 1])
        .padding(Padding::Explicit {
            top: 1,
            bottom: 0,
            left: 0,
            right: 0,
        })
        .build()
        .unwrap();
    assert!(conv.forward(w4((1, 8, 8, 1)).view()).is_ok());
    // SAME always fits.
    let conv = Conv2d::builder(w4((5, 5, 1, 1)))
        .padding(Padding::Same)
        .build()
        .unwrap();
    assert_eq!(
        conv.forward(w4((1, 1, 1, 1)).view()).unwrap().shape(),
        &[1, 1, 1, 1]
    );
}

#[test]
fn wrong_weight_bias_and_output_shapes() {
    assert_eq!(
        Conv2d::builder(w4((3, 3, 2, 6)))
            .bias(Array1::ones(5))
            .build()
            .unwrap_err(),
        Error::ShapeMismatch {
            what: "Conv2d bias".into(),
            expected: [6].into(),
            got: [5].into()
        }
    );
    assert!(matches!(
        DepthwiseConv2d::builder(w4((3, 3, 2, 3)))
            .bias(Array1::ones(2))
            .build(),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        PointwiseConv2d::new(Array2::<f32>::ones((2, 3)), Some(Array1::ones(2))),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        SeparableConv2d::builder(w4((3, 3, 4, 2)), Array2::ones((4, 3))).build(),
        Err(Error::ChannelMismatch {
            expected: 8,
            got: 4,
            ..
        })
    ));
    // A wrong output buffer is refused and left untouched.
    let conv = Conv2d::builder(w4((3, 3, 1, 2))).build().unwrap();
    let mut out = Array4::from_elem((1, 3, 3, 2), 7.0f32);
    assert_eq!(
        conv.forward_into(w4((1, 4, 4, 1)).view(), out.view_mut())
            .unwrap_err(),
        Error::ShapeMismatch {
            what: "Conv2d output".into(),
            expected: [1, 2, 2, 2].into(),
            got: [1, 3, 3, 2].into()
        }
    );
    assert!(out.iter().all(|&v| v == 7.0));
}

#[test]
fn batch_norm_errors_when_folding() {
    let bn = BatchNorm::new(
        Array1::ones(3),
        Array1::zeros(3),
        Array1::zeros(3),
        Array1::ones(3),
        1e-3f32,
    )
    .unwrap();
    let conv = Conv2d::builder(w4((3, 3, 1, 4))).build().unwrap();
    assert_eq!(
        conv.fold_batch_norm(&bn).unwrap_err(),
        Error::ChannelMismatch {
            what: "BatchNorm folded into Conv2d".into(),
            expected: 4,
            got: 3
        }
    );
    assert!(matches!(
        BatchNorm::new(
            Array1::ones(2),
            Array1::zeros(2),
            Array1::zeros(2),
            Array1::from(vec![1.0, -1.0]),
            1e-3f32
        ),
        Err(Error::InvalidVariance { channel: 1, .. })
    ));
    assert!(matches!(
        BatchNorm::new(Array1::ones(2), Array1::zeros(2), Array1::zeros(2), Array1::ones(2), f32::NAN),
        Err(Error::InvalidEpsilon(e)) if e.is_nan()
    ));
}

#[test]
fn to_standard_needs_a_linear_block() {
    let sep = SeparableConv2d::builder(w4((3, 3, 2, 1)), Array2::ones((2, 3)))
        .depthwise_activation(Activation::Relu6)
        .build()
        .unwrap();
    assert!(matches!(sep.to_standard(), Err(Error::Unsupported(_))));
}

/// Arbitrary configurations, valid or not: build and forward return values,
/// never panic, and a failed `forward_into` leaves the buffer as it was.
#[derive(Debug)]
struct Anything {
    /// [n, h, w, c, kh, kw, c_out, multiplier], zeros included.
    dims: [usize; 8],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 4],
    groups: usize,
    /// 0: no bias; k: a bias of length k − 1.
    bias_len: usize,
    /// 1: the output buffer is one column too wide.
    out_delta: usize,
    same: bool,
}

fn anything(a: Anything) {
    let Anything {
        dims,
        stride,
        dilation,
        pad,
        groups,
        bias_len,
        out_delta,
        same,
    } = a;
    let [n, h, w, c, kh, kw, co, m] = dims;
    let padding = if same {
        Padding::Same
    } else {
        Padding::Explicit {
            top: pad[0],
            bottom: pad[1],
            left: pad[2],
            right: pad[3],
        }
    };
    let x: Array4<f32> = array((n, h, w, c), 1, true);
    let out_shape = |s: [usize; 4]| [s[0], s[1], s[2] + out_delta % 2, s[3]];
    macro_rules! exercise {
        ($layer:expr) => {
            if let Ok(layer) = $layer {
                let fwd = layer.forward(x.view());
                if let Ok(y) = &fwd {
                    assert_eq!(y.shape(), &layer.output_shape([n, h, w, c]).unwrap()[..]);
                    assert!(layer.cost([n, h, w, c]).is_ok());
                    let s = out_shape(<[usize; 4]>::try_from(y.shape()).unwrap());
                    let mut out = Array4::from_elem(s, 7.0f32);
                    if layer.forward_into(x.view(), out.view_mut()).is_err() {
                        assert!(
                            out.iter().all(|&v| v == 7.0),
                            "failed forward_into wrote to the buffer"
                        );
                    }
                }
            }
        };
    }
    let bias = (bias_len > 0).then(|| Array1::<f32>::ones(bias_len - 1));
    exercise!(
        Conv2d::builder(w4((kh, kw, c, co)))
            .bias_opt(bias.clone())
            .stride(stride)
            .dilation(dilation)
            .padding(padding)
            .groups(groups)
            .build()
    );
    exercise!(
        DepthwiseConv2d::builder(w4((kh, kw, c, m)))
            .bias_opt(bias.clone())
            .stride(stride)
            .dilation(dilation)
            .padding(padding)
            .build()
    );
    exercise!(PointwiseConv2d::new(Array2::ones((c, co)), bias.clone()));
    exercise!(
        SeparableConv2d::builder(w4((kh, kw, c, m)), Array2::ones((c * m, co)))
            .stride(stride)
            .dilation(dilation)
            .padding(padding)
            .build()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn no_panic_on_any_configuration(
        dims in [0usize..4, 0usize..7, 0usize..7, 0usize..5, 0usize..5, 0usize..5, 0usize..5, 0usize..3],
        stride in [0usize..3, 0usize..3],
        dilation in [0usize..3, 0usize..3],
        pad in [0usize..3, 0usize..3, 0usize..3, 0usize..3],
        groups in 0usize..4,
        bias_len in 0usize..6,
        out_delta in 0usize..2,
        same in any::<bool>(),
    ) {
        anything(Anything { dims, stride, dilation, pad, groups, bias_len, out_delta, same });
    }
}
