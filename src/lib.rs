#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Depthwise-separable convolution on ndarray, the layers to compose
//! networks of it, and a paper-exact MobileNet v1.
//!
//! # Quick start
//!
//! Classify a photo with Google's pretrained MobileNet v1 1.0-224 (features
//! `tf` and `image`, both on by default; add `image = "0.25"` to decode the
//! photo). The weights and labels come from the asset cache that
//! `scripts/fetch_assets.py` fills, see [`pretrained`]:
//!
//! ```no_run
//! # #[cfg(all(feature = "tf", feature = "image"))]
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     use sepconv::mobilenet::{softmax, top_k};
//!     let (net, labels) = sepconv::pretrained::mobilenet_v1()?;
//!     let x = sepconv::preprocess::image_input::<f32>(&image::open("cat.jpg")?, 224)?;
//!     let probs = softmax(net.forward(x.view())?.view());
//!     for (class, p) in top_k(probs.row(0), 5) {
//!         println!("{:5.1}%  {}", 100.0 * p, labels[class]);
//!     }
//!     Ok(())
//! }
//! # #[cfg(not(all(feature = "tf", feature = "image")))]
//! # fn main() {}
//! ```
//!
//! `tests/quickstart.rs` runs these lines on the two fetched photos
//! (Egyptian cat, espresso).
//!
//! # Layers
//!
//! | layer | weight | input → output |
//! | --- | --- | --- |
//! | [`Conv2d`] | `[kh, kw, C_in / groups, C_out]` (HWIO) | `[N, H, W, C_in]` → `[N, OH, OW, C_out]` |
//! | [`DepthwiseConv2d`] | `[kh, kw, C, m]` | `[N, H, W, C]` → `[N, OH, OW, C·m]` (channel `c·m + j`) |
//! | [`PointwiseConv2d`] | `[C_in, C_out]` | `[N, H, W, C_in]` → `[N, H, W, C_out]` |
//! | [`SeparableConv2d`] | depthwise + pointwise | `[N, H, W, C]` → `[N, OH, OW, C_out]` |
//! | [`Dense`] | `[H·W·C, K]` | `[N, H, W, C]` → `[N, 1, 1, K]` |
//! | [`BatchNorm`] | γ, β, mean, variance `[C]` | any NHWC, or folded into a conv |
//! | [`Activation`] | – | any NHWC (convs and dense fuse theirs) |
//! | [`AvgPool2d`], [`MaxPool2d`] | – | `[N, H, W, C]` → `[N, OH, OW, C]` |
//! | [`GlobalAvgPool`], [`Flatten`] | – | `[N, H, W, C]` → `[N, 1, 1, C]`, `[N, 1, 1, H·W·C]` |
//! | [`InvertedResidual`] | expansion, depthwise, projection | `[N, H, W, C]` → `[N, OH, OW, C_out]` (+ x when s = 1, C_out = C) |
//! | [`Sequential`], [`Residual`] | their layers | as the layers chain |
//!
//! Activations are NHWC (`[batch, row, col, channel]`), any [`ndarray::ArrayView4`];
//! biases are `[C_out]`. Every layer implements [`Layer`]: its output shape,
//! cost and scratch from an input shape alone, and a forward into the
//! caller's output with the caller's scratch
//! ([`forward_with_scratch`](Layer::forward_with_scratch), which allocates
//! nothing), with `forward` (new array) and `forward_into` on top. Convs are
//! built through validating builders, choose their kernel once when built,
//! and fuse bias and [`Activation`] into the output pass. [`Padding::Same`]
//! is TensorFlow's asymmetric SAME; PyTorch's `padding=p` is
//! [`Padding::symmetric`]; [`layout`] converts PyTorch tensors.
//!
//! ```
//! use ndarray::Array4;
//! use sepconv::{Activation, DepthwiseConv2d, Padding};
//! let dw = DepthwiseConv2d::builder(Array4::<f32>::ones((3, 3, 16, 1)))
//!     .stride(2)
//!     .padding(Padding::Same)
//!     .activation(Activation::Relu6)
//!     .build()?;
//! let y = dw.forward(Array4::ones((1, 32, 32, 16)).view())?;
//! assert_eq!(y.shape(), &[1, 16, 16, 16]);
//! assert_eq!(dw.cost([1, 32, 32, 16])?.mult_adds, 16 * 16 * 9 * 16);
//! # Ok::<(), sepconv::Error>(())
//! ```
//!
//! # Composing networks
//!
//! A [`Sequential`] holds any layers (a [`Residual`] among them) and checks
//! shapes between them, naming the layer that does not fit
//! ([`Error::Layer`]). It plans its buffers from shapes alone, once per input
//! shape, so every forward after the first allocates nothing but its output.
//! [`Sequential::summary`] prints the per-layer table (type, stride, filter,
//! shapes, mult-adds, parameters) as text, markdown or JSON, and
//! [`init`] draws seeded He or Glorot weights. See [`net`] for an example,
//! and `examples/custom_net.rs`.
//!
//! # Modules
//!
//! - [`mobilenet`]: the MobileNet v1 builder (α, ρ, variants) and the
//!   MobileNetV2 builder ([`mobilenet::v2`], on [`InvertedResidual`]), their
//!   paper-exact [`Summary`](mobilenet::Summary), weights (seeded, safetensors,
//!   TensorFlow frozen graphs) and the inference network, a [`Sequential`].
//! - [`net`]: [`Sequential`], [`Residual`] and [`net::Summary`]; [`layer`]:
//!   the [`Layer`] trait; [`pool`], [`dense`]: the layers around the convs;
//!   [`init`]: seeded initializers.
//! - [`reference`](mod@reference): the naive oracle every fast path is tested against.
//! - [`cost`]: mult-adds and parameters from shapes, in the paper's convention.
//! - [`geometry`]: padding and output sizes, the only place they are computed.
//! - [`pretrained`] (feature `tf`): the pretrained MobileNet v1 and its labels
//!   in one call; [`io`] (feature `tf`): TensorFlow GraphDef import;
//!   [`preprocess`]: TF-slim's ImageNet input pipeline (from `image` crate
//!   images with feature `image`).
//!
//! # Features
//!
//! - `rayon` (default): forward passes split over threads by output rows, with
//!   results identical bit for bit whatever the thread count.
//! - `tf` (default): [`io::tf`], TensorFlow frozen-graph import through prost,
//!   and [`pretrained`] (sha256 through sha2).
//! - `image` (default): [`preprocess::image_input`] and
//!   [`preprocess::image_batch`], the `image` crate's `RgbImage` and
//!   `DynamicImage` to network input.
//! - `serde`: `Serialize`/`Deserialize` on the configurations
//!   ([`mobilenet::MobileNetConfig`], [`Padding`], [`Activation`], …), [`Cost`],
//!   [`Params`] and the summaries ([`net::Summary`], [`mobilenet::Summary`]).
//!
//! # Threads
//!
//! With `rayon`, a forward runs on the rayon pool it is called from: the
//! global pool (one thread per core, or `RAYON_NUM_THREADS`) unless it is
//! called inside [`rayon::ThreadPool::install`]. To choose the thread count
//! for one network, build a pool and run the forward in it; results are the
//! same bit for bit with any count.
//!
//! ```
//! # #[cfg(feature = "rayon")] {
//! use sepconv::mobilenet::{MobileNet, MobileNetConfig};
//! let net = MobileNet::<f32>::seeded(&MobileNetConfig::new().with_alpha(0.25).with_resolution(128), 0)?;
//! let x = ndarray::Array4::<f32>::zeros(net.input_shape(1));
//! let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool of 2 threads");
//! let two = pool.install(|| net.forward(x.view()))?;
//! let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a pool of 1 thread")
//!     .install(|| net.forward(x.view()))?;
//! assert_eq!(one, two);
//! # }
//! # Ok::<(), sepconv::Error>(())
//! ```
//!
//! Build the pool once and keep it: building one starts its threads.
//! `rayon::ThreadPoolBuilder::new().num_threads(n).build_global()` sets the
//! count for the whole program instead. Without `rayon`, forwards run on the
//! calling thread.
//!
//! # Safety
//!
//! `unsafe` is denied at the crate root and allowed only in the private
//! `kernels` module (raw GEMM calls, the AVX2+FMA and AVX-512F kernels, their
//! bodies written once over a vector trait and built in `#[target_feature]`
//! wrappers, and the `TypeId`-checked casts that hand a generic buffer to the
//! f32 kernels), each block with a `SAFETY` comment. CPU features are
//! detected at run time, once; a SIMD kernel takes a token (`Avx2Fma`,
//! `Avx512F`) that only detection makes. See [`Algorithm`] for the paths and
//! how to force one.

