//! The golden test: Google's pretrained MobileNet v1 1.0-224 (TF-slim), loaded
//! from its frozen graph, classifies two real photos. The assets are fetched
//! (with checksums) by `scripts/fetch_assets.py`; if that fails, the test
//! fails with the script's output.
#![cfg(feature = "tf")]

use crate::support;

use ndarray::Axis;
use sepconv::Algorithm;
use sepconv::mobilenet::{softmax, top_k};
use sepconv::preprocess::{IMAGENET_CENTRAL_FRACTION, imagenet_input};

/// TF-slim indices (ImageNet index + 1): tabby 282, tiger cat 283, Egyptian cat 286; espresso 968.
const CATS: [usize; 3] = [282, 283, 286];
const ESPRESSO: usize = 968;

#[test]
fn pretrained_mobilenet_classifies_real_photos() {
    let dir = support::asset_dir().unwrap_or_else(|e| panic!("{e}"));
    let labels = support::labels(&dir).unwrap();
    assert_eq!(labels[CATS[0]], "tabby, tabby cat");
    assert_eq!(labels[ESPRESSO], "espresso");
    let net = support::load_pretrained(&dir).unwrap();
    let input = |name: &str| {
        let rgb = support::load_rgb(&dir.join(name)).unwrap();
        imagenet_input(rgb.view(), 224, IMAGENET_CENTRAL_FRACTION).unwrap()
    };
    let (cat, coffee) = (input("chelsea.png"), input("coffee.png"));
    let batch = ndarray::concatenate(Axis(0), &[cat.view(), coffee.view()]).unwrap();
    let logits = net.forward(batch.view()).unwrap();
    assert_eq!(logits.shape(), &[2, 1001]);
    let probs = softmax(logits.view());
    let top_cat = top_k(probs.row(0), 5);
    let top_coffee = top_k(probs.row(1), 5);
    let show = |t: &[(usize, f32)]| {
        t.iter()
            .map(|&(i, p)| format!("{} ({p:.3})", labels[i]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert!(
        CATS.contains(&top_cat[0].0),
        "chelsea.png: top-5 {}",
        show(&top_cat)
    );
    assert_eq!(
        top_coffee[0].0,
        ESPRESSO,
        "coffee.png: top-5 {}",
        show(&top_coffee)
    );
    // Confident, not lucky: the winning class carries real probability mass.
    assert!(
        top_coffee[0].1 > 0.5,
        "coffee.png: top-5 {}",
        show(&top_coffee)
    );
    let cat_mass: f32 = CATS.iter().map(|&i| probs[[0, i]]).sum();
    assert!(
        cat_mass > 0.5,
        "chelsea.png: cat classes hold only {cat_mass}; top-5 {}",
        show(&top_cat)
    );
}

/// The logits of the two photos, bit for bit, as the network computed them
/// before it ran on the composition API (`tests/fixtures/pretrained_logits.txt`:
/// main at d4afb1d, batch of both photos, f32 bits in hex, one photo a line).
/// The fixture is of the AVX2+FMA kernels (forced here, whatever `Auto`
/// picks); another path rounds differently.
#[test]
fn pretrained_logits_are_bit_identical_to_the_fixture() {
    if Algorithm::Avx2Fma.resolve().is_err() {
        eprintln!(
            "skipped: the fixture holds the AVX2+FMA path's bits and this CPU lacks AVX2 or FMA"
        );
        return;
    }
    let dir = support::asset_dir().unwrap_or_else(|e| panic!("{e}"));
    let net = support::load_pretrained(&dir)
        .unwrap()
        .with_algorithm(Algorithm::Avx2Fma);
    let input = |name: &str| {
        let rgb = support::load_rgb(&dir.join(name)).unwrap();
        imagenet_input(rgb.view(), 224, IMAGENET_CENTRAL_FRACTION).unwrap()
    };
    let batch = ndarray::concatenate(
        Axis(0),
        &[input("chelsea.png").view(), input("coffee.png").view()],
    )
    .unwrap();
    let fixture = include_str!("fixtures/pretrained_logits.txt");
    let want: Vec<Vec<u32>> = fixture
        .lines()
        .map(|l| {
            l.split(' ')
                .map(|h| u32::from_str_radix(h, 16).unwrap())
                .collect()
        })
        .collect();
    assert_eq!((want.len(), want[0].len()), (2, 1001), "fixture shape");
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let logits = pool.install(|| net.forward(batch.view())).unwrap();
        // One image at a time runs the early layers the same way as a batch.
        let single = pool
            .install(|| net.forward(batch.slice(ndarray::s![1..2, .., .., ..])))
            .unwrap();
        for (b, row) in logits.rows().into_iter().enumerate() {
            let got: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
            let diff = got.iter().zip(&want[b]).filter(|(g, w)| g != w).count();
            assert_eq!(
                diff, 0,
                "photo {b}, {threads} thread(s): {diff} of 1001 logits differ"
            );
        }
        assert_eq!(
            single.row(0),
            logits.row(1),
            "{threads} thread(s): batch of one"
        );
    }
}

/// The same pretrained network through the naive oracle (f64 accumulation,
/// every layer): the fast paths agree on real weights and a real photo.
#[test]
fn pretrained_fast_path_matches_the_oracle() {
    let dir = support::asset_dir().unwrap_or_else(|e| panic!("{e}"));
    let net = support::load_pretrained(&dir).unwrap();
    let rgb = support::load_rgb(&dir.join("coffee.png")).unwrap();
    let x = imagenet_input(rgb.view(), 224, IMAGENET_CENTRAL_FRACTION).unwrap();
    let fast = net.forward(x.view()).unwrap();
    let slow = net
        .clone()
        .with_algorithm(Algorithm::Reference)
        .forward(x.view())
        .unwrap();
    let scale = slow.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = fast
        .iter()
        .zip(&slow)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    // 28 f32 layers against f64 accumulation: agreement to ~1e-4 of the logit scale.
    assert!(
        worst <= 2e-4 * scale,
        "max |fast − oracle| = {worst}, logit scale {scale}"
    );
}
