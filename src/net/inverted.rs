//! MobileNetV2's inverted residual block (Sandler et al. 2018).

use ndarray::{ArrayView4, ArrayViewMut2, ArrayViewMut4, s};

use crate::Float;
use crate::activation::Activation;
use crate::conv::{Algorithm, DepthwiseConv2d, PointwiseConv2d, check_output, dims4};
use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::geometry::Padding;
use crate::init::{Init, SplitMix64};
use crate::layer::{
    KeptScratch, Layer, LayerInfo, SummaryRow, check_scratch, checked_len, child_path, sum_row,
};

use super::band::{Plan, Stage};

/// The inverted residual block with a linear bottleneck: an optional 1×1
/// expansion, a depthwise conv, a 1×1 projection, and the block's input
/// added to the projection's output when the depthwise stride is 1 and the
/// block keeps its channel count (the rule of the paper and of TF-slim).
///
/// The three convs are given built, each with its BatchNorm folded and its
/// activation fused: in MobileNetV2 the expansion and the depthwise conv end
/// in ReLU6 and the projection is linear ([`Activation::Identity`]), but the
/// block runs whatever it is given. [`init`](Self::init) builds one from
/// shapes with seeded weights.
///
/// The intermediate activations (`expansion × C_in` channels) live in the
/// scratch the caller (or the [`Sequential`](crate::Sequential) around the
/// block) provides; the residual sum is added in place on the output.
///
/// # Shapes
/// input `[N, H, W, C_in]` → expansion `[N, H, W, t·C_in]` → depthwise
/// `[N, OH, OW, t·C_in]` → output `[N, OH, OW, C_out]`.
///
/// ```
/// use ndarray::Array4;
/// use sepconv::init::{Init, SplitMix64};
/// use sepconv::{Activation, InvertedResidual, Layer};
/// let mut rng = SplitMix64::new(1);
/// // 24 → 24 channels, expansion 6, stride 1: the residual is added.
/// let block = InvertedResidual::<f32>::init(24, 24, 6, 1, Activation::Relu6, Init::HeNormal, &mut rng)?;
/// assert!(block.has_residual());
/// assert_eq!(block.output_shape([1, 28, 28, 24])?, [1, 28, 28, 24]);
/// // 28²·(24·144 + 9·144 + 144·24) mult-adds.
/// assert_eq!(block.cost([1, 28, 28, 24])?.mult_adds, 28 * 28 * 144 * (24 + 9 + 24));
/// let y = block.forward(Array4::ones((2, 28, 28, 24)).view())?;
/// assert_eq!(y.shape(), &[2, 28, 28, 24]);
/// // Stride 2 (or a change of width): no residual.
/// let down = InvertedResidual::<f32>::init(24, 32, 6, 2, Activation::Relu6, Init::HeNormal, &mut rng)?;
/// assert!(!down.has_residual());
/// assert_eq!(down.output_shape([1, 28, 28, 24])?, [1, 14, 14, 32]);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct InvertedResidual<F: Float> {
    expand: Option<PointwiseConv2d<F>>,
    depthwise: DepthwiseConv2d<F>,
    project: PointwiseConv2d<F>,
    residual: bool,
    /// The scratch of [`Layer::forward_into`] between calls.
    kept: KeptScratch<F>,
}

/// The shapes a block's forward goes through.
struct Shapes {
    expanded: [usize; 4],
    depthwise: [usize; 4],
    output: [usize; 4],
}

impl<F: Float> InvertedResidual<F> {
    /// The block `project(depthwise(expand(x)))`, plus `x` when the
    /// depthwise stride is 1 and the projection's output channels equal the
    /// block's input channels. Without `expand` (MobileNetV2's first block,
    /// t = 1) the depthwise conv reads the input.
    ///
    /// # Errors
    /// [`Error::ChannelMismatch`] when the expansion's output channels are
    /// not the depthwise conv's channels, or the depthwise conv's output
    /// channels not the projection's input channels.
    pub fn new(
        expand: Option<PointwiseConv2d<F>>,
        depthwise: DepthwiseConv2d<F>,
        project: PointwiseConv2d<F>,
    ) -> Result<Self> {
        if let Some(e) = &expand
            && e.out_channels() != depthwise.channels()
        {
            return Err(Error::ChannelMismatch {
                what: "InvertedResidual: the depthwise conv's channels against the expansion's outputs"
                    .into(),
                expected: e.out_channels(),
                got: depthwise.channels(),
            });
        }
        if depthwise.out_channels() != project.in_channels() {
            return Err(Error::ChannelMismatch {
                what: "InvertedResidual: the projection's input channels against the depthwise outputs"
                    .into(),
                expected: depthwise.out_channels(),
                got: project.in_channels(),
            });
        }
        let c_in = expand
            .as_ref()
            .map_or(depthwise.channels(), |e| e.in_channels());
        let residual = depthwise.params().stride == [1, 1] && project.out_channels() == c_in;
        Ok(InvertedResidual {
            expand,
            depthwise,
            project,
            residual,
            kept: KeptScratch::new(),
        })
    }

