//! Image preprocessing: the TF-slim ImageNet evaluation input pipeline, in pure ndarray.
//!
//! TF-slim evaluates MobileNet v1 with `inception_preprocessing.preprocess_for_eval`:
//!
//! 1. `tf.image.convert_image_dtype(image, tf.float32)`: u8 → f32 in [0, 1] (× 1/255);
//! 2. `tf.image.central_crop(image, central_fraction=0.875)`;
//! 3. `tf.image.resize_bilinear(image, [size, size], align_corners=False)`, the TF1 op,
//!    whose `half_pixel_centers` defaults to `false`;
//! 4. `(x − 0.5) · 2`, which maps [0, 1] to [−1, 1] (the same as `x / 127.5 − 1` on the
//!    u8 value, up to f32 rounding).
//!
//! [`imagenet_input`] runs exactly these steps; [`central_crop`] and [`resize_bilinear`]
//! are the two geometric steps on their own. All images are `[height, width, channels]`
//! (HWC); the network input is NHWC `[1, size, size, 3]`.
//!
//! ```
//! use ndarray::Array3;
//! use sepconv::preprocess::{IMAGENET_CENTRAL_FRACTION, imagenet_input};
//! let white = Array3::<u8>::from_elem((300, 400, 3), 255);
//! let x = imagenet_input(white.view(), 224, IMAGENET_CENTRAL_FRACTION)?;
//! assert_eq!(x.shape(), &[1, 224, 224, 3]);
//! assert!(x.iter().all(|&v| v == 1.0));
//! # Ok::<(), sepconv::Error>(())
//! ```

use ndarray::{Array3, Array4, ArrayView3, Axis, s};

use crate::error::{Error, Result};

#[cfg(feature = "image")]
mod from_image;
#[cfg(feature = "image")]
#[cfg_attr(docsrs, doc(cfg(feature = "image")))]
pub use from_image::{RgbSource, image_batch, image_input, rgb_view};

/// The `central_fraction` TF-slim's ImageNet evaluation uses.
pub const IMAGENET_CENTRAL_FRACTION: f32 = 0.875;

/// Turns an RGB u8 image `[H, W, 3]` into the NHWC f32 network input
/// `[1, size, size, 3]`, as TF-slim's ImageNet evaluation does (see the
/// [module docs](self)): central crop keeping `central_fraction` of each side, bilinear
/// resize to `size × size` (TF1 `resize_bilinear`, `align_corners = false`, no
/// half-pixel centres), then scaling to [−1, 1] (`x / 127.5 − 1`).
///
/// The arithmetic follows TensorFlow's order (× 1/255 before the resize, then
/// `(x − 0.5) · 2`), so results agree with TF-slim to f32 rounding.
///
/// # Errors
///
/// - [`Error::ZeroSize`] if the image has no pixels;
/// - [`Error::ChannelMismatch`] if it does not have 3 channels;
/// - [`Error::InvalidParameter`] if `size` is 0 or `central_fraction` is not in (0, 1];
/// - [`Error::Overflow`] if the `size × size × 3` output overflows or cannot be
///   allocated.
pub fn imagenet_input(
    rgb: ArrayView3<u8>,
    size: usize,
    central_fraction: f32,
) -> Result<Array4<f32>> {
    check_image("imagenet_input image", rgb.shape())?;
    let channels = rgb.shape()[2];
    if channels != 3 {
        return Err(Error::ChannelMismatch {
            what: "imagenet_input (RGB image)".to_string(),
            expected: 3,
            got: channels,
        });
    }
    check_size("size", size)?;
    let cropped = central_crop(rgb, central_fraction)?;
    // tf.image.convert_image_dtype: cast, then multiply by 1 / max(uint8).
    let scale = 1.0f32 / 255.0;
    let unit = cropped.mapv(|v| f32::from(v) * scale);
    let resized = resize_bilinear(unit.view(), size, size)?;
    let input = resized.mapv(|v| (v - 0.5) * 2.0);
    Ok(input.insert_axis(Axis(0)))
}

