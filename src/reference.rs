//! The naive oracle: a direct 2-D convolution, written for clarity, not speed.
//!
//! Every fast path in the crate is tested against these functions, and they
//! are themselves tested first on hand-computed cases (delta and box kernels,
//! integer inputs whose sums are exact, TensorFlow SAME's asymmetric padding).
//! They accumulate in f64 whatever the element type, so for f32 they are more
//! accurate than any fast path, and they are slow: O(N·OH·OW·kh·kw·C_in/g·C_out)
//! scalar steps with bounds checks. Use them to check, not to compute.
//!
//! Layouts are the crate's: input NHWC, weights HWIO `[kh, kw, C_in/groups, C_out]`,
//! depthwise `[kh, kw, C, multiplier]`, pointwise `[C_in, C_out]`.
//!
//! ```
//! use ndarray::Array4;
//! use sepconv::{ConvParams, Padding};
//! // A 3×3 box filter on ones, TensorFlow SAME: 9 inside, 4 in the corners.
//! let x = Array4::<f64>::ones((1, 4, 4, 1));
//! let w = Array4::<f64>::ones((3, 3, 1, 1));
//! let params = ConvParams { padding: Padding::Same, ..ConvParams::default() };
//! let y = sepconv::reference::conv2d(x.view(), w.view(), None, &params, 1)?;
//! assert_eq!((y[[0, 1, 1, 0]], y[[0, 0, 0, 0]]), (9.0, 4.0));
//! # Ok::<(), sepconv::Error>(())
//! ```

use ndarray::{Array4, ArrayView1, ArrayView2, ArrayView4, Axis};

use crate::Float;
use crate::conv::{check_bias, check_input};
use crate::error::{Error, Result};
use crate::geometry::ConvParams;

/// Naive grouped 2-D convolution (cross-correlation, as in every DL framework).
///
/// `out[n, oy, ox, o] = bias[o] + Σ_{ky, kx, i} in[n, oy·sh + ky·dh − top, ox·sw + kx·dw − left, g·C_in/g + i] · w[ky, kx, i, o]`
/// with `g = o / (C_out / groups)` and zeros outside the input.
///
/// # Shapes
/// input `[N, H, W, C_in]`, weight `[kh, kw, C_in / groups, C_out]`, bias
/// `[C_out]`, output `[N, OH, OW, C_out]`.
///
/// # Errors
/// [`Error::InvalidGroups`], [`Error::ChannelMismatch`], [`Error::ZeroSize`],
/// [`Error::ShapeMismatch`] for a wrong bias, and the geometry errors of
/// [`ConvParams::resolve`].
pub fn conv2d<F: Float>(
    input: ArrayView4<'_, F>,
    weight: ArrayView4<'_, F>,
    bias: Option<ArrayView1<'_, F>>,
    params: &ConvParams,
    groups: usize,
) -> Result<Array4<F>> {
    let [kh, kw, cin_g, cout] = <[usize; 4]>::try_from(weight.shape()).expect("4-D");
    if weight.is_empty() {
        return Err(Error::ZeroSize {
            what: "weight".into(),
            shape: weight.shape().into(),
        });
    }
    let cin = cin_g
        .checked_mul(groups)
        .ok_or(Error::Overflow("input channels"))?;
    if groups == 0 || cout % groups != 0 {
        return Err(Error::InvalidGroups {
            groups,
            in_channels: cin,
            out_channels: cout,
        });
    }
    check_input("reference::conv2d input", input.shape(), cin)?;
    check_bias("reference::conv2d bias", bias.map(|b| b.len()), cout)?;
    let [n, h, w, _] = <[usize; 4]>::try_from(input.shape()).expect("4-D");
    let g = params.resolve([h, w], [kh, kw])?;
    let cout_g = cout / groups;
    let mut out = crate::layer::zeros4("reference output", [n, g.h.output, g.w.output, cout])?;
    for b in 0..n {
        for oy in 0..g.h.output {
            for ox in 0..g.w.output {
                for o in 0..cout {
                    let group = o / cout_g;
                    let mut acc = bias.map_or(0.0, |b| b[o].to_f64_exact());
                    for ky in 0..kh {
                        let Some(iy) = g.h.input_index(oy, ky) else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(ix) = g.w.input_index(ox, kx) else {
                                continue;
                            };
                            for i in 0..cin_g {
                                let x = input[[b, iy, ix, group * cin_g + i]].to_f64_exact();
                                acc += x * weight[[ky, kx, i, o]].to_f64_exact();
                            }
                        }
                    }
                    out[[b, oy, ox, o]] = F::from_f64_lossy(acc);
                }
            }
        }
    }
    Ok(out)
}

