//! Padding and the resolved geometry of a 2-D convolution.
//!
//! This is the only place in the crate that computes output sizes and padding
//! amounts; every layer, the oracle and the cost model call [`ConvGeometry::new`].
//! All arithmetic is checked: absurd sizes give [`Error::Overflow`], not a wrap.
//!
//! ```
//! use sepconv::{ConvGeometry, Padding};
//! // 3×3, stride 1, PyTorch's padding=1 keeps 7×7.
//! let g = ConvGeometry::new([7, 7], [3, 3], [1, 1], [1, 1], Padding::symmetric(1))?;
//! assert_eq!(g.output(), [7, 7]);
//! assert!(ConvGeometry::new([2, 2], [3, 3], [1, 1], [1, 1], Padding::Valid).is_err());
//! # Ok::<(), sepconv::Error>(())
//! ```

use crate::error::{Error, Result};

/// How a convolution pads its input.
///
/// | variant | output size (one axis) | padding |
/// | --- | --- | --- |
/// | `Valid` | ⌊(in − k_eff) / s⌋ + 1 | none |
/// | `Same` | ⌈in / s⌉ | TensorFlow SAME: `total = max((out − 1)·s + k_eff − in, 0)`, `before = ⌊total / 2⌋`, `after = total − before` |
/// | `Explicit` | ⌊(in + before + after − k_eff) / s⌋ + 1 | as given |
///
/// with `k_eff = (k − 1)·dilation + 1`. TensorFlow SAME is asymmetric: a 3×3
/// stride-2 conv on an even input pads 0 before and 1 after, where PyTorch's
/// `padding=1` pads 1 and 1 (same output size, different numbers). PyTorch's
/// symmetric padding is `Padding::Explicit` with equal sides
/// ([`Padding::symmetric`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Padding {
    /// No padding; windows that would leave the input are dropped.
    #[default]
    Valid,
    /// TensorFlow SAME padding (asymmetric, the extra pixel after).
    Same,
    /// Explicit zero padding on each side.
    Explicit {
        /// Rows added above.
        top: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
    },
}

impl Padding {
    /// `p` pixels on every side (PyTorch's `padding=p`).
    pub const fn symmetric(p: usize) -> Self {
        Padding::Explicit {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }
}

/// One axis of a resolved convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AxisGeometry {
    /// Input size.
    pub input: usize,
    /// Kernel size (undilated).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Zero padding before the first input pixel.
    pub pad_before: usize,
    /// Zero padding after the last input pixel.
    pub pad_after: usize,
    /// Output size.
    pub output: usize,
}

impl AxisGeometry {
    fn new(
        axis: &'static str,
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pad: Option<(usize, usize)>,
    ) -> Result<Self> {
        debug_assert!(input > 0 && kernel > 0 && stride > 0 && dilation > 0);
        let extent = (kernel - 1)
            .checked_mul(dilation)
            .and_then(|e| e.checked_add(1))
            .ok_or(Error::Overflow("dilated kernel extent"))?;
        let (pad_before, pad_after) = match pad {
            Some(p) => p,
            None => {
                // TensorFlow SAME: out = ceil(in / s); the padding makes that fit.
                let out = input.div_ceil(stride);
                let needed = (out - 1)
                    .checked_mul(stride)
                    .and_then(|v| v.checked_add(extent))
                    .ok_or(Error::Overflow("SAME padding"))?;
                let total = needed.saturating_sub(input);
                (total / 2, total - total / 2)
            }
        };
        let padded = input
            .checked_add(pad_before)
            .and_then(|v| v.checked_add(pad_after))
            .ok_or(Error::Overflow("padded input size"))?;
        if extent > padded {
            return Err(Error::KernelTooLarge {
                axis,
                kernel_extent: extent,
                padded_input: padded,
            });
        }
        Ok(AxisGeometry {
            input,
            kernel,
            stride,
            dilation,
            pad_before,
            pad_after,
            output: (padded - extent) / stride + 1,
        })
    }

    /// The span of the dilated kernel, `(k − 1)·dilation + 1`.
    pub fn extent(&self) -> usize {
        (self.kernel - 1) * self.dilation + 1
    }

