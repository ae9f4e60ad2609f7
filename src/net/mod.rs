//! Networks composed of layers: [`Sequential`], [`Residual`],
//! [`InvertedResidual`] (MobileNetV2's block), and the
//! per-layer [`Summary`] of any of them.
//!
//! Any [`Layer`](crate::Layer) goes into a [`Sequential`]; a [`Residual`]
//! wraps a `Sequential` body with an identity or projected shortcut, and is
//! itself a layer. The containers check shapes layer by layer, plan their
//! buffers from shapes alone, and allocate nothing after the first forward
//! but the output.
//!
//! ```
//! use ndarray::{Array2, Array4};
//! use sepconv::init::{Init, SplitMix64};
//! use sepconv::net::{Residual, Sequential};
//! use sepconv::pool::GlobalAvgPool;
//! use sepconv::{Activation, DepthwiseConv2d, Layer, Padding, PointwiseConv2d};
//! let mut rng = SplitMix64::new(7);
//! let block = Sequential::new()
//!     .with(DepthwiseConv2d::builder(Init::HeNormal.depthwise([3, 3, 8, 1], &mut rng)?)
//!         .padding(Padding::Same)
//!         .activation(Activation::Relu6)
//!         .build()?)
//!     .with(PointwiseConv2d::new(Init::HeNormal.dense([8, 8], &mut rng)?, None)?);
//! let net = Sequential::<f32>::new()
//!     .with_named("block", Residual::new(block))
//!     .with_named("pool", GlobalAvgPool);
//! let summary = net.summary([1, 16, 16, 8])?;
//! assert_eq!(summary.total.mult_adds, 16 * 16 * (9 * 8 + 8 * 8));
//! assert_eq!(net.forward(Array4::ones((2, 16, 16, 8)).view())?.shape(), &[2, 1, 1, 8]);
//! # Ok::<(), sepconv::Error>(())
//! ```

mod band;
mod inverted;
mod residual;
mod sequential;
pub(crate) mod summary;

pub use inverted::InvertedResidual;
pub use residual::Residual;
pub use sequential::Sequential;
pub use summary::Summary;
