//! Network input from the `image` crate's decoded images (feature `image`).

use std::borrow::Cow;

use image::{DynamicImage, RgbImage};
use ndarray::{Array4, ArrayView3, Axis};

use super::{IMAGENET_CENTRAL_FRACTION, imagenet_input};
use crate::Float;
use crate::error::{Error, Result};

/// A decoded image that can be seen as 8-bit RGB: [`RgbImage`] (borrowed as
/// it is) or [`DynamicImage`] (converted with `to_rgb8` unless it already is
/// 8-bit RGB; alpha is dropped, grey is repeated on the three channels).
pub trait RgbSource {
    /// The image as 8-bit RGB.
    fn rgb(&self) -> Cow<'_, RgbImage>;
}

impl RgbSource for RgbImage {
    fn rgb(&self) -> Cow<'_, RgbImage> {
        Cow::Borrowed(self)
    }
}

impl RgbSource for DynamicImage {
    fn rgb(&self) -> Cow<'_, RgbImage> {
        match self.as_rgb8() {
            Some(rgb) => Cow::Borrowed(rgb),
            None => Cow::Owned(self.to_rgb8()),
        }
    }
}

impl<T: RgbSource + ?Sized> RgbSource for &T {
    fn rgb(&self) -> Cow<'_, RgbImage> {
        (**self).rgb()
    }
}

/// An [`RgbImage`]'s pixels as an HWC array view `[height, width, 3]`, no copy.
///
/// ```
/// let img = image::RgbImage::from_fn(4, 2, |x, y| image::Rgb([x as u8, y as u8, 7]));
/// let v = sepconv::preprocess::rgb_view(&img);
/// assert_eq!(v.shape(), &[2, 4, 3]);
/// assert_eq!(v.slice(ndarray::s![1, 3, ..]).to_vec(), [3, 1, 7]); // row 1, column 3
/// ```
pub fn rgb_view(image: &RgbImage) -> ArrayView3<'_, u8> {
    let (w, h) = image.dimensions();
    // An RgbImage holds exactly w·h·3 bytes, row-major (the image crate's
    // invariant), so the shape always matches.
    ArrayView3::from_shape((h as usize, w as usize, 3), image.as_raw())
        .expect("an RgbImage holds width × height × 3 bytes")
}

/// One image as the NHWC network input `[1, size, size, 3]` with TF-slim's
/// ImageNet evaluation preprocessing ([`imagenet_input`] with the 87.5%
/// central crop). f32 is computed exactly as [`imagenet_input`] does; f64 is
/// that f32 input widened (TF-slim's pipeline runs in f32, so that is the
/// input the pretrained weights saw).
///
/// ```
/// let photo = image::DynamicImage::ImageRgb8(image::RgbImage::new(640, 480));
/// let x = sepconv::preprocess::image_input::<f64>(&photo, 224)?;
/// assert_eq!(x.shape(), &[1, 224, 224, 3]);
/// assert!(x.iter().all(|&v| v == -1.0)); // black is -1
/// # Ok::<(), sepconv::Error>(())
/// ```
///
/// # Errors
///
/// Those of [`imagenet_input`]: [`Error::ZeroSize`] for an image without
/// pixels, [`Error::InvalidParameter`] for `size` = 0.
pub fn image_input<F: Float>(image: &impl RgbSource, size: usize) -> Result<Array4<F>> {
    let rgb = image.rgb();
    let x = imagenet_input(rgb_view(&rgb), size, IMAGENET_CENTRAL_FRACTION)?;
    Ok(x.mapv(|v| F::from_f64_lossy(f64::from(v))))
}

/// Several images as one NHWC batch `[images.len(), size, size, 3]`, each
/// preprocessed as [`image_input`] does (any sizes: each is cropped and
/// resized on its own).
///
/// ```
/// let photos = [image::RgbImage::new(300, 200), image::RgbImage::new(64, 64)];
/// let x = sepconv::preprocess::image_batch::<f32, _>(&photos, 160)?;
/// assert_eq!(x.shape(), &[2, 160, 160, 3]);
/// # Ok::<(), sepconv::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::ZeroSize`] for an empty slice; otherwise those of
/// [`image_input`], for the first image that fails.
pub fn image_batch<F: Float, I: RgbSource>(images: &[I], size: usize) -> Result<Array4<F>> {
    if images.is_empty() {
        return Err(Error::ZeroSize {
            what: "image_batch images".into(),
            shape: [0].into(),
        });
    }
    let inputs = images
        .iter()
        .map(|img| image_input::<F>(img, size))
        .collect::<Result<Vec<_>>>()?;
    let views: Vec<_> = inputs.iter().map(|x| x.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(|_| Error::Overflow("image_batch size"))
}
