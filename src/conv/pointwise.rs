//! Pointwise (1×1) convolution: one GEMM over the input buffer as it lies.

use ndarray::{Array1, Array2, ArrayView2, ArrayView4, ArrayViewMut2, ArrayViewMut4, s};

use super::{
    Algorithm, ConvCore, bias_activation, check_bias, check_input, check_output, check_weight,
    core_accessors, with_standard_output,
};
use crate::activation::Activation;
use crate::cost::{self, Cost};
use crate::error::Result;
use crate::geometry::ConvParams;
use crate::kernels::gemm;
use crate::layer::{Layer, LayerInfo};
use crate::norm::BatchNorm;
use crate::parallel::{chunk_rows, for_each_row_chunk};
use crate::plan::{GemmKernel, Plan};
use crate::{Float, reference};

/// A pointwise (1×1, stride 1) convolution: `y[n, y, x, :] = act(x[n, y, x, :] · W + b)`.
///
/// The input `[N, H, W, C_in]` is read as the matrix `(N·H·W) × C_in` with its
/// own strides (no im2col, no copy) and multiplied by `W` through
/// matrixmultiply; when the view's axes cannot be merged (e.g. a column-strided
/// slice) it runs one GEMM per image row instead, still without copying.
///
/// # Shapes
/// weight `[C_in, C_out]`, bias `[C_out]`, input `[N, H, W, C_in]`, output
/// `[N, H, W, C_out]`.
///
/// ```
/// use ndarray::{array, Array4};
/// use sepconv::PointwiseConv2d;
/// let pw = PointwiseConv2d::new(array![[1.0, 2.0], [3.0, 4.0]], Some(array![0.5, 0.0]))?;
/// let x = Array4::from_shape_vec((1, 1, 1, 2), vec![1.0, 1.0]).unwrap();
/// assert_eq!(pw.forward(x.view())?.into_raw_vec_and_offset().0, vec![4.5, 6.0]);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PointwiseConv2d<F: Float> {
    /// The weight, kept as `[1, 1, C_in, C_out]`.
    core: ConvCore<F>,
    plan: Plan<GemmKernel>,
}

