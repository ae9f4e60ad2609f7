//! The oracle first: `sepconv::reference` on cases computed by hand.
//!
//! Inputs are small integers, so every sum is exact in f32 and f64 and the
//! expected values are written out, not recomputed.

use ndarray::{Array2, Array4, arr1};
use sepconv::reference::{conv2d, depthwise_conv2d, pointwise_conv2d};
use sepconv::{ConvParams, Padding};

/// x[0, i, j, 0] = w·i + j on an h×w single-channel image.
fn ramp(h: usize, w: usize) -> Array4<f32> {
    Array4::from_shape_fn((1, h, w, 1), |(_, i, j, _)| (w * i + j) as f32)
}

fn params(stride: usize, dilation: usize, padding: Padding) -> ConvParams {
    ConvParams {
        stride: [stride; 2],
        dilation: [dilation; 2],
        padding,
    }
}

fn plane(y: &Array4<f32>) -> Vec<Vec<f32>> {
    (0..y.shape()[1])
        .map(|i| (0..y.shape()[2]).map(|j| y[[0, i, j, 0]]).collect())
        .collect()
}

#[test]
fn delta_kernel_is_identity_with_same_padding() {
    let x = ramp(5, 6);
    let mut w = Array4::zeros((3, 3, 1, 1));
    w[[1, 1, 0, 0]] = 1.0;
    assert_eq!(
        conv2d(x.view(), w.view(), None, &params(1, 1, Padding::Same), 1).unwrap(),
        x
    );
    // Off-centre delta shifts the image: output (i, j) reads input (i − 1, j + 1).
    let mut w = Array4::zeros((3, 3, 1, 1));
    w[[0, 2, 0, 0]] = 1.0;
    let y = conv2d(x.view(), w.view(), None, &params(1, 1, Padding::Same), 1).unwrap();
    assert_eq!(y[[0, 0, 2, 0]], 0.0); // above the image: padding
    assert_eq!(y[[0, 3, 2, 0]], x[[0, 2, 3, 0]]);
    assert_eq!(y[[0, 3, 5, 0]], 0.0); // right of the image: padding
}

#[test]
fn box_kernel_valid() {
    // 3×3 sums of the 4×4 ramp 4i + j: Σ = 9·(4i + j) + 9·(4 + 1) for the window at (i, j).
    let y = conv2d(
        ramp(4, 4).view(),
        Array4::ones((3, 3, 1, 1)).view(),
        None,
        &params(1, 1, Padding::Valid),
        1,
    )
    .unwrap();
    assert_eq!(plane(&y), vec![vec![45.0, 54.0], vec![81.0, 90.0]]);
}

#[test]
fn tf_same_pads_zero_before_one_after_at_stride_2_on_even_sizes() {
    // 4×4 ramp, 3×3 ones, stride 2, SAME: windows start at rows/cols 0 and 2,
    // the second one hangs one pixel over the bottom/right edge.
    let y = conv2d(
        ramp(4, 4).view(),
        Array4::ones((3, 3, 1, 1)).view(),
        None,
        &params(2, 1, Padding::Same),
        1,
    )
    .unwrap();
    // [0..3)×[0..3) = 45; [0..3)×[2..4) = 39; [2..4)×[0..3) = 66; [2..4)×[2..4) = 50.
    assert_eq!(plane(&y), vec![vec![45.0, 39.0], vec![66.0, 50.0]]);
    // PyTorch's padding=1 gives the same size and different numbers: windows
    // start at −1 and 1. [0..2)×[0..2) = 10; [0..2)×[1..4) = 24; [1..4)×[0..2) = 51; [1..4)×[1..4) = 90.
    let y = conv2d(
        ramp(4, 4).view(),
        Array4::ones((3, 3, 1, 1)).view(),
        None,
        &params(2, 1, Padding::symmetric(1)),
        1,
    )
    .unwrap();
    assert_eq!(plane(&y), vec![vec![10.0, 24.0], vec![51.0, 90.0]]);
}