/// The equivalent grouped-conv weight of a depthwise weight: groups = C,
/// `W[kh, kw, 0, c·m + j] = D[kh, kw, c, j]`.
pub fn depthwise_as_grouped<F: Float>(weight: ArrayView4<'_, F>) -> Array4<F> {
    let [kh, kw, c, m] = <[usize; 4]>::try_from(weight.shape()).expect("4-D");
    Array4::from_shape_fn((kh, kw, 1, c * m), |(y, x, _, o)| {
        weight[[y, x, o / m, o % m]]
    })
}

/// Naive depthwise convolution: channel `c` convolved with its `multiplier`
/// filters gives output channels `c·m .. c·m + m`.
///
/// # Shapes
/// input `[N, H, W, C]`, weight `[kh, kw, C, m]`, bias `[C·m]`, output
/// `[N, OH, OW, C·m]`.
///
/// # Errors
/// As [`conv2d`].
pub fn depthwise_conv2d<F: Float>(
    input: ArrayView4<'_, F>,
    weight: ArrayView4<'_, F>,
    bias: Option<ArrayView1<'_, F>>,
    params: &ConvParams,
) -> Result<Array4<F>> {
    let c = weight.shape()[2];
    if input.shape()[3] != c {
        return Err(Error::ChannelMismatch {
            what: "reference::depthwise_conv2d input".into(),
            expected: c,
            got: input.shape()[3],
        });
    }
    conv2d(
        input,
        depthwise_as_grouped(weight).view(),
        bias,
        params,
        c.max(1),
    )
}

/// Naive pointwise (1×1) convolution: `out[n, y, x, :] = in[n, y, x, :] · W + bias`.
///
/// # Shapes
/// input `[N, H, W, C_in]`, weight `[C_in, C_out]`, bias `[C_out]`.
///
/// # Errors
/// As [`conv2d`].
pub fn pointwise_conv2d<F: Float>(
    input: ArrayView4<'_, F>,
    weight: ArrayView2<'_, F>,
    bias: Option<ArrayView1<'_, F>>,
) -> Result<Array4<F>> {
    let w4 = weight.insert_axis(Axis(0)).insert_axis(Axis(0));
    conv2d(input, w4, bias, &ConvParams::default(), 1)
}

