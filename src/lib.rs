#![deny(unsafe_code)]
#![warn(missing_docs)]
//! Depthwise-separable convolution on ndarray, the layers to compose
//! networks of it, and a paper-exact MobileNet v1.
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
//! - [`mobilenet`]: the MobileNet v1 builder (α, ρ, variants), its paper-exact
//!   [`Summary`](mobilenet::Summary), weights (seeded, safetensors, TensorFlow
//!   frozen graphs) and the inference network, a [`Sequential`].
//! - [`net`]: [`Sequential`], [`Residual`] and [`net::Summary`]; [`layer`]:
//!   the [`Layer`] trait; [`pool`], [`dense`]: the layers around the convs;
//!   [`init`]: seeded initializers.
//! - [`reference`](mod@reference): the naive oracle every fast path is tested against.
//! - [`cost`]: mult-adds and parameters from shapes, in the paper's convention.
//! - [`geometry`]: padding and output sizes, the only place they are computed.
//! - [`io`] (feature `tf`): TensorFlow GraphDef import; [`preprocess`]:
//!   TF-slim's ImageNet input pipeline.
//!
//! # Features
//!
//! - `rayon` (default): forward passes split over threads by output rows, with
//!   results identical bit for bit whatever the thread count.
//! - `tf` (default): [`io::tf`], TensorFlow frozen-graph import through prost.
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
pub use net::{Residual, Sequential};
pub use norm::BatchNorm;
pub use pool::{AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d};
pub use scalar::Float;

/// The README's examples, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
