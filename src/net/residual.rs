//! The residual block: a body whose output is added to its input.

use ndarray::{ArrayView4, ArrayViewMut4};

use super::Sequential;
use crate::Float;
use crate::activation::Activation;
use crate::conv::{Algorithm, check_output, dims4};
use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::layer::{
    KeptScratch, Layer, LayerInfo, SummaryRow, check_scratch, checked_len, child_path, sum_row,
};

/// `act(body(x) + shortcut(x))`, where the shortcut is the input itself or a
/// projection of it (typically a 1×1 conv, strided when the body is).
///
/// The body's output and the shortcut must have the same shape; the error
/// says both. With the identity shortcut the addition is done in place on
/// the output; a projection's output goes to the scratch first.
///
/// # Shapes
/// input `[N, H, W, C]`, output the body's output shape.
///
/// ```
/// use ndarray::{Array2, Array4};
/// use sepconv::net::{Residual, Sequential};
/// use sepconv::{Activation, Layer, PointwiseConv2d};
/// // x + relu(x · W) with W = 1 on a 1-channel input: 2x for x ≥ 0.
/// let body = Sequential::new()
///     .with(PointwiseConv2d::new(Array2::ones((1, 1)), None)?.with_activation(Activation::Relu));
/// let block = Residual::new(body);
/// let y = block.forward(Array4::from_elem((1, 2, 2, 1), 1.5f32).view())?;
/// assert!(y.iter().all(|&v| v == 3.0));
/// // A body that changes the channel count needs a projection.
/// let wide = Sequential::new().with(PointwiseConv2d::<f32>::new(Array2::ones((1, 4)), None)?);
/// assert!(Residual::new(wide.clone()).output_shape([1, 2, 2, 1]).is_err());
/// let projected = Residual::new(wide).with_projection(PointwiseConv2d::new(Array2::ones((1, 4)), None)?);
/// assert_eq!(projected.output_shape([1, 2, 2, 1])?, [1, 2, 2, 4]);
/// # Ok::<(), sepconv::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Residual<F: Float> {
    body: Sequential<F>,
    projection: Option<Box<dyn Layer<F>>>,
    activation: Activation,
    /// The scratch of [`Layer::forward_into`] between calls.
    kept: KeptScratch<F>,
}

impl<F: Float> Residual<F> {
    /// `body(x) + x`, no activation after the sum.
    pub fn new(body: Sequential<F>) -> Self {
        Residual {
            body,
            projection: None,
            activation: Activation::Identity,
            kept: KeptScratch::new(),
        }
    }

    /// The shortcut `projection(x)` instead of `x`.
    pub fn with_projection(mut self, projection: impl Layer<F> + 'static) -> Self {
        self.projection = Some(Box::new(projection));
        self
    }

    /// The activation applied after the sum (default identity; ResNet uses
    /// ReLU, MobileNetV2 none).
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// The body.
    pub fn body(&self) -> &Sequential<F> {
        &self.body
    }

    /// The projection, if any.
    pub fn projection(&self) -> Option<&dyn Layer<F>> {
        self.projection.as_deref()
    }

    /// The activation after the sum.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The body's output shape and the shortcut's, checked equal.
    fn shapes(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        let body = self.body.output_shape(input)?;
        let shortcut = match &self.projection {
            Some(p) => p.output_shape(input)?,
            None => input,
        };
        if body != shortcut {
            let what = match self.projection {
                Some(_) => "Residual: the projection's output against the body's",
                None => {
                    "Residual: the input (the identity shortcut) against the body's output; \
                         a body that changes the shape needs a projection"
                }
            };
            return Err(Error::shape(what, &body, &shortcut));
        }
        Ok(body)
    }
}

impl<F: Float> Layer<F> for Residual<F> {
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.shapes(input)
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.shapes(input)?;
        let projection = match &self.projection {
            Some(p) => p.cost(input)?,
            None => Cost::default(),
        };
        self.body
            .cost(input)?
            .checked_add(projection, "a residual block's cost")
    }

    fn info(&self) -> LayerInfo {
        LayerInfo::new("Residual")
    }

    fn scratch_len(&self, input: [usize; 4]) -> Result<usize> {
        let out = self.shapes(input)?;
        let body = self.body.scratch_len(input)?;
        let projection = match &self.projection {
            Some(p) => checked_len("Residual scratch", &out)?
                .checked_add(p.scratch_len(input)?)
                .ok_or(Error::Overflow("Residual scratch"))?,
            None => 0,
        };
        Ok(body.max(projection))
    }

    /// As the provided method, with the scratch kept between calls.
    fn forward_into(&self, x: ArrayView4<'_, F>, out: ArrayViewMut4<'_, F>) -> Result<()> {
        self.kept.forward_into(self, "Residual scratch", x, out)
    }

    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        mut out: ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> Result<()> {
        let input = dims4(x.shape());
        let shape = self.shapes(input)?;
        check_output("Residual output", out.shape(), shape)?;
        check_scratch("Residual", scratch.len(), Layer::scratch_len(self, input)?)?;
        self.body.forward_with_scratch(x, out.view_mut(), scratch)?;
        let act = self.activation;
        match &self.projection {
            None => super::add_residual(out, x, act),
            Some(p) => {
                let (shortcut, rest) = scratch.split_at_mut(checked_len("Residual", &shape)?);
                let mut shortcut =
                    ArrayViewMut4::from_shape(shape, shortcut).expect("sized by scratch_len");
                p.forward_with_scratch(x, shortcut.view_mut(), rest)?;
                super::add_residual(out, shortcut.view(), act);
            }
        }
        Ok(())
    }

    fn set_algorithm(&mut self, algorithm: Algorithm) {
        self.body.set_algorithm(algorithm);
        if let Some(p) = &mut self.projection {
            p.set_algorithm(algorithm);
        }
    }

    /// The body's rows (`name/…`), the projection's (`name/projection`), and
    /// a row for the sum itself (no mult-adds).
    fn summary_rows(
        &self,
        name: &str,
        input: [usize; 4],
        rows: &mut Vec<SummaryRow>,
    ) -> Result<()> {
        let output = self.shapes(input)?;
        self.body.summary_rows(name, input, rows)?;
        if let Some(p) = &self.projection {
            p.summary_rows(&child_path(name, "projection"), input, rows)?;
        }
        rows.push(sum_row(child_path(name, "add"), self.info(), input, output));
        Ok(())
    }
}