    /// A block `c_in → c_out` with expansion factor `expansion` (1: no
    /// expansion conv), a 3×3 depthwise conv of stride `stride` with
    /// TensorFlow SAME padding, `activation` after the expansion and the
    /// depthwise conv, a linear projection, no biases, and weights drawn by
    /// `init` from `rng` (expansion, depthwise, projection, in that order).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero `c_in`, `c_out` or
    /// `expansion` or an expanded width that overflows; as
    /// [`Init::depthwise`] for a stride of 0.
    pub fn init(
        c_in: usize,
        c_out: usize,
        expansion: usize,
        stride: usize,
        activation: Activation,
        init: Init,
        rng: &mut SplitMix64,
    ) -> Result<Self> {
        for (name, v) in [("c_in", c_in), ("c_out", c_out), ("expansion", expansion)] {
            if v == 0 {
                return Err(Error::param(name, v, "an inverted residual needs ≥ 1"));
            }
        }
        let wide = c_in.checked_mul(expansion).ok_or_else(|| {
            Error::param(
                "expansion",
                expansion,
                format!("{c_in} × {expansion} channels overflow"),
            )
        })?;
        let expand = match expansion {
            1 => None,
            _ => Some(
                PointwiseConv2d::new(init.dense([c_in, wide], rng)?, None)?
                    .with_activation(activation),
            ),
        };
        let depthwise = DepthwiseConv2d::builder(init.depthwise([3, 3, wide, 1], rng)?)
            .stride(stride)
            .padding(Padding::Same)
            .activation(activation)
            .build()?;
        let project = PointwiseConv2d::new(init.dense([wide, c_out], rng)?, None)?;
        Self::new(expand, depthwise, project)
    }

    /// The expansion conv, if any.
    pub fn expand(&self) -> Option<&PointwiseConv2d<F>> {
        self.expand.as_ref()
    }

    /// The depthwise conv.
    pub fn depthwise(&self) -> &DepthwiseConv2d<F> {
        &self.depthwise
    }

    /// The projection.
    pub fn project(&self) -> &PointwiseConv2d<F> {
        &self.project
    }

    /// Whether the input is added to the output.
    pub fn has_residual(&self) -> bool {
        self.residual
    }

    /// The expansion factor t: the depthwise conv's channels over the
    /// block's input channels (1 without an expansion conv).
    pub fn expansion(&self) -> usize {
        self.expand
            .as_ref()
            .map_or(1, |e| e.out_channels() / e.in_channels())
    }

    /// The block's input channels.
    pub fn in_channels(&self) -> usize {
        self.expand
            .as_ref()
            .map_or(self.depthwise.channels(), |e| e.in_channels())
    }

    /// The block's output channels.
    pub fn out_channels(&self) -> usize {
        self.project.out_channels()
    }

    /// The shapes of the expansion, the depthwise conv and the output, each
    /// error naming the conv that refuses its input.
    fn shapes(&self, input: [usize; 4]) -> Result<Shapes> {
        let within =
            |index: usize, name: &str, layer: &dyn Layer<F>, at: [usize; 4], e| Error::Layer {
                index,
                name: name.into(),
                kind: layer.info().kind,
                input: at.into(),
                source: Box::new(e),
            };
        let expanded = match &self.expand {
            Some(e) => e
                .output_shape(input)
                .map_err(|err| within(0, "expand", e, input, err))?,
            None => input,
        };
        let depthwise = self
            .depthwise
            .output_shape(expanded)
            .map_err(|err| within(1, "depthwise", &self.depthwise, expanded, err))?;
        let output = self
            .project
            .output_shape(depthwise)
            .map_err(|err| within(2, "project", &self.project, depthwise, err))?;
        if self.residual && output != input {
            return Err(Error::shape(
                "InvertedResidual: the output against the input it is added to \
                 (a padding that shrinks the map breaks the residual)",
                &input,
                &output,
            ));
        }
        Ok(Shapes {
            expanded,
            depthwise,
            output,
        })
    }