    /// Input index read by output `o` at tap `t`, or `None` if it falls in
    /// the padding.
    #[inline]
    pub fn input_index(&self, o: usize, t: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation)
            .checked_sub(self.pad_before)
            .filter(|&i| i < self.input)
    }

    /// The outputs `lo..hi` whose tap `t` reads inside the input (no padding).
    ///
    /// This is what splits the interior from the border: within the range a
    /// kernel needs no bounds checks for that tap.
    pub fn valid_outputs(&self, t: usize) -> std::ops::Range<usize> {
        let offset = t * self.dilation; // input index + pad_before of output 0
        // o·s + offset ≥ pad_before  ⇔  o ≥ ceil((pad_before − offset) / s)
        let lo = self.pad_before.saturating_sub(offset).div_ceil(self.stride);
        // o·s + offset − pad_before ≤ input − 1  ⇔  o ≤ (input − 1 + pad_before − offset) / s
        let hi = match (self.input - 1 + self.pad_before).checked_sub(offset) {
            Some(v) => (v / self.stride + 1).min(self.output),
            None => 0,
        };
        lo..hi.max(lo)
    }
}

/// The resolved geometry of a 2-D convolution: sizes, padding, output size.
///
/// ```
/// use sepconv::{ConvGeometry, Padding};
/// // 3×3 stride-2 TensorFlow SAME on 224×224: pads 0 above/left, 1 below/right.
/// let g = ConvGeometry::new([224, 224], [3, 3], [2, 2], [1, 1], Padding::Same)?;
/// assert_eq!(g.output(), [112, 112]);
/// assert_eq!((g.h.pad_before, g.h.pad_after), (0, 1));
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// The vertical axis.
    pub h: AxisGeometry,
    /// The horizontal axis.
    pub w: AxisGeometry,
}

impl ConvGeometry {
    /// Resolves a convolution of a `input` = [H, W] image with a `kernel` =
    /// [kh, kw] filter.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for a zero input or kernel size,
    /// [`Error::InvalidStride`] / [`Error::InvalidDilation`] for zeros,
    /// [`Error::KernelTooLarge`] when the dilated kernel exceeds the padded
    /// input, [`Error::Overflow`] for sizes that overflow `usize`.
    pub fn new(
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        padding: Padding,
    ) -> Result<Self> {
        if input.contains(&0) {
            return Err(Error::ZeroSize {
                what: "input spatial size".into(),
                shape: input.into(),
            });
        }
        if kernel.contains(&0) {
            return Err(Error::ZeroSize {
                what: "kernel".into(),
                shape: kernel.into(),
            });
        }
        if stride.contains(&0) {
            return Err(Error::InvalidStride(stride));
        }
        if dilation.contains(&0) {
            return Err(Error::InvalidDilation(dilation));
        }
        let (ph, pw) = match padding {
            Padding::Valid => (Some((0, 0)), Some((0, 0))),
            Padding::Same => (None, None),
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => (Some((top, bottom)), Some((left, right))),
        };
        Ok(ConvGeometry {
            h: AxisGeometry::new("height", input[0], kernel[0], stride[0], dilation[0], ph)?,
            w: AxisGeometry::new("width", input[1], kernel[1], stride[1], dilation[1], pw)?,
        })
    }

    /// Output size [OH, OW].
    pub fn output(&self) -> [usize; 2] {
        [self.h.output, self.w.output]
    }

    /// Number of output pixels, OH·OW.
    pub fn output_pixels(&self) -> usize {
        self.h.output * self.w.output
    }
}

/// Stride, dilation and padding of a convolution: the settings every conv
/// layer shares. `Default` is stride 1, dilation 1, `Valid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConvParams {
    /// Stride [h, w].
    pub stride: [usize; 2],
    /// Dilation [h, w].
    pub dilation: [usize; 2],
    /// Padding.
    pub padding: Padding,
}

impl Default for ConvParams {
    fn default() -> Self {
        ConvParams {
            stride: [1, 1],
            dilation: [1, 1],
            padding: Padding::Valid,
        }
    }
}

impl ConvParams {
    /// Resolves the geometry for an input of [H, W] and a kernel [kh, kw].
    ///
    /// # Errors
    /// As [`ConvGeometry::new`].
    pub fn resolve(&self, input: [usize; 2], kernel: [usize; 2]) -> Result<ConvGeometry> {
        ConvGeometry::new(input, kernel, self.stride, self.dilation, self.padding)
    }
}