pub mod activation;
pub mod conv;
pub mod cost;
pub mod dense;
pub mod error;
pub mod geometry;
pub mod init;
pub mod io;
mod kernels;
pub mod layer;
pub mod layout;
pub mod mobilenet;
pub mod net;
pub mod norm;
mod parallel;
mod plan;
pub mod pool;
pub mod preprocess;
#[cfg(feature = "tf")]
#[cfg_attr(docsrs, doc(cfg(feature = "tf")))]
pub mod pretrained;
pub mod reference;
mod scalar;

pub use activation::Activation;
pub use conv::{
    Algorithm, Conv2d, Conv2dBuilder, ConvBuilder, DepthwiseConv2d, DepthwiseConv2dBuilder,
    PointwiseConv2d, SeparableConv2d, SeparableConv2dBuilder,
};
pub use cost::{Cost, Params};
pub use dense::Dense;
pub use error::{Error, Result, Shape};
pub use geometry::{ConvGeometry, ConvParams, Padding, Size2};
pub use layer::{Layer, LayerInfo, SummaryRow};
pub use net::{InvertedResidual, Residual, Sequential};
pub use norm::BatchNorm;
pub use pool::{AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d};
pub use scalar::Float;

/// The README's examples, run as doc tests with the default features (the
/// README's quick start uses `pretrained` and `image`).
#[cfg(all(doctest, feature = "tf", feature = "image", feature = "rayon"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
