//! The README's and the crate docs' quick start, run for real: the
//! pretrained entry point and the `image` input on the two fetched photos
//! (`scripts/fetch_assets.py` fetches them, sha256-checked; if it fails, the
//! test fails with its output), and the errors of a cache without the assets.
#![cfg(all(feature = "tf", feature = "image"))]

use crate::support;

use sepconv::mobilenet::{softmax, top_k};
use sepconv::preprocess::{IMAGENET_CENTRAL_FRACTION, image_batch, image_input, imagenet_input};

/// TF-slim indices (ImageNet index + 1).
const EGYPTIAN_CAT: usize = 286;
const ESPRESSO: usize = 968;

#[test]
fn the_quick_start_classifies_the_photos() {
    let dir = support::asset_dir().unwrap_or_else(|e| panic!("{e}"));
    // The library finds the cache the fetch script filled, by the same rules.
    assert_eq!(sepconv::pretrained::cache_dir().unwrap(), dir);

    // The quick start, line for line.
    let (net, labels) = sepconv::pretrained::mobilenet_v1().unwrap();
    for (photo, expected) in [("chelsea.png", EGYPTIAN_CAT), ("coffee.png", ESPRESSO)] {
        let x = image_input::<f32>(&image::open(dir.join(photo)).unwrap(), 224).unwrap();
        let probs = softmax(net.forward(x.view()).unwrap().view());
        let top5 = top_k(probs.row(0), 5);
        assert_eq!(
            top5[0].0, expected,
            "{photo}: top-5 {top5:?}, {}",
            labels[top5[0].0]
        );
    }
    assert_eq!(labels.len(), 1001);
    assert_eq!(labels[0], "background");
    assert_eq!(labels[EGYPTIAN_CAT], "Egyptian cat");
    assert_eq!(labels[ESPRESSO], "espresso");

    // The image path is preprocess::imagenet_input to the bit, and f64 is
    // that f32 input widened; a batch is its images stacked.
    let photos = ["chelsea.png", "coffee.png"].map(|p| image::open(dir.join(p)).unwrap());
    let rgb = support::load_rgb(&dir.join("coffee.png")).unwrap();
    let by_hand = imagenet_input(rgb.view(), 224, IMAGENET_CENTRAL_FRACTION).unwrap();
    let from_image = image_input::<f32>(&photos[1], 224).unwrap();
    assert_eq!(from_image, by_hand);
    let wide = image_input::<f64>(&photos[1].to_rgb8(), 224).unwrap();
    assert_eq!(wide, by_hand.mapv(f64::from));
    let batch = image_batch::<f32, _>(&photos, 224).unwrap();
    assert_eq!(batch.shape(), &[2, 224, 224, 3]);
    assert_eq!(batch.slice(ndarray::s![1..2, .., .., ..]), by_hand);
    let top = softmax(net.forward(batch.view()).unwrap().view());
    assert_eq!(top_k(top.row(0), 1)[0].0, EGYPTIAN_CAT);
    assert_eq!(top_k(top.row(1), 1)[0].0, ESPRESSO);
}

#[test]
fn a_cache_without_the_assets_says_how_to_fetch_them() {
    let empty = std::env::temp_dir().join(format!("sepconv-empty-cache-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let Err(e) = sepconv::pretrained::mobilenet_v1_from(&empty) else {
        panic!("an empty folder has no model");
    };
    let e = e.to_string();
    assert!(e.contains("imagenet_classes.txt: not found"), "{e}");
    assert!(e.contains("python3 scripts/fetch_assets.py"), "{e}");
    assert!(e.contains("https://github.com/sepconv/sepconv"), "{e}");

    // A file that is not the pinned one is refused, and the message says why.
    std::fs::write(empty.join("imagenet_classes.txt"), "tench\n").unwrap();
    let e = sepconv::pretrained::imagenet_labels(&empty)
        .unwrap_err()
        .to_string();
    std::fs::remove_dir_all(&empty).unwrap();
    assert!(e.contains("sha256 is "), "{e}");
    assert!(e.contains(sepconv::pretrained::LABELS_SHA256[0]), "{e}");
}

#[test]
fn empty_and_zero_sized_images_are_errors() {
    assert!(image_batch::<f32, image::RgbImage>(&[], 224).is_err());
    assert!(image_input::<f32>(&image::RgbImage::new(0, 5), 224).is_err());
    assert!(image_input::<f32>(&image::RgbImage::new(5, 5), 0).is_err());
    // Grey and RGBA images are converted: grey on three channels, alpha dropped.
    let grey =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(8, 8, image::Luma([255])));
    let x = image_input::<f32>(&grey, 4).unwrap();
    assert!(x.iter().all(|&v| v == 1.0), "{x:?}");
}