/// The central window of an HWC image, as `tf.image.central_crop` computes it: on each
/// axis of length `n`, `start = int((n − n · fraction) / 2)` (truncated, computed in
/// f64) and `size = n − 2 · start`. A fraction of 1 keeps the whole image.
///
/// Returns a view into `image` (no copy); any element type and channel count.
///
/// For example a 300 × 451 image at 0.875 gives rows 18..282 and columns 28..423
/// (264 × 395).
///
/// # Errors
///
/// - [`Error::ZeroSize`] if the image has a zero-sized dimension;
/// - [`Error::InvalidParameter`] if `central_fraction` is not in (0, 1] (or is NaN).
pub fn central_crop<T>(
    image: ArrayView3<'_, T>,
    central_fraction: f32,
) -> Result<ArrayView3<'_, T>> {
    check_image("central_crop image", image.shape())?;
    if !(central_fraction > 0.0 && central_fraction <= 1.0) {
        return Err(Error::param(
            "central_fraction",
            central_fraction,
            "must be in (0, 1]",
        ));
    }
    let (h0, hs) = crop_range(image.shape()[0], central_fraction);
    let (w0, ws) = crop_range(image.shape()[1], central_fraction);
    Ok(image.slice_move(s![h0..h0 + hs, w0..w0 + ws, ..]))
}

/// Start and length of the central crop of an axis of length `n ≥ 1`, for a fraction
/// in (0, 1]. `start ≤ (n − n·f) / 2 < n / 2`, so the length is at least 1.
fn crop_range(n: usize, fraction: f32) -> (usize, usize) {
    let nf = n as f64;
    let start_f = (nf - nf * f64::from(fraction)) / 2.0;
    // Truncation toward zero, like Python's int() / TF's cast to int32; start_f is in
    // [0, n/2), so the cast is exact and in range.
    let start = start_f as usize;
    (start, n - 2 * start)
}

/// Bilinear resize of an HWC f32 image to `out_height × out_width`, with TensorFlow 1's
/// `tf.image.resize_bilinear(align_corners=False)` semantics (`half_pixel_centers =
/// False`, its default), which is what TF-slim's `inception_preprocessing` (and so the
/// MobileNet v1 evaluation) calls.
///
/// Output pixel `i` on an axis of input length `n` and output length `m` samples input
/// coordinate `x = i · (n / m)` (scale computed in f32, as TF does): it blends pixels
/// `floor(x)` and `min(ceil(x), n − 1)` with weight `x − floor(x)`. Rows are blended
/// first along the width, then along the height, as TF's kernel does. There are no
/// half-pixel centres, so a downscale by an integer factor `k` picks every `k`-th pixel
/// starting at the first, and an upscale repeats the last row and column.
///
/// Any channel count; `image` may be a non-contiguous view.
///
/// # Errors
///
/// - [`Error::ZeroSize`] if the image has a zero-sized dimension;
/// - [`Error::InvalidParameter`] if `out_height` or `out_width` is 0;
/// - [`Error::Overflow`] if the output's element count overflows or cannot be
///   allocated.
pub fn resize_bilinear(
    image: ArrayView3<f32>,
    out_height: usize,
    out_width: usize,
) -> Result<Array3<f32>> {
    check_image("resize_bilinear image", image.shape())?;
    check_size("out_height", out_height)?;
    check_size("out_width", out_width)?;
    let (in_h, in_w, channels) = (image.shape()[0], image.shape()[1], image.shape()[2]);
    let total = out_height
        .checked_mul(out_width)
        .and_then(|n| n.checked_mul(channels))
        .ok_or(Error::Overflow("resize_bilinear output size"))?;
    let mut out = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| Error::Overflow("resize_bilinear output size (allocation)"))?;

    let ys = interpolation_weights(in_h, out_height);
    let xs = interpolation_weights(in_w, out_width);
    for y in &ys {
        let top_row = image.index_axis(Axis(0), y.lower);
        let bottom_row = image.index_axis(Axis(0), y.upper);
        for x in &xs {
            for c in 0..channels {
                let top_left = top_row[[x.lower, c]];
                let top_right = top_row[[x.upper, c]];
                let bottom_left = bottom_row[[x.lower, c]];
                let bottom_right = bottom_row[[x.upper, c]];
                let top = top_left + (top_right - top_left) * x.lerp;
                let bottom = bottom_left + (bottom_right - bottom_left) * x.lerp;
                out.push(top + (bottom - top) * y.lerp);
            }
        }
    }
    Array3::from_shape_vec((out_height, out_width, channels), out)
        .map_err(|_| Error::Overflow("resize_bilinear output size"))
}

