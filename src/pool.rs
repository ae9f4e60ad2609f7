//! Pooling and flattening: the layers around the convolutions.
//!
//! | layer | settings | input → output |
//! | --- | --- | --- |
//! | [`GlobalAvgPool`] | none | `[N, H, W, C]` → `[N, 1, 1, C]` |
//! | [`AvgPool2d`] | kernel, stride, padding, count_padding | `[N, H, W, C]` → `[N, OH, OW, C]` |
//! | [`MaxPool2d`] | kernel, stride, padding | `[N, H, W, C]` → `[N, OH, OW, C]` |
//! | [`Flatten`] | none | `[N, H, W, C]` → `[N, 1, 1, H·W·C]` |
//!
//! Output sizes come from [`ConvParams::resolve`] with dilation 1, as for a
//! convolution with the same kernel, stride and padding (so `Padding::Same` is
//! TensorFlow's asymmetric SAME). The stride defaults to the kernel, as in
//! Keras and PyTorch. Padding never enters a result as a value: average
//! pooling divides by the number of input elements in the window (TensorFlow)
//! unless [`AvgPool2d::with_count_padding`] asks for the full window
//! (PyTorch's `count_include_pad`), and max pooling skips it. Padding on a
//! side must be smaller than the kernel on that axis, so that every window
//! holds at least one input element.
//!
//! Pooling has no weights and, in the paper's convention, no mult-adds: its
//! [`Cost`] is zero. None of these layers needs scratch, and their forwards
//! allocate nothing.
//!
//! ```
//! use ndarray::Array4;
//! use sepconv::{Layer, Padding};
//! use sepconv::pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};
//! let x = Array4::from_shape_fn((1, 4, 4, 1), |(_, y, x, _)| (4 * y + x) as f32);
//! let max = MaxPool2d::new(2).forward(x.view())?;
//! assert_eq!(max.into_raw_vec_and_offset().0, [5.0, 7.0, 13.0, 15.0]);
//! let avg = AvgPool2d::new(3).with_stride(1).with_padding(Padding::Same);
//! assert_eq!(avg.output_shape([1, 4, 4, 1])?, [1, 4, 4, 1]);
//! assert_eq!(GlobalAvgPool.forward(x.view())?[[0, 0, 0, 0]], 7.5);
//! # Ok::<(), sepconv::Error>(())
//! ```

use ndarray::{ArrayView4, ArrayViewMut4, s};

use crate::Float;
use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::geometry::{ConvGeometry, ConvParams, Padding, Size2};
use crate::layer::{Layer, LayerInfo, check_scratch, checked_len};

/// The names a layer's errors carry (`Error::param` takes `&'static str`).
struct Names {
    layer: &'static str,
    input: &'static str,
    output: &'static str,
    kernel: &'static str,
    stride: &'static str,
    padding: &'static str,
}

const GLOBAL_AVG: Names = Names {
    layer: "GlobalAvgPool",
    input: "GlobalAvgPool input",
    output: "GlobalAvgPool output",
    kernel: "",
    stride: "",
    padding: "",
};
const AVG: Names = Names {
    layer: "AvgPool2d",
    input: "AvgPool2d input",
    output: "AvgPool2d output",
    kernel: "AvgPool2d kernel",
    stride: "AvgPool2d stride",
    padding: "AvgPool2d padding",
};
const MAX: Names = Names {
    layer: "MaxPool2d",
    input: "MaxPool2d input",
    output: "MaxPool2d output",
    kernel: "MaxPool2d kernel",
    stride: "MaxPool2d stride",
    padding: "MaxPool2d padding",
};
const FLATTEN: Names = Names {
    layer: "Flatten",
    input: "Flatten input",
    output: "Flatten output",
    kernel: "",
    stride: "",
    padding: "",
};

/// [`Error::ZeroSize`] for an input with a zero-sized axis.
fn check_nonempty(names: &Names, input: [usize; 4]) -> Result<()> {
    if input.contains(&0) {
        return Err(Error::ZeroSize {
            what: names.input.into(),
            shape: input.into(),
        });
    }
    Ok(())
}

