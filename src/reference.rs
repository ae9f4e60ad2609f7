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
    let mut out = Array4::zeros((n, g.h.output, g.w.output, cout));
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