impl<F: Float> PointwiseConv2d<F> {
    /// A pointwise conv with weight `[C_in, C_out]` and an optional bias `[C_out]`.
    ///
    /// # Errors
    /// [`Error::ZeroSize`](crate::Error::ZeroSize) for an empty weight,
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) for a bias of the wrong length.
    pub fn new(weight: Array2<F>, bias: Option<Array1<F>>) -> Result<Self> {
        check_weight("PointwiseConv2d weight", weight.shape())?;
        check_bias(
            "PointwiseConv2d bias",
            bias.as_ref().map(|b| b.len()),
            weight.ncols(),
        )?;
        let (ci, co) = weight.dim();
        let weight = weight
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((1, 1, ci, co))
            .expect("standard layout");
        let core = ConvCore::new(
            weight,
            bias,
            ConvParams::default(),
            Activation::Identity,
            Algorithm::Auto,
        );
        Ok(PointwiseConv2d::assemble(core))
    }

    fn assemble(core: ConvCore<F>) -> Self {
        let mut pw = PointwiseConv2d {
            core,
            plan: Plan::Reference,
        };
        pw.replan();
        pw
    }

    /// Packs the weight for the kernel the stored algorithm resolves to, once.
    fn replan(&mut self) {
        let core = &self.core;
        self.plan = Plan::new(core.algorithm, |isa| {
            GemmKernel::plan(isa, core.matrix(), core.bias_slice())
        });
    }

    core_accessors!();

    /// The weight `[C_in, C_out]`.
    pub fn weight(&self) -> ArrayView2<'_, F> {
        self.core.matrix()
    }
    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.core.weight.shape()[2]
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.core.weight.shape()[3]
    }

    /// This layer with `bn` folded in: weight columns scaled by γ/√(var+ε),
    /// bias `scale·b + β − mean·scale`.
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`](crate::Error::ChannelMismatch) if `bn` does
    /// not have `C_out` channels.
    pub fn fold_batch_norm(&self, bn: &BatchNorm<F>) -> Result<Self> {
        let core = self.core.fold("PointwiseConv2d", bn, self.out_channels())?;
        Ok(PointwiseConv2d::assemble(core))
    }

    super::layer_methods!();
}

impl<F: Float> Layer<F> for PointwiseConv2d<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_input("PointwiseConv2d input", &input, self.in_channels())?;
        Ok([input[0], input[1], input[2], self.out_channels()])
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let [n, h, w, _] = Layer::output_shape(self, input)?;
        cost::pointwise(
            [n, h, w],
            self.in_channels(),
            self.out_channels(),
            self.core.bias.is_some(),
        )
    }

    fn info(&self) -> LayerInfo {
        LayerInfo::new("PointwiseConv2d")
            .with_stride([1, 1])
            .with_filter(format!(
                "1×1×{}×{}",
                self.in_channels(),
                self.out_channels()
            ))
    }

    /// Room for a copy of the input at a padded row stride, when its rows
    /// would alias in L1 (`C_in` a multiple of 1024 f32s; see the GEMM's
    /// `staged_lda`); else nothing.
    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        let [n, h, w, _] = Layer::output_shape(self, input)?;
        match self.plan.kernel() {
            Ok(Some(gemm)) => {
                let rows = crate::layer::checked_len("PointwiseConv2d input", &[n, h, w])?;
                gemm.staging_len(rows, self.in_channels())
            }
            _ => Ok(0),
        }
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let shape = Layer::output_shape(self, super::dims4(x.shape()))?;
        check_output("PointwiseConv2d output", out.shape(), shape)?;
        let Some(gemm) = self.plan.kernel()? else {
            let bias = self.core.bias.as_ref().map(|b| b.view());
            return self
                .core
                .reference_into(reference::pointwise_conv2d(x, self.weight(), bias), out);
        };
        with_standard_output("PointwiseConv2d", out, |out| {
            let [n, h, w, _] = super::dims4(out.shape());
            let rows = out
                .into_shape_with_order((n * h * w, self.out_channels()))
                .expect("standard layout");
            gemm_nhwc(
                x,
                self.weight(),
                gemm,
                rows,
                self.core.bias.as_ref(),
                self.core.activation,
                scratch,
            );
            Ok(())
        })
    }

    fn as_pointwise(&self, _: crate::layer::Token) -> Option<&PointwiseConv2d<F>> {
        Some(self)
    }

    fn set_algorithm(&mut self, algorithm: Algorithm) {
        self.core.algorithm = algorithm;
        self.replan();
    }
}

/// `out = act(x · w + bias)` with `x` an NHWC view read as `(N·H·W) × C_in`
/// in place, `out` the standard-layout `(N·H·W) × C_out` rows; split over
/// threads by rows. `gemm` is the planned kernel: a packed one runs when the
/// input's rows can be read in place with unit stride, the portable GEMM on
/// `w` otherwise. `stage` is scratch for [`GemmKernel::packed`] (its
/// `staging_len`, or anything shorter to read the input in place).
pub(crate) fn gemm_nhwc<F: Float>(
    x: ArrayView4<'_, F>,
    w: ArrayView2<'_, F>,
    gemm: &GemmKernel,
    out: ArrayViewMut2<'_, F>,
    bias: Option<&Array1<F>>,
    act: Activation,
    stage: &mut [F],
) {
    let [n, h, wd, c] = super::dims4(x.shape());
    let m = n * h * wd;
    let merged = x.into_shape_with_order((m, c)).ok();
    let out = match &merged {
        Some(x2) => match gemm.packed(x2.view(), out, act, true, stage) {
            Ok(()) => return,
            Err(out) => out,
        },
        None => out,
    };
    let align = if merged.is_some() { 8 } else { wd };
    for_each_row_chunk(out, chunk_rows(m, 1, align), |r0, mut oc| {
        match &merged {
            Some(x2) => gemm::gemm(
                x2.slice(s![r0..r0 + oc.nrows(), ..]),
                w,
                F::zero(),
                oc.view_mut(),
            ),
            None => {
                // One GEMM per image row; chunks hold whole rows.
                for (i, start) in (r0..r0 + oc.nrows()).step_by(wd).enumerate() {
                    let (b, y) = (start / (h * wd), (start / wd) % h);
                    gemm::gemm(
                        x.slice(s![b, y, .., ..]),
                        w,
                        F::zero(),
                        oc.slice_mut(s![i * wd..(i + 1) * wd, ..]),
                    );
                }
            }
        }
        bias_activation(oc, bias, act);
    });
}