/// Validates a pooling: kernel and stride ≥ 1, explicit padding smaller than
/// the kernel on each side, a non-empty input; resolves the geometry.
fn pool_geometry(
    what: [&'static str; 4],
    shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: crate::geometry::Padding,
) -> Result<crate::geometry::ConvGeometry> {
    let [input, kernel_name, stride_name, padding_name] = what;
    if kernel.contains(&0) {
        return Err(Error::param(
            kernel_name,
            format!("{kernel:?}"),
            "must be ≥ 1 on both axes",
        ));
    }
    if stride.contains(&0) {
        return Err(Error::param(
            stride_name,
            format!("{stride:?}"),
            "must be ≥ 1 on both axes",
        ));
    }
    if let crate::geometry::Padding::Explicit {
        top,
        bottom,
        left,
        right,
    } = padding
    {
        let sides = [
            ("top", top, "height", kernel[0]),
            ("bottom", bottom, "height", kernel[0]),
            ("left", left, "width", kernel[1]),
            ("right", right, "width", kernel[1]),
        ];
        for (side, pad, axis, k) in sides {
            if pad >= k {
                return Err(Error::param(
                    padding_name,
                    format!("{side} = {pad}"),
                    format!(
                        "must be smaller than the kernel {axis} {k}, so that every window \
                         holds an input element"
                    ),
                ));
            }
        }
    }
    if shape.contains(&0) {
        return Err(Error::ZeroSize {
            what: input.into(),
            shape: shape.into(),
        });
    }
    let params = ConvParams {
        stride,
        dilation: [1, 1],
        padding,
    };
    params.resolve([shape[1], shape[2]], kernel)
}

/// Naive average pooling: `out[n, oy, ox, c]` is the sum of the window's
/// taps inside the input, divided by their number (TensorFlow), or by `kh·kw`
/// when `count_padding` (PyTorch's `count_include_pad`). Sums in f64.
///
/// # Shapes
/// input `[N, H, W, C]`, output `[N, OH, OW, C]` (as for a convolution with
/// this kernel, stride and padding).
///
/// # Errors
/// [`Error::InvalidParameter`] for a zero kernel or stride, or an explicit
/// padding on a side not smaller than the kernel on that axis;
/// [`Error::ZeroSize`] for an empty input; [`Error::KernelTooLarge`] for a
/// window larger than the padded input.
pub fn avg_pool2d<F: Float>(
    x: ArrayView4<'_, F>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: crate::geometry::Padding,
    count_padding: bool,
) -> Result<Array4<F>> {
    let names = [
        "reference::avg_pool2d input",
        "reference::avg_pool2d kernel",
        "reference::avg_pool2d stride",
        "reference::avg_pool2d padding",
    ];
    let g = pool_geometry(names, x.shape(), kernel, stride, padding)?;
    let (n, _, _, c) = x.dim();
    let mut out = crate::layer::zeros4("reference output", [n, g.h.output, g.w.output, c])?;
    for b in 0..n {
        for oy in 0..g.h.output {
            for ox in 0..g.w.output {
                for ch in 0..c {
                    let mut sum = 0.0;
                    let mut count = 0usize;
                    for ky in 0..kernel[0] {
                        for kx in 0..kernel[1] {
                            if let (Some(iy), Some(ix)) =
                                (g.h.input_index(oy, ky), g.w.input_index(ox, kx))
                            {
                                sum += x[[b, iy, ix, ch]].to_f64_exact();
                                count += 1;
                            }
                        }
                    }
                    if count_padding {
                        count = kernel[0] * kernel[1];
                    }
                    out[[b, oy, ox, ch]] = F::from_f64_lossy(sum / count as f64);
                }
            }
        }
    }
    Ok(out)
}

/// Naive max pooling: `out[n, oy, ox, c]` is the largest of the window's taps
/// inside the input (padding is skipped). If any tap is NaN the output is
/// NaN; among equal values the first in (row, column) tap order is kept.
///
/// # Shapes
/// As [`avg_pool2d`].
///
/// # Errors
/// As [`avg_pool2d`].
pub fn max_pool2d<F: Float>(
    x: ArrayView4<'_, F>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: crate::geometry::Padding,
) -> Result<Array4<F>> {
    let names = [
        "reference::max_pool2d input",
        "reference::max_pool2d kernel",
        "reference::max_pool2d stride",
        "reference::max_pool2d padding",
    ];
    let g = pool_geometry(names, x.shape(), kernel, stride, padding)?;
    let (n, _, _, c) = x.dim();
    let mut out = crate::layer::zeros4("reference output", [n, g.h.output, g.w.output, c])?;
    for b in 0..n {
        for oy in 0..g.h.output {
            for ox in 0..g.w.output {
                for ch in 0..c {
                    let mut best: Option<f64> = None;
                    for ky in 0..kernel[0] {
                        for kx in 0..kernel[1] {
                            if let (Some(iy), Some(ix)) =
                                (g.h.input_index(oy, ky), g.w.input_index(ox, kx))
                            {
                                let v = x[[b, iy, ix, ch]].to_f64_exact();
                                best = match best {
                                    Some(m) if m.is_nan() || !(v.is_nan() || v > m) => Some(m),
                                    _ => Some(v),
                                };
                            }
                        }
                    }
                    let best = best.expect("every window holds an input element");
                    out[[b, oy, ox, ch]] = F::from_f64_lossy(best);
                }
            }
        }
    }
    Ok(out)
}

/// Naive global average pooling: `out[n, 0, 0, c]` is the mean of
/// `x[n, .., .., c]`, summed in f64.
///
/// # Shapes
/// input `[N, H, W, C]`, output `[N, 1, 1, C]`.
///
/// # Errors
/// [`Error::ZeroSize`] for an empty input.
pub fn global_avg_pool<F: Float>(x: ArrayView4<'_, F>) -> Result<Array4<F>> {
    if x.is_empty() {
        return Err(Error::ZeroSize {
            what: "reference::global_avg_pool input".into(),
            shape: x.shape().into(),
        });
    }
    let (n, h, w, c) = x.dim();
    let mut out = crate::layer::zeros4("reference output", [n, 1, 1, c])?;
    for b in 0..n {
        for ch in 0..c {
            let mut sum = 0.0;
            for y in 0..h {
                for xx in 0..w {
                    sum += x[[b, y, xx, ch]].to_f64_exact();
                }
            }
            out[[b, 0, 0, ch]] = F::from_f64_lossy(sum / (h * w) as f64);
        }
    }
    Ok(out)
}

/// Naive dense layer: `out[n, 0, 0, o] = bias[o] + Σ_{y, x, c} x[n, y, x, c] ·
/// weight[(y·W + x)·C + c, o]` (the image flattened in NHWC order), in f64.
///
/// # Shapes
/// input `[N, H, W, C]` with `H·W·C = in_features`, weight
/// `[in_features, out_features]`, bias `[out_features]`, output
/// `[N, 1, 1, out_features]`.
///
/// # Errors
/// [`Error::ZeroSize`] for an empty input or weight,
/// [`Error::ChannelMismatch`] when `H·W·C ≠ in_features`,
/// [`Error::ShapeMismatch`] for a wrong bias.
pub fn dense<F: Float>(
    x: ArrayView4<'_, F>,
    weight: ArrayView2<'_, F>,
    bias: Option<ArrayView1<'_, F>>,
) -> Result<Array4<F>> {
    for (what, shape) in [
        ("reference::dense input", x.shape()),
        ("reference::dense weight", weight.shape()),
    ] {
        if shape.contains(&0) {
            return Err(Error::ZeroSize {
                what: what.into(),
                shape: shape.into(),
            });
        }
    }
    let (n, h, w, c) = x.dim();
    let (inputs, outputs) = weight.dim();
    let features = h
        .checked_mul(w)
        .and_then(|v| v.checked_mul(c))
        .ok_or(Error::Overflow("reference::dense input features"))?;
    if features != inputs {
        return Err(Error::ChannelMismatch {
            what: "reference::dense input (H·W·C)".into(),
            expected: inputs,
            got: features,
        });
    }
    if let Some(b) = bias
        && b.len() != outputs
    {
        return Err(Error::shape("reference::dense bias", &[outputs], b.shape()));
    }
    let mut out = crate::layer::zeros4("reference output", [n, 1, 1, outputs])?;
    for b in 0..n {
        for o in 0..outputs {
            let mut acc = bias.map_or(0.0, |bias| bias[o].to_f64_exact());
            for y in 0..h {
                for xx in 0..w {
                    for ch in 0..c {
                        let i = (y * w + xx) * c + ch;
                        acc += x[[b, y, xx, ch]].to_f64_exact() * weight[[i, o]].to_f64_exact();
                    }
                }
            }
            out[[b, 0, 0, o]] = F::from_f64_lossy(acc);
        }
    }
    Ok(out)
}
