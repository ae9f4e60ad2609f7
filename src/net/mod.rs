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

/// `out = act(out + x)` element by element: a residual sum (`out` and `x`
/// of one shape). Split over threads by pixels when both maps are in
/// standard layout and large enough to pay for a parallel section, so that
/// inside a forward each core adds mostly the rows it wrote in the conv
/// before (the GEMM's row chunks go front to back on the forward's thread,
/// back to front on the other); else one pass on this thread. Every element
/// gets the same two operations either way, so the bits do not depend on
/// the threads.
pub(crate) fn add_residual<F: crate::Float>(
    mut out: ndarray::ArrayViewMut4<'_, F>,
    x: ndarray::ArrayView4<'_, F>,
    act: crate::Activation,
) {
    use ndarray::{Zip, s};
    /// Elements a chunk at least: a parallel section costs a few µs, about
    /// what one core takes to add this many.
    const MIN_CHUNK: usize = 16 * 1024;
    let add = |o: &mut F, &x: &F| *o = act.apply(*o + x);
    let (n, h, w, c) = out.dim();
    let pixels = n * h * w;
    let split = crate::parallel::threads() > 1
        && pixels * c >= 2 * MIN_CHUNK
        && out.is_standard_layout()
        && x.is_standard_layout();
    if !split {
        Zip::from(&mut out).and(&x).for_each(add);
        return;
    }
    let out = out
        .into_shape_with_order((pixels, c))
        .expect("standard layout");
    let x = x
        .into_shape_with_order((pixels, c))
        .expect("standard layout");
    let chunk = crate::parallel::chunk_rows(pixels, 1, 1).max(MIN_CHUNK.div_ceil(c));
    crate::parallel::for_each_row_chunk(out, chunk, |p0, mut part| {
        let rows = part.nrows();
        Zip::from(&mut part)
            .and(x.slice(s![p0..p0 + rows, ..]))
            .for_each(add);
    });
}

pub use inverted::InvertedResidual;
pub use residual::Residual;
pub use sequential::Sequential;
pub use summary::Summary;