/// Validates a forward's buffers against the output shape for `x`; returns it.
fn check_forward<F: Float, L: Layer<F>>(
    layer: &L,
    names: &Names,
    x: &ArrayView4<'_, F>,
    out: &ArrayViewMut4<'_, F>,
    scratch: &[F],
) -> Result<[usize; 4]> {
    let input = crate::conv::dims4(x.shape());
    let shape = layer.output_shape(input)?;
    if out.shape() != shape {
        return Err(Error::shape(names.output, &shape, out.shape()));
    }
    check_scratch(names.layer, scratch.len(), layer.scratch_len(input)?)?;
    Ok(shape)
}

/// The window settings both 2-D poolings share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: Padding,
}

impl Window {
    fn new(kernel: [usize; 2]) -> Self {
        Window {
            kernel,
            stride: kernel,
            padding: Padding::Valid,
        }
    }

    /// Validates the settings and resolves the geometry for `input`.
    fn geometry(&self, names: &Names, input: [usize; 4]) -> Result<ConvGeometry> {
        let [kh, kw] = self.kernel;
        if kh == 0 || kw == 0 {
            return Err(Error::param(
                names.kernel,
                format!("[{kh}, {kw}]"),
                "must be ≥ 1 on both axes",
            ));
        }
        let [sh, sw] = self.stride;
        if sh == 0 || sw == 0 {
            return Err(Error::param(
                names.stride,
                format!("[{sh}, {sw}]"),
                "must be ≥ 1 on both axes",
            ));
        }
        if let Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } = self.padding
        {
            for (side, pad, axis, k) in [
                ("top", top, "height", kh),
                ("bottom", bottom, "height", kh),
                ("left", left, "width", kw),
                ("right", right, "width", kw),
            ] {
                if pad >= k {
                    return Err(Error::param(
                        names.padding,
                        format!("{side} = {pad}"),
                        format!(
                            "must be smaller than the kernel {axis} {k}, so that every window \
                             holds an input element"
                        ),
                    ));
                }
            }
        }
        check_nonempty(names, input)?;
        let g = ConvParams {
            stride: self.stride,
            dilation: [1, 1],
            padding: self.padding,
        }
        .resolve([input[1], input[2]], self.kernel)?;
        // TensorFlow SAME pads at most k − 1 on a side; the check above covers
        // explicit padding, so every window holds an input element.
        debug_assert!(g.h.pad_before.max(g.h.pad_after) < kh);
        debug_assert!(g.w.pad_before.max(g.w.pad_after) < kw);
        Ok(g)
    }

    fn output_shape(&self, names: &Names, input: [usize; 4]) -> Result<[usize; 4]> {
        let g = self.geometry(names, input)?;
        Ok([input[0], g.h.output, g.w.output, input[3]])
    }

    /// Each output pixel's channel vector: `init`, then `step` with every
    /// input pixel of its window that lies inside the input, in (row, column)
    /// tap order, then `finish` with the number of those pixels.
    fn pool<F: Float>(
        &self,
        g: &ConvGeometry,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        init: F,
        mut step: impl FnMut(&mut ndarray::ArrayViewMut1<'_, F>, ndarray::ArrayView1<'_, F>),
        mut finish: impl FnMut(&mut ndarray::ArrayViewMut1<'_, F>, usize),
    ) {
        let [kh, kw] = self.kernel;
        for (image, mut out_image) in x.outer_iter().zip(out.outer_iter_mut()) {
            for oy in 0..g.h.output {
                for ox in 0..g.w.output {
                    let mut o = out_image.slice_mut(s![oy, ox, ..]);
                    o.fill(init);
                    let mut taps = 0;
                    for iy in (0..kh).filter_map(|ky| g.h.input_index(oy, ky)) {
                        for ix in (0..kw).filter_map(|kx| g.w.input_index(ox, kx)) {
                            step(&mut o, image.slice(s![iy, ix, ..]));
                            taps += 1;
                        }
                    }
                    finish(&mut o, taps);
                }
            }
        }
    }

    fn info(&self, kind: &'static str) -> LayerInfo {
        let [kh, kw] = self.kernel;
        LayerInfo::new(kind)
            .with_stride(self.stride)
            .with_filter(format!("pool {kh}×{kw}"))
    }
}