/// One output coordinate's two source indices and blend weight.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Interp {
    lower: usize,
    upper: usize,
    lerp: f32,
}

/// TF's `compute_interpolation_weights` with the legacy scaler (`in = out · scale`,
/// `scale = in_size / out_size` in f32). Both sizes are ≥ 1.
fn interpolation_weights(in_size: usize, out_size: usize) -> Vec<Interp> {
    let scale = in_size as f32 / out_size as f32;
    let last = in_size - 1;
    (0..out_size)
        .map(|i| {
            let x = i as f32 * scale;
            let floor = x.floor();
            // x ≥ 0 and, in exact arithmetic, < in_size; clamp both ends anyway so that
            // f32 rounding can never index outside the image.
            let lower = (floor as usize).min(last);
            let upper = (x.ceil() as usize).min(last);
            Interp {
                lower,
                upper,
                lerp: x - floor,
            }
        })
        .collect()
}

fn check_image(what: &str, shape: &[usize]) -> Result<()> {
    if shape.contains(&0) {
        return Err(Error::ZeroSize {
            what: what.to_string(),
            shape: shape.into(),
        });
    }
    Ok(())
}

fn check_size(name: &'static str, size: usize) -> Result<()> {
    if size == 0 {
        return Err(Error::param(name, size, "must be ≥ 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, arr3};

    fn gray(rows: &[&[f32]]) -> Array3<f32> {
        let h = rows.len();
        let w = rows[0].len();
        Array::from_shape_fn((h, w, 1), |(y, x, _)| rows[y][x])
    }

    fn channel0(a: &Array3<f32>) -> Vec<Vec<f32>> {
        a.outer_iter()
            .map(|row| row.outer_iter().map(|px| px[0]).collect())
            .collect()
    }

    #[test]
    fn upscale_2x2_to_4x4_by_hand() {
        // scale 0.5: x = 0, 0.5, 1, 1.5 → (lower, upper, lerp) = (0,0,0) (0,1,.5) (1,1,0)
        // (1,1,.5): the last column and row repeat (no half-pixel centres).
        let img = gray(&[&[0.0, 4.0], &[8.0, 12.0]]);
        let out = resize_bilinear(img.view(), 4, 4).unwrap();
        assert_eq!(
            channel0(&out),
            vec![
                vec![0.0, 2.0, 4.0, 4.0],
                vec![4.0, 6.0, 8.0, 8.0],
                vec![8.0, 10.0, 12.0, 12.0],
                vec![8.0, 10.0, 12.0, 12.0],
            ]
        );
    }

    #[test]
    fn downscale_by_two_picks_even_pixels() {
        // scale 2: x = 0, 2 exactly, so no blending: half-pixel centres would average.
        let img = Array::from_shape_fn((4, 4, 1), |(y, x, _)| (10 * y + x) as f32);
        let out = resize_bilinear(img.view(), 2, 2).unwrap();
        assert_eq!(channel0(&out), vec![vec![0.0, 2.0], vec![20.0, 22.0]]);
    }

    #[test]
    fn three_to_two_blends_at_one_and_a_half() {
        // scale 1.5: x = 0 and 1.5 → pixel 0, and half of pixels 1 and 2.
        let img = gray(&[&[0.0, 2.0, 6.0]]);
        let out = resize_bilinear(img.view(), 1, 2).unwrap();
        assert_eq!(channel0(&out), vec![vec![0.0, 4.0]]);
    }

    #[test]
    fn identity_resize_is_exact() {
        let img = Array::from_shape_fn((5, 7, 3), |(y, x, c)| {
            ((y * 31 + x * 7 + c * 3) % 17) as f32 * 0.37 - 1.5
        });
        let out = resize_bilinear(img.view(), 5, 7).unwrap();
        assert_eq!(out, img);
    }

    #[test]
    fn channels_are_independent_and_views_work() {
        let img = Array::from_shape_fn((6, 8, 2), |(y, x, c)| {
            if c == 0 {
                (y * 8 + x) as f32
            } else {
                -((y + x) as f32)
            }
        });
        // A strided, non-contiguous view: every other column.
        let view = img.slice(s![.., ..;2, ..]);
        let out = resize_bilinear(view, 3, 5).unwrap();
        let contiguous = view.to_owned();
        let expected = resize_bilinear(contiguous.view(), 3, 5).unwrap();
        assert_eq!(out, expected);
        for c in 0..2 {
            let single = contiguous.slice(s![.., .., c..c + 1]).to_owned();
            let alone = resize_bilinear(single.view(), 3, 5).unwrap();
            assert_eq!(out.slice(s![.., .., c..c + 1]), alone);
        }
        assert_eq!(out.shape(), &[3, 5, 2]);
    }

    #[test]
    fn one_pixel_broadcasts() {
        let img = arr3(&[[[3.0f32, -1.0]]]);
        let out = resize_bilinear(img.view(), 2, 3).unwrap();
        assert!(
            out.outer_iter()
                .all(|row| row.outer_iter().all(|px| px.to_vec() == vec![3.0, -1.0]))
        );
    }

    #[test]
    fn resize_errors() {
        let img = Array3::<f32>::zeros((2, 2, 1));
        assert!(matches!(
            resize_bilinear(img.view(), 0, 2),
            Err(Error::InvalidParameter {
                name: "out_height",
                ..
            })
        ));
        assert!(matches!(
            resize_bilinear(img.view(), 2, 0),
            Err(Error::InvalidParameter {
                name: "out_width",
                ..
            })
        ));
        let empty = Array3::<f32>::zeros((0, 2, 1));
        assert!(matches!(
            resize_bilinear(empty.view(), 2, 2),
            Err(Error::ZeroSize { .. })
        ));
        let no_channels = Array3::<f32>::zeros((2, 2, 0));
        assert!(matches!(
            resize_bilinear(no_channels.view(), 2, 2),
            Err(Error::ZeroSize { .. })
        ));
        assert!(matches!(
            resize_bilinear(img.view(), usize::MAX, 2),
            Err(Error::Overflow(_))
        ));
        // Fits in usize but not in memory: an error, not an abort.
        assert!(matches!(
            resize_bilinear(img.view(), 1 << 31, 1 << 30),
            Err(Error::Overflow(_))
        ));
    }

    #[test]
    fn crop_ranges_match_tf_central_crop() {
        // int((n - n*f)/2), n - 2*start.
        assert_eq!(crop_range(300, 0.875), (18, 264)); // chelsea height: 18.75 → 18
        assert_eq!(crop_range(451, 0.875), (28, 395)); // chelsea width: 28.1875 → 28
        assert_eq!(crop_range(400, 0.875), (25, 350)); // coffee height
        assert_eq!(crop_range(600, 0.875), (37, 526)); // coffee width: 37.5 → 37
        assert_eq!(crop_range(224, 0.875), (14, 196));
        assert_eq!(crop_range(10, 0.5), (2, 6)); // 2.5 → 2
        assert_eq!(crop_range(7, 1.0), (0, 7));
        assert_eq!(crop_range(1, 1e-6), (0, 1));
        assert_eq!(crop_range(2, 1e-6), (0, 2)); // 0.999999 → 0
        assert_eq!(crop_range(3, 1e-6), (1, 1));
    }

    #[test]
    fn central_crop_views_the_right_window() {
        let img = Array::from_shape_fn((300, 451, 1), |(y, x, _)| (y * 1000 + x) as u32);
        let c = central_crop(img.view(), 0.875).unwrap();
        assert_eq!(c.shape(), &[264, 395, 1]);
        assert_eq!(c[[0, 0, 0]], 18 * 1000 + 28);
        assert_eq!(c[[263, 394, 0]], 281 * 1000 + 422);
        let whole = central_crop(img.view(), 1.0).unwrap();
        assert_eq!(whole, img.view());
    }

    #[test]
    fn central_crop_errors() {
        let img = Array3::<u8>::zeros((4, 4, 3));
        for f in [0.0, -0.5, 1.0001, f32::NAN, f32::INFINITY] {
            assert!(
                matches!(
                    central_crop(img.view(), f),
                    Err(Error::InvalidParameter {
                        name: "central_fraction",
                        ..
                    })
                ),
                "{f}"
            );
        }
        let empty = Array3::<u8>::zeros((4, 0, 3));
        assert!(matches!(
            central_crop(empty.view(), 0.5),
            Err(Error::ZeroSize { .. })
        ));
    }

    #[test]
    fn imagenet_input_constant_images_map_to_the_ends() {
        let white = Array3::<u8>::from_elem((30, 40, 3), 255);
        let x = imagenet_input(white.view(), 8, IMAGENET_CENTRAL_FRACTION).unwrap();
        assert_eq!(x.shape(), &[1, 8, 8, 3]);
        assert!(x.iter().all(|&v| v == 1.0));
        let black = Array3::<u8>::zeros((30, 40, 3));
        let x = imagenet_input(black.view(), 5, 0.5).unwrap();
        assert_eq!(x.shape(), &[1, 5, 5, 3]);
        assert!(x.iter().all(|&v| v == -1.0));
    }

    #[test]
    fn imagenet_input_crops_resizes_and_scales() {
        // 16 × 16, value = 8·col + channel; fraction 0.5 keeps rows/cols 4..12; resizing
        // 8 → 4 picks crop columns 0, 2, 4, 6 = image columns 4, 6, 8, 10.
        let img = Array::from_shape_fn((16, 16, 3), |(_, x, c)| (8 * x + c) as u8);
        let x = imagenet_input(img.view(), 4, 0.5).unwrap();
        assert_eq!(x.shape(), &[1, 4, 4, 3]);
        for (col, src) in [4usize, 6, 8, 10].into_iter().enumerate() {
            for c in 0..3 {
                let raw = (8 * src + c) as f32;
                let want = raw / 127.5 - 1.0;
                for row in 0..4 {
                    let got = x[[0, row, col, c]];
                    assert!(
                        (got - want).abs() <= 1e-6,
                        "[{row},{col},{c}] {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn imagenet_input_upscales_small_images() {
        // A 2×2 image, no crop, to 4×4: the blends of the hand-computed case, in [-1, 1].
        let img = Array::from_shape_fn((2, 2, 3), |(y, x, _)| (y * 2 + x) as u8 * 50);
        let x = imagenet_input(img.view(), 4, 1.0).unwrap();
        let want = [
            [0.0, 25.0, 50.0, 50.0],
            [50.0, 75.0, 100.0, 100.0],
            [100.0, 125.0, 150.0, 150.0],
            [100.0, 125.0, 150.0, 150.0],
        ];
        for r in 0..4 {
            for c in 0..4 {
                let w = want[r][c] / 127.5 - 1.0;
                for ch in 0..3 {
                    assert!((x[[0, r, c, ch]] - w).abs() <= 1e-6);
                }
            }
        }
    }

    #[test]
    fn imagenet_input_errors() {
        let rgb = Array3::<u8>::zeros((8, 8, 3));
        assert!(matches!(
            imagenet_input(rgb.view(), 0, 0.875),
            Err(Error::InvalidParameter { name: "size", .. })
        ));
        assert!(matches!(
            imagenet_input(rgb.view(), 4, 0.0),
            Err(Error::InvalidParameter {
                name: "central_fraction",
                ..
            })
        ));
        assert!(matches!(
            imagenet_input(rgb.view(), 4, 1.5),
            Err(Error::InvalidParameter {
                name: "central_fraction",
                ..
            })
        ));
        let rgba = Array3::<u8>::zeros((8, 8, 4));
        assert!(matches!(
            imagenet_input(rgba.view(), 4, 0.875),
            Err(Error::ChannelMismatch {
                expected: 3,
                got: 4,
                ..
            })
        ));
        let empty = Array3::<u8>::zeros((0, 8, 3));
        assert!(matches!(
            imagenet_input(empty.view(), 4, 0.875),
            Err(Error::ZeroSize { .. })
        ));
    }
}
