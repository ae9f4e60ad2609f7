//! Converters for PyTorch users: NCHW ↔ NHWC activations and PyTorch weight
//! layouts to the crate's.
//!
//! | PyTorch | sepconv | function |
//! | --- | --- | --- |
//! | activations `[N, C, H, W]` | `[N, H, W, C]` | [`nchw_to_nhwc`], [`nhwc_to_nchw`] |
//! | `Conv2d.weight` `[C_out, C_in/g, kh, kw]` (OIHW) | `[kh, kw, C_in/g, C_out]` (HWIO) | [`oihw_to_hwio`] |
//! | depthwise `Conv2d(groups=C).weight` `[C·m, 1, kh, kw]` | `[kh, kw, C, m]` | [`torch_depthwise`] |
//! | 1×1 `Conv2d.weight` `[C_out, C_in, 1, 1]` | `[C_in, C_out]` | [`torch_pointwise`] |
//!
//! Exporting to PyTorch (or ONNX) goes the other way: [`nhwc_to_nchw`],
//! [`hwio_to_oihw`], [`depthwise_to_torch`] and [`pointwise_to_torch`], each
//! the exact inverse of its import.
//!
//! A layer given an NCHW input, or PyTorch weights where the crate's are
//! expected, fails with [`Error::Layout`], whose
//! message names the converter to use.
//!
//! PyTorch's `padding=p` is [`Padding::symmetric(p)`](crate::Padding::symmetric),
//! not `Padding::Same` (TensorFlow's asymmetric SAME).
//!
//! ```
//! use ndarray::Array4;
//! use sepconv::layout::{nchw_to_nhwc, nhwc_to_nchw};
//! let x = Array4::from_shape_fn((2, 3, 4, 5), |(n, c, h, w)| (n * 1000 + c * 100 + h * 10 + w) as f32);
//! let y = nchw_to_nhwc(x.view());
//! assert_eq!(y.shape(), &[2, 4, 5, 3]);
//! assert_eq!(y[[1, 2, 3, 0]], x[[1, 0, 2, 3]]);
//! assert_eq!(nhwc_to_nchw(y.view()), x);
//! ```

use ndarray::{Array2, Array4, ArrayView2, ArrayView4};

use crate::Float;
use crate::error::{Error, Result};

/// `[N, C, H, W]` → `[N, H, W, C]`, contiguous.
pub fn nchw_to_nhwc<F: Float>(x: ArrayView4<'_, F>) -> Array4<F> {
    x.permuted_axes([0, 2, 3, 1])
        .as_standard_layout()
        .into_owned()
}

/// `[N, H, W, C]` → `[N, C, H, W]`, contiguous.
pub fn nhwc_to_nchw<F: Float>(x: ArrayView4<'_, F>) -> Array4<F> {
    x.permuted_axes([0, 3, 1, 2])
        .as_standard_layout()
        .into_owned()
}

/// PyTorch/ONNX conv weight `[C_out, C_in/g, kh, kw]` → `[kh, kw, C_in/g, C_out]`.
pub fn oihw_to_hwio<F: Float>(w: ArrayView4<'_, F>) -> Array4<F> {
    w.permuted_axes([2, 3, 1, 0])
        .as_standard_layout()
        .into_owned()
}

/// `[kh, kw, C_in/g, C_out]` → PyTorch/ONNX `[C_out, C_in/g, kh, kw]`.
pub fn hwio_to_oihw<F: Float>(w: ArrayView4<'_, F>) -> Array4<F> {
    w.permuted_axes([3, 2, 0, 1])
        .as_standard_layout()
        .into_owned()
}

/// PyTorch depthwise weight `[C·m, 1, kh, kw]` (a `Conv2d` with `groups = C`)
/// → `[kh, kw, C, m]`; output channel `c·m + j` is the same in both.
///
/// # Errors
/// [`Error::ShapeMismatch`] when axis 1 is not 1 or axis 0 is not a positive
/// multiple of `channels`; [`Error::ZeroSize`] for `channels = 0`.
pub fn torch_depthwise<F: Float>(w: ArrayView4<'_, F>, channels: usize) -> Result<Array4<F>> {
    let [cm, one, kh, kw] = crate::conv::dims4(w.shape());
    if channels == 0 {
        return Err(Error::ZeroSize {
            what: "depthwise channels".into(),
            shape: [0].into(),
        });
    }
    if one != 1 || cm == 0 || cm % channels != 0 {
        let m = (cm / channels).max(1);
        return Err(Error::shape(
            "PyTorch depthwise weight",
            &[channels * m, 1, kh, kw],
            w.shape(),
        ));
    }
    let m = cm / channels;
    Ok(Array4::from_shape_fn(
        (kh, kw, channels, m),
        |(y, x, c, j)| w[[c * m + j, 0, y, x]],
    ))
}