/// Global average pooling: the mean over rows and columns of each channel.
///
/// Each output channel is computed as a sum from zero over the pixels in
/// row-major order (row by row, column by column), divided once by `H·W`
/// (exactly the arithmetic of MobileNet's final pooling, so logits stay bit
/// for bit the same).
///
/// # Shapes
/// input `[N, H, W, C]` (any layout), output `[N, 1, 1, C]` (any layout).
///
/// # Errors
/// [`Error::ZeroSize`] for an input with a zero-sized axis;
/// [`Error::ShapeMismatch`] for a wrong `out` (left untouched).
///
/// ```
/// use ndarray::Array4;
/// use sepconv::Layer;
/// use sepconv::pool::GlobalAvgPool;
/// let x = Array4::from_shape_fn((2, 2, 3, 2), |(n, y, x, c)| (n + y + x + 10 * c) as f64);
/// let y = GlobalAvgPool.forward(x.view())?;
/// assert_eq!(y.shape(), &[2, 1, 1, 2]);
/// assert_eq!(y[[0, 0, 0, 0]], 1.5); // mean of 0, 1, 2, 1, 2, 3
/// assert_eq!(y[[1, 0, 0, 1]], 12.5);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GlobalAvgPool;

impl GlobalAvgPool {
    /// The output shape `[N, 1, 1, C]` for an input `[N, H, W, C]` (the
    /// same as [`Layer::output_shape`], without naming the element type).
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an input with a zero-sized axis.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_nonempty(&GLOBAL_AVG, input)?;
        Ok([input[0], 1, 1, input[3]])
    }
}

impl<F: Float> Layer<F> for GlobalAvgPool {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        GlobalAvgPool::output_shape(self, input)
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        Layer::<F>::output_shape(self, input).map(|_| Cost::default())
    }

    fn info(&self) -> LayerInfo {
        LayerInfo::new("GlobalAvgPool")
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        check_forward(self, &GLOBAL_AVG, &x, &out, scratch)?;
        let (_, h, w, _) = x.dim();
        let count = F::from_f64_lossy((h * w) as f64);
        for (image, mut o) in x.outer_iter().zip(out.outer_iter_mut()) {
            let mut o = o.slice_mut(s![0, 0, ..]);
            o.fill(F::zero());
            for row in image.outer_iter() {
                for px in row.outer_iter() {
                    o += &px;
                }
            }
            o.mapv_inplace(|v| v / count);
        }
        Ok(())
    }
}

/// Average pooling over `kernel` windows moved by `stride`.
///
/// `out[n, oy, ox, c] = Σ x[n, iy, ix, c] / count` over the window's taps
/// inside the input, summed from zero in (row, column) tap order, where
/// `count` is the number of those taps (TensorFlow, the default) or the whole
/// window `kh·kw` with [`with_count_padding(true)`](Self::with_count_padding)
/// (PyTorch's `count_include_pad`; padding then counts as zeros).
///
/// Settings and defaults: stride = the kernel, [`Padding::Valid`],
/// count_padding `false`. They are validated when the layer meets an input
/// shape (every [`Layer`] method).
///
/// # Shapes
/// input `[N, H, W, C]` (any layout), output `[N, OH, OW, C]` (any layout),
/// with `OH, OW` as for a convolution with this kernel, stride and padding.
///
/// # Errors
/// - [`Error::InvalidParameter`] for a zero kernel or stride, or an explicit
///   padding on a side that is not smaller than the kernel on that axis;
/// - [`Error::ZeroSize`] for an input with a zero-sized axis;
/// - [`Error::KernelTooLarge`] for a window larger than the padded input;
/// - [`Error::ShapeMismatch`] for a wrong `out` (left untouched).
///
/// ```
/// use ndarray::Array4;
/// use sepconv::{Layer, Padding};
/// use sepconv::pool::AvgPool2d;
/// let x = Array4::from_shape_vec((1, 1, 3, 1), vec![1.0_f32, 2.0, 6.0]).unwrap();
/// // A 1×2 window, stride 1, SAME: the last window holds only the 6.
/// let tf = AvgPool2d::new([1, 2]).with_stride(1).with_padding(Padding::Same);
/// assert_eq!(tf.forward(x.view())?.into_raw_vec_and_offset().0, [1.5, 4.0, 6.0]);
/// // PyTorch's count_include_pad divides it by 2.
/// let pt = tf.with_count_padding(true);
/// assert_eq!(pt.forward(x.view())?.into_raw_vec_and_offset().0, [1.5, 4.0, 3.0]);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AvgPool2d {
    window: Window,
    count_padding: bool,
}