/// A size for both axes: `2` means `[2, 2]`; `[2, 1]` and `(2, 1)` are [h, w].
pub trait Size2 {
    /// As `[h, w]`.
    fn hw(self) -> [usize; 2];
}

impl Size2 for usize {
    fn hw(self) -> [usize; 2] {
        [self, self]
    }
}

impl Size2 for [usize; 2] {
    fn hw(self) -> [usize; 2] {
        self
    }
}

impl Size2 for (usize, usize) {
    fn hw(self) -> [usize; 2] {
        [self.0, self.1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(input: usize, k: usize, s: usize, d: usize, p: Padding) -> AxisGeometry {
        ConvGeometry::new([input, 1], [k, 1], [s, 1], [d, 1], p)
            .unwrap()
            .h
    }

    #[test]
    fn same_padding_is_tensorflows() {
        // 3×3 s2 on an even input: (0, 1); on an odd input: (1, 1).
        let a = axis(224, 3, 2, 1, Padding::Same);
        assert_eq!((a.pad_before, a.pad_after, a.output), (0, 1, 112));
        let a = axis(7, 3, 2, 1, Padding::Same);
        assert_eq!((a.pad_before, a.pad_after, a.output), (1, 1, 4));
        // stride 1: k − 1 split with the extra after.
        let a = axis(10, 4, 1, 1, Padding::Same);
        assert_eq!((a.pad_before, a.pad_after, a.output), (1, 2, 10));
        // stride larger than kernel: no padding needed.
        let a = axis(9, 1, 3, 1, Padding::Same);
        assert_eq!((a.pad_before, a.pad_after, a.output), (0, 0, 3));
        // dilation widens the kernel: 3 taps at dilation 2 span 5.
        let a = axis(8, 3, 1, 2, Padding::Same);
        assert_eq!((a.pad_before, a.pad_after, a.output), (2, 2, 8));
    }

    #[test]
    fn valid_and_explicit_sizes() {
        assert_eq!(axis(5, 3, 1, 1, Padding::Valid).output, 3);
        assert_eq!(axis(6, 3, 2, 1, Padding::Valid).output, 2);
        assert_eq!(axis(5, 3, 1, 2, Padding::Valid).output, 1);
        assert_eq!(axis(5, 3, 2, 1, Padding::symmetric(1)).output, 3);
    }

    #[test]
    fn errors_name_the_numbers() {
        let e = ConvGeometry::new([2, 2], [3, 3], [1, 1], [1, 1], Padding::Valid).unwrap_err();
        assert_eq!(
            e,
            Error::KernelTooLarge {
                axis: "height",
                kernel_extent: 3,
                padded_input: 2
            }
        );
        assert_eq!(
            ConvGeometry::new([4, 4], [3, 3], [0, 1], [1, 1], Padding::Valid).unwrap_err(),
            Error::InvalidStride([0, 1])
        );
        assert_eq!(
            ConvGeometry::new([4, 4], [3, 3], [1, 1], [1, 0], Padding::Valid).unwrap_err(),
            Error::InvalidDilation([1, 0])
        );
        assert!(matches!(
            ConvGeometry::new([0, 4], [3, 3], [1, 1], [1, 1], Padding::Same),
            Err(Error::ZeroSize { .. })
        ));
        assert_eq!(
            ConvGeometry::new([4, 4], [2, usize::MAX], [1, 1], [1, 2], Padding::Same).unwrap_err(),
            Error::Overflow("dilated kernel extent")
        );
    }

    #[test]
    fn valid_outputs_matches_input_index() {
        for input in 1..9 {
            for k in 1..4 {
                for s in 1..4 {
                    for d in 1..3 {
                        for p in [Padding::Same, Padding::Valid, Padding::symmetric(2)] {
                            let Ok(g) = ConvGeometry::new([input, 1], [k, 1], [s, 1], [d, 1], p)
                            else {
                                continue;
                            };
                            let a = g.h;
                            for t in 0..k {
                                let r = a.valid_outputs(t);
                                for o in 0..a.output {
                                    assert_eq!(
                                        a.input_index(o, t).is_some(),
                                        r.contains(&o),
                                        "{a:?} t={t} o={o} range={r:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