    /// The expansion and the depthwise conv as a chain (see `net::band`),
    /// when the block runs band by band: with an expansion whose map passes
    /// 1 MiB an image, and a depthwise conv that can run on bands.
    fn banded(&self, input: [usize; 4], s: &Shapes) -> Result<Option<Plan>> {
        let Some(stages) = self.chain() else {
            return Ok(None);
        };
        if !stages[1].bands(s.expanded) {
            return Ok(None);
        }
        let plan = Plan::new(&stages, input)?;
        Ok(plan.worth_it(std::mem::size_of::<F>()).then_some(plan))
    }

    /// The expansion and the depthwise conv, when there is an expansion.
    fn chain(&self) -> Option<[Stage<'_, F>; 2]> {
        let expand = self.expand.as_ref()?;
        Some([Stage::Pointwise(expand), Stage::Depthwise(&self.depthwise)])
    }

    /// Elements of the depthwise band buffer of a banded forward.
    fn band_len(&self, plan: &Plan, s: &Shapes) -> Result<usize> {
        let [_, _, ow, oc] = s.depthwise;
        let rows = plan.max_band(std::mem::size_of::<F>());
        checked_len("an inverted residual's depthwise band", &[rows, ow, oc])
    }

    /// The scratch a forward on `input` (of shapes `s`) needs: banded, the
    /// depthwise band buffer, then the chain's band buffer and the largest
    /// scratch of the three convs; else the expanded and the depthwise
    /// activations, then that largest scratch.
    fn scratch_for(&self, input: [usize; 4], s: &Shapes) -> Result<usize> {
        let project = self.project.scratch_len(s.depthwise)?;
        if let Some(plan) = self.banded(input, s)? {
            let stages = self.chain().expect("banded blocks expand");
            return self
                .band_len(&plan, s)?
                .checked_add(plan.scratch_len(&stages, project)?)
                .ok_or(Error::Overflow("an inverted residual's scratch"));
        }
        let (expanded, depthwise) = self.buffer_lens(s)?;
        let expand = match &self.expand {
            Some(e) => e.scratch_len(input)?,
            None => 0,
        };
        let inner = expand
            .max(self.depthwise.scratch_len(s.expanded)?)
            .max(project);
        expanded
            .checked_add(depthwise)
            .and_then(|n| n.checked_add(inner))
            .ok_or(Error::Overflow("an inverted residual's scratch"))
    }

    /// Elements of the expanded and the depthwise activations of a forward
    /// that is not banded.
    fn buffer_lens(&self, s: &Shapes) -> Result<(usize, usize)> {
        let expanded = match self.expand {
            Some(_) => checked_len("an inverted residual's expansion", &s.expanded)?,
            None => 0,
        };
        Ok((
            expanded,
            checked_len("an inverted residual's depthwise output", &s.depthwise)?,
        ))
    }

    /// The forward band by band (see `net::band`): for each band of
    /// output rows, the expansion of the input rows its taps reach into a
    /// band buffer (rows the band before already expanded are moved to its
    /// front, not expanded again), the depthwise conv of the band into a
    /// second band buffer, the projection of those rows into the output,
    /// and the residual sum. The band buffers are reused band after band, so
    /// they stay in L2, where the whole-map pass writes the expanded map
    /// (4.8 MB in MobileNetV2's second block) out to memory and reads it back.
    /// Every element is computed by the same operations as in the whole-map
    /// pass, so the bits are the same.
    fn forward_banded(
        &self,
        plan: &Plan,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        s: &Shapes,
        scratch: &mut [F],
    ) -> Result<()> {
        let stages = self.chain().expect("banded blocks expand");
        let [_, _, ow, oc] = s.depthwise;
        let (depthwise, chain) = scratch.split_at_mut(self.band_len(plan, s)?);
        super::band::run(&stages, plan, x.view(), chain, |band, inner| {
            let (o0, o1, b) = (band.rows.start, band.rows.end, band.image);
            let len = (o1 - o0) * ow * oc;
            let dw = ArrayViewMut2::from_shape((o1 - o0, ow * oc), &mut depthwise[..len])
                .expect("sized by scratch_len");
            self.depthwise
                .forward_band(band.input, s.expanded, band.geometry, dw)?;
            let dw = ArrayView4::from_shape([1, o1 - o0, ow, oc], &depthwise[..len])
                .expect("sized by scratch_len");
            let mut out_band = out.slice_mut(s![b..b + 1, o0..o1, .., ..]);
            self.project
                .forward_with_scratch(dw, out_band.view_mut(), inner)?;
            if self.residual {
                let x = x.slice(s![b..b + 1, o0..o1, .., ..]);
                super::add_residual(out_band, x, Activation::Identity);
            }
            Ok(())
        })
    }
}