impl AvgPool2d {
    /// Average pooling with windows of `kernel` (`k` or `[kh, kw]`), stride =
    /// the kernel, no padding.
    pub fn new(kernel: impl Size2) -> Self {
        AvgPool2d {
            window: Window::new(kernel.hw()),
            count_padding: false,
        }
    }
    /// Sets the stride, `s` or `[sh, sw]` (default: the kernel).
    pub fn with_stride(mut self, stride: impl Size2) -> Self {
        self.window.stride = stride.hw();
        self
    }
    /// Sets the padding (default [`Padding::Valid`]).
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.window.padding = padding;
        self
    }
    /// Whether padding counts in the divisor (default `false`, TensorFlow;
    /// `true` is PyTorch's `count_include_pad`).
    pub fn with_count_padding(mut self, count_padding: bool) -> Self {
        self.count_padding = count_padding;
        self
    }
    /// The output shape `[N, OH, OW, C]` for an input `[N, H, W, C]` (the
    /// same as [`Layer::output_shape`], without naming the element type).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`], [`Error::ZeroSize`] or
    /// [`Error::KernelTooLarge`], as in the type's `# Errors`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.window.output_shape(&AVG, input)
    }
    /// The window `[kh, kw]`.
    pub fn kernel(&self) -> [usize; 2] {
        self.window.kernel
    }
    /// The stride `[sh, sw]`.
    pub fn stride(&self) -> [usize; 2] {
        self.window.stride
    }
    /// The padding.
    pub fn padding(&self) -> Padding {
        self.window.padding
    }
    /// Whether padding counts in the divisor.
    pub fn count_padding(&self) -> bool {
        self.count_padding
    }
}

impl<F: Float> Layer<F> for AvgPool2d {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        AvgPool2d::output_shape(self, input)
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        Layer::<F>::output_shape(self, input).map(|_| Cost::default())
    }

    fn info(&self) -> LayerInfo {
        self.window.info("AvgPool2d")
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        check_forward(self, &AVG, &x, &out, scratch)?;
        let g = self.window.geometry(&AVG, crate::conv::dims4(x.shape()))?;
        let whole = self.window.kernel[0] * self.window.kernel[1];
        self.window.pool(
            &g,
            x,
            out.view_mut(),
            F::zero(),
            |o, px| *o += &px,
            |o, taps| {
                let count = F::from_f64_lossy(if self.count_padding { whole } else { taps } as f64);
                o.mapv_inplace(|v| v / count);
            },
        );
        Ok(())
    }
}