/// PyTorch 1×1 conv weight `[C_out, C_in, 1, 1]` → `[C_in, C_out]`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the kernel is not 1×1.
pub fn torch_pointwise<F: Float>(w: ArrayView4<'_, F>) -> Result<Array2<F>> {
    let [co, ci, kh, kw] = crate::conv::dims4(w.shape());
    if (kh, kw) != (1, 1) {
        return Err(Error::shape(
            "PyTorch pointwise weight",
            &[co, ci, 1, 1],
            w.shape(),
        ));
    }
    Ok(Array2::from_shape_fn((ci, co), |(i, o)| w[[o, i, 0, 0]]))
}

/// `[kh, kw, C, m]` → PyTorch depthwise weight `[C·m, 1, kh, kw]` (for a
/// `Conv2d` with `groups = C`): the inverse of [`torch_depthwise`].
///
/// ```
/// use ndarray::Array4;
/// use sepconv::layout::{depthwise_to_torch, torch_depthwise};
/// let w = Array4::from_shape_fn((3, 3, 4, 2), |(y, x, c, j)| (y * 1000 + x * 100 + c * 10 + j) as f32);
/// let t = depthwise_to_torch(w.view());
/// assert_eq!(t.shape(), &[8, 1, 3, 3]);
/// assert_eq!(t[[2 * 2 + 1, 0, 1, 2]], w[[1, 2, 2, 1]]); // channel c·m + j
/// assert_eq!(torch_depthwise(t.view(), 4)?, w);
/// # Ok::<(), sepconv::Error>(())
/// ```
pub fn depthwise_to_torch<F: Float>(w: ArrayView4<'_, F>) -> Array4<F> {
    let [kh, kw, c, m] = crate::conv::dims4(w.shape());
    Array4::from_shape_fn((c * m, 1, kh, kw), |(o, _, y, x)| w[[y, x, o / m, o % m]])
}

/// `[C_in, C_out]` → PyTorch 1×1 conv weight `[C_out, C_in, 1, 1]`: the
/// inverse of [`torch_pointwise`].
///
/// ```
/// use ndarray::Array2;
/// use sepconv::layout::{pointwise_to_torch, torch_pointwise};
/// let w = Array2::from_shape_fn((3, 5), |(i, o)| (i * 10 + o) as f64);
/// let t = pointwise_to_torch(w.view());
/// assert_eq!(t.shape(), &[5, 3, 1, 1]);
/// assert_eq!(t[[4, 2, 0, 0]], w[[2, 4]]);
/// assert_eq!(torch_pointwise(t.view())?, w);
/// # Ok::<(), sepconv::Error>(())
/// ```
pub fn pointwise_to_torch<F: Float>(w: ArrayView2<'_, F>) -> Array4<F> {
    let (ci, co) = w.dim();
    Array4::from_shape_fn((co, ci, 1, 1), |(o, i, _, _)| w[[i, o]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_trip_and_index_map() {
        let w = Array4::from_shape_fn((6, 1, 3, 2), |(o, _, y, x)| (o * 100 + y * 10 + x) as f64);
        let d = torch_depthwise(w.view(), 3).unwrap();
        assert_eq!(d.shape(), &[3, 2, 3, 2]);
        assert_eq!(d[[2, 1, 1, 1]], w[[3, 0, 2, 1]]);
        assert!(matches!(
            torch_depthwise(w.view(), 4),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            torch_depthwise(w.view(), 0),
            Err(Error::ZeroSize { .. })
        ));
        let full = Array4::from_shape_fn((4, 3, 2, 5), |(o, i, y, x)| {
            (o * 1000 + i * 100 + y * 10 + x) as f32
        });
        assert_eq!(hwio_to_oihw(oihw_to_hwio(full.view()).view()), full);
        assert_eq!(oihw_to_hwio(full.view())[[1, 4, 2, 3]], full[[3, 2, 1, 4]]);
        assert!(torch_pointwise(full.view()).is_err());
        let p = Array4::from_shape_fn((4, 3, 1, 1), |(o, i, _, _)| (o * 10 + i) as f32);
        assert_eq!(torch_pointwise(p.view()).unwrap()[[2, 3]], 32.0);
    }
}