impl<F: Float> Layer<F> for InvertedResidual<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        Ok(self.shapes(input)?.output)
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let s = self.shapes(input)?;
        let expand = match &self.expand {
            Some(e) => e.cost(input)?,
            None => Cost::default(),
        };
        expand
            .checked_add(
                self.depthwise.cost(s.expanded)?,
                "an inverted residual's cost",
            )?
            .checked_add(
                self.project.cost(s.depthwise)?,
                "an inverted residual's cost",
            )
    }

    fn info(&self) -> LayerInfo {
        LayerInfo::new("InvertedResidual")
            .with_stride(self.depthwise.params().stride)
            .with_filter(format!(
                "t={} {}→{}{}",
                self.expansion(),
                self.in_channels(),
                self.out_channels(),
                if self.residual { " +x" } else { "" }
            ))
    }

    /// The expanded and the depthwise activations (whole, or one band of
    /// each for a block whose expanded map passes 1 MiB an image), then the
    /// largest scratch of the three convs.
    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        self.scratch_for(input, &self.shapes(input)?)
    }

    /// As the provided method, with the scratch kept between calls.
    fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        self.kept
            .forward_into(self, "InvertedResidual scratch", x, out)
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let input = dims4(x.shape());
        let s = self.shapes(input)?;
        check_output("InvertedResidual output", out.shape(), s.output)?;
        check_scratch(
            "InvertedResidual",
            scratch.len(),
            self.scratch_for(input, &s)?,
        )?;
        if let Some(plan) = self.banded(input, &s)? {
            return self.forward_banded(&plan, x, out, &s, scratch);
        }
        let (expanded_len, depthwise_len) = self.buffer_lens(&s)?;
        let (expanded, rest) = scratch.split_at_mut(expanded_len);
        let (depthwise, inner) = rest.split_at_mut(depthwise_len);
        let mut depthwise =
            ArrayViewMut4::from_shape(s.depthwise, depthwise).expect("sized by scratch_len");
        match &self.expand {
            Some(e) => {
                let mut expanded =
                    ArrayViewMut4::from_shape(s.expanded, expanded).expect("sized by scratch_len");
                e.forward_with_scratch(x.view(), expanded.view_mut(), inner)?;
                self.depthwise.forward_with_scratch(
                    expanded.view(),
                    depthwise.view_mut(),
                    inner,
                )?;
            }
            None => self
                .depthwise
                .forward_with_scratch(x.view(), depthwise.view_mut(), inner)?,
        }
        self.project
            .forward_with_scratch(depthwise.view(), out.view_mut(), inner)?;
        if self.residual {
            super::add_residual(out, x, Activation::Identity);
        }
        Ok(())
    }

    fn set_algorithm(&mut self, algorithm: Algorithm) {
        if let Some(e) = &mut self.expand {
            e.set_algorithm(algorithm);
        }
        self.depthwise.set_algorithm(algorithm);
        self.project.set_algorithm(algorithm);
    }

    /// A row per conv (`name/expand`, `name/depthwise`, `name/project`) and,
    /// with the residual, one for the sum (`name/add`, no mult-adds).
    fn summary_rows(
        &self,
        name: &str,
        input: [usize; 4],
        rows: &mut Vec<SummaryRow>,
    ) -> Result<()> {
        let s = self.shapes(input)?;
        let path = |leaf: &str| child_path(name, leaf);
        if let Some(e) = &self.expand {
            e.summary_rows(&path("expand"), input, rows)?;
        }
        self.depthwise
            .summary_rows(&path("depthwise"), s.expanded, rows)?;
        self.project
            .summary_rows(&path("project"), s.depthwise, rows)?;
        if self.residual {
            rows.push(sum_row(path("add"), LayerInfo::new("Add"), input, s.output));
        }
        Ok(())
    }
}