/// Max pooling over `kernel` windows moved by `stride`.
///
/// `out[n, oy, ox, c]` is the largest of the window's taps inside the input
/// (padding is skipped, as if it held −∞). **NaN propagates**: if any element
/// of a window is NaN, that output is NaN (as `torch.nn.MaxPool2d` and
/// `tf.nn.max_pool` do). Among equal values (`0.0` and `-0.0`) the first in
/// (row, column) tap order is kept.
///
/// Settings and defaults: stride = the kernel, [`Padding::Valid`]; validated
/// when the layer meets an input shape (every [`Layer`] method).
///
/// # Shapes
/// input `[N, H, W, C]` (any layout), output `[N, OH, OW, C]` (any layout),
/// with `OH, OW` as for a convolution with this kernel, stride and padding.
///
/// # Errors
/// As [`AvgPool2d`]: [`Error::InvalidParameter`] (zero kernel or stride,
/// padding not smaller than the kernel), [`Error::ZeroSize`],
/// [`Error::KernelTooLarge`], [`Error::ShapeMismatch`] for a wrong `out`
/// (left untouched).
///
/// ```
/// use ndarray::Array4;
/// use sepconv::{Layer, Padding};
/// use sepconv::pool::MaxPool2d;
/// let x = Array4::from_shape_vec((1, 1, 4, 1), vec![-3.0_f32, -1.0, f32::NAN, 2.0]).unwrap();
/// // 3-wide windows, stride 2, SAME (pads 0 left, 1 right): [-3, -1, NaN] and [NaN, 2, pad].
/// let pool = MaxPool2d::new([1, 3]).with_stride([1, 2]).with_padding(Padding::Same);
/// let y = pool.forward(x.view())?;
/// assert!(y[[0, 0, 0, 0]].is_nan() && y[[0, 0, 1, 0]].is_nan());
/// let y = MaxPool2d::new([1, 2]).forward(x.view())?;
/// assert_eq!(y[[0, 0, 0, 0]], -1.0);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxPool2d {
    window: Window,
}

impl MaxPool2d {
    /// Max pooling with windows of `kernel` (`k` or `[kh, kw]`), stride =
    /// the kernel, no padding.
    pub fn new(kernel: impl Size2) -> Self {
        MaxPool2d {
            window: Window::new(kernel.hw()),
        }
    }
    /// Sets the stride, `s` or `[sh, sw]` (default: the kernel).
    pub fn with_stride(mut self, stride: impl Size2) -> Self {
        self.window.stride = stride.hw();
        self
    }
    /// Sets the padding (default [`Padding::Valid`]).
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.window.padding = padding;
        self
    }
    /// The output shape `[N, OH, OW, C]` for an input `[N, H, W, C]` (the
    /// same as [`Layer::output_shape`], without naming the element type).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`], [`Error::ZeroSize`] or
    /// [`Error::KernelTooLarge`], as in the type's `# Errors`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.window.output_shape(&MAX, input)
    }
    /// The window `[kh, kw]`.
    pub fn kernel(&self) -> [usize; 2] {
        self.window.kernel
    }
    /// The stride `[sh, sw]`.
    pub fn stride(&self) -> [usize; 2] {
        self.window.stride
    }
    /// The padding.
    pub fn padding(&self) -> Padding {
        self.window.padding
    }
}

/// The max-pooling step: `acc` becomes `v` if `v` is larger or NaN; a NaN
/// `acc` stays NaN (no `v` is larger than it).
#[inline]
fn max_step<F: Float>(acc: &mut F, v: F) {
    if v > *acc || v.is_nan() {
        *acc = v;
    }
}

impl<F: Float> Layer<F> for MaxPool2d {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        MaxPool2d::output_shape(self, input)
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        Layer::<F>::output_shape(self, input).map(|_| Cost::default())
    }

    fn info(&self) -> LayerInfo {
        self.window.info("MaxPool2d")
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        check_forward(self, &MAX, &x, &out, scratch)?;
        let g = self.window.geometry(&MAX, crate::conv::dims4(x.shape()))?;
        self.window.pool(
            &g,
            x,
            out.view_mut(),
            F::neg_infinity(),
            |o, px| o.zip_mut_with(&px, |a, &v| max_step(a, v)),
            |_, _| {},
        );
        Ok(())
    }
}