#[test]
fn tf_same_pads_one_and_one_at_stride_2_on_odd_sizes() {
    // 5×5 ramp 5i + j, 3×3 ones, stride 2, SAME: 3×3 output, padding (1, 1):
    // windows start at −1, 1, 3.
    let y = conv2d(
        ramp(5, 5).view(),
        Array4::ones((3, 3, 1, 1)).view(),
        None,
        &params(2, 1, Padding::Same),
        1,
    )
    .unwrap();
    let sum = |r: std::ops::Range<usize>, c: std::ops::Range<usize>| -> f32 {
        r.flat_map(|i| c.clone().map(move |j| (5 * i + j) as f32))
            .sum()
    };
    assert_eq!(sum(0..2, 0..2), 12.0);
    assert_eq!(
        plane(&y),
        vec![
            vec![12.0, sum(0..2, 1..4), sum(0..2, 3..5)],
            vec![sum(1..4, 0..2), sum(1..4, 1..4), sum(1..4, 3..5)],
            vec![sum(3..5, 0..2), sum(3..5, 1..4), sum(3..5, 3..5)],
        ]
    );
    assert_eq!(y[[0, 1, 1, 0]], 108.0); // the full window around (2, 2): 9·12
}

#[test]
fn dilation_skips_pixels() {
    // 1×5 input [0, 1, 2, 3, 4], kernel 1×2 [1, 10] at dilation 2: y[j] = x[j] + 10·x[j + 2].
    let x = ramp(1, 5);
    let w = Array4::from_shape_vec((1, 2, 1, 1), vec![1.0, 10.0]).unwrap();
    let y = conv2d(x.view(), w.view(), None, &params(1, 2, Padding::Valid), 1).unwrap();
    assert_eq!(plane(&y), vec![vec![20.0, 31.0, 42.0]]);
}

#[test]
fn groups_keep_channels_apart_and_bias_is_added() {
    // 4 channels in 2 groups, 1×1: out0 = x0·1 + x1·2 + 100, out1 = x2·3 + x3·4 + 200.
    let x = Array4::from_shape_vec((1, 1, 1, 4), vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
    let w = Array4::from_shape_vec((1, 1, 2, 2), vec![1.0, 3.0, 2.0, 4.0]).unwrap();
    let y = conv2d(
        x.view(),
        w.view(),
        Some(arr1(&[100.0, 200.0]).view()),
        &ConvParams::default(),
        2,
    )
    .unwrap();
    assert_eq!(y.into_raw_vec_and_offset().0, vec![105.0, 225.0]);
}

#[test]
fn depthwise_multiplier_orders_channels_c_major() {
    // 2 channels × multiplier 2, 1×1: out[c·2 + j] = x[c] · w[c, j].
    let x = Array4::from_shape_vec((1, 1, 1, 2), vec![3.0f32, 5.0]).unwrap();
    let w = Array4::from_shape_vec((1, 1, 2, 2), vec![1.0, 2.0, 10.0, 20.0]).unwrap();
    let y = depthwise_conv2d(x.view(), w.view(), None, &ConvParams::default()).unwrap();
    assert_eq!(y.into_raw_vec_and_offset().0, vec![3.0, 6.0, 50.0, 100.0]);
}

#[test]
fn pointwise_is_a_matrix_product_per_pixel() {
    let x = Array4::from_shape_vec((1, 1, 2, 2), vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
    let w = Array2::from_shape_vec((2, 3), vec![1.0, 0.0, 2.0, 0.0, 1.0, 3.0]).unwrap();
    let y = pointwise_conv2d(x.view(), w.view(), None).unwrap();
    assert_eq!(
        y.into_raw_vec_and_offset().0,
        vec![1.0, 2.0, 8.0, 3.0, 4.0, 18.0]
    );
    // A transposed (column-major) weight view gives the same result.
    let wt = w.t().to_owned();
    assert_eq!(
        pointwise_conv2d(x.view(), wt.t(), None)
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        vec![1.0, 2.0, 8.0, 3.0, 4.0, 18.0]
    );
}