/// Flattens each image to one vector: `[N, H, W, C]` → `[N, 1, 1, H·W·C]`,
/// in NHWC order (element `(y·W + x)·C + c` is `x[n, y, x, c]`), as Keras'
/// `Flatten` on channels-last data.
///
/// # Shapes
/// input `[N, H, W, C]` (any layout), output `[N, 1, 1, H·W·C]` (any layout).
///
/// # Errors
/// [`Error::ZeroSize`] for an input with a zero-sized axis,
/// [`Error::Overflow`] when `H·W·C` overflows, [`Error::ShapeMismatch`] for a
/// wrong `out` (left untouched).
///
/// ```
/// use ndarray::Array4;
/// use sepconv::Layer;
/// use sepconv::pool::Flatten;
/// let x = Array4::from_shape_fn((1, 2, 2, 2), |(_, y, x, c)| (100 * y + 10 * x + c) as f32);
/// let y = Flatten.forward(x.view())?;
/// assert_eq!(y.shape(), &[1, 1, 1, 8]);
/// assert_eq!(y.into_raw_vec_and_offset().0, [0.0, 1.0, 10.0, 11.0, 100.0, 101.0, 110.0, 111.0]);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flatten;

impl Flatten {
    /// The output shape `[N, 1, 1, H·W·C]` for an input `[N, H, W, C]` (the
    /// same as [`Layer::output_shape`], without naming the element type).
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an input with a zero-sized axis,
    /// [`Error::Overflow`] when `H·W·C` overflows.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_nonempty(&FLATTEN, input)?;
        let features = checked_len("Flatten output features", &input[1..])?;
        Ok([input[0], 1, 1, features])
    }
}

impl<F: Float> Layer<F> for Flatten {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        Flatten::output_shape(self, input)
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        Layer::<F>::output_shape(self, input).map(|_| Cost::default())
    }

    fn info(&self) -> LayerInfo {
        LayerInfo::new("Flatten")
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        check_forward(self, &FLATTEN, &x, &out, scratch)?;
        for (image, mut o) in x.outer_iter().zip(out.outer_iter_mut()) {
            // `iter` walks the image in logical (row-major) order whatever its strides.
            for (o, &v) in o.slice_mut(s![0, 0, ..]).iter_mut().zip(image.iter()) {
                *o = v;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn infos() {
        let a = AvgPool2d::new([3, 2]).with_stride(1);
        let info = Layer::<f32>::info(&a);
        assert_eq!(info.kind, "AvgPool2d");
        assert_eq!(info.stride, Some([1, 1]));
        assert_eq!(info.filter.as_deref(), Some("pool 3×2"));
        assert_eq!(Layer::<f32>::info(&MaxPool2d::new(2)).stride, Some([2, 2]));
        assert_eq!(Layer::<f64>::info(&GlobalAvgPool).kind, "GlobalAvgPool");
        assert_eq!(Layer::<f64>::info(&Flatten).kind, "Flatten");
    }

    #[test]
    fn zero_cost_and_no_scratch() {
        let s = [2, 7, 7, 5];
        assert_eq!(
            Layer::<f32>::cost(&MaxPool2d::new(3), s).unwrap(),
            Cost::default()
        );
        assert_eq!(Layer::<f32>::scratch_len(&AvgPool2d::new(3), s).unwrap(), 0);
        assert_eq!(
            Layer::<f32>::output_shape(&Flatten, s).unwrap(),
            [2, 1, 1, 245]
        );
    }

    #[test]
    fn same_never_pads_a_whole_kernel() {
        for input in 1..12 {
            for k in 1..6 {
                for st in 1..7 {
                    let p = AvgPool2d::new(k)
                        .with_stride(st)
                        .with_padding(Padding::Same);
                    if let Ok(g) = p.window.geometry(&AVG, [1, input, input, 1]) {
                        assert!(g.h.pad_before < k && g.h.pad_after < k);
                    }
                }
            }
        }
    }

    #[test]
    fn global_pool_matches_the_mobilenet_arithmetic() {
        // A sum that depends on the order in f32: row-major from zero, one division.
        let x = Array4::from_shape_fn((1, 3, 3, 1), |(_, y, x, _)| {
            [1e8_f32, 1.0, -1e8, 3.0, 0.1, 0.7, 1e-3, 5.0, 2.0][3 * y + x]
        });
        let mut want = 0.0_f32;
        for v in x.iter() {
            want += *v;
        }
        want /= 9.0;
        let y = Layer::<f32>::forward(&GlobalAvgPool, x.view()).unwrap();
        assert_eq!(y[[0, 0, 0, 0]].to_bits(), want.to_bits());
    }
}
