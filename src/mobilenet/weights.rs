//! MobileNet weights by name: seeded initialization, safetensors, TF import.
//!
//! # Tensor names and layouts
//!
//! The names are TF-slim's, so a checkpoint converted from TensorFlow and a
//! file saved here read the same. For each layer `L` of
//! [`Architecture::layers`] (v1: `Conv2d_0`, `Conv2d_1_depthwise`, …; v2:
//! `Conv`, `expanded_conv/depthwise`, `expanded_conv_1/expand`, …,
//! `Conv_1`) under the family's scope `S` (`MobilenetV1`, `MobilenetV2`):
//!
//! | tensor | shape |
//! | --- | --- |
//! | `S/L/weights` (conv, pointwise) | HWIO `[kh, kw, C_in, C_out]` (pointwise: `[1, 1, C_in, C_out]`) |
//! | `S/L/depthwise_weights` (depthwise) | `[kh, kw, C, m]` |
//! | `S/L/BatchNorm/gamma`, `beta`, `moving_mean`, `moving_variance` | `[C_out]` |
//! | `S/Logits/Conv2d_1c_1x1/weights` | `[1, 1, C, classes]` |
//! | `S/Logits/Conv2d_1c_1x1/biases` | `[classes]` |
//!
//! Convs before a BatchNorm have no bias, as in TF-slim.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use super::{Architecture, LayerKind};
use crate::Float;
use crate::error::{Error, Result};
use crate::init::SplitMix64;
use crate::io::LoadOptions;
use crate::layer::try_collect;

/// The scope every MobileNet v1 tensor name starts with.
pub const SCOPE: &str = "MobilenetV1";

const BN_PARTS: [&str; 4] = ["gamma", "beta", "moving_mean", "moving_variance"];

/// Every tensor a configuration (v1 or v2) needs, with its shape, in layer
/// order.
///
/// # Errors
/// As the config's `validate`.
pub fn tensor_names(config: &impl Architecture) -> Result<Vec<(String, Vec<usize>)>> {
    let scope = config.scope();
    let mut names = Vec::new();
    for spec in config.layers()? {
        let w = spec.weight_shape().to_vec();
        let c = spec.output[2];
        match spec.kind {
            LayerKind::FullyConnected => {
                names.push((format!("{scope}/Logits/Conv2d_1c_1x1/weights"), w));
                names.push((format!("{scope}/Logits/Conv2d_1c_1x1/biases"), vec![c]));
            }
            kind => {
                let leaf = if kind == LayerKind::Depthwise {
                    "depthwise_weights"
                } else {
                    "weights"
                };
                names.push((format!("{scope}/{}/{leaf}", spec.name), w));
                for part in BN_PARTS {
                    names.push((format!("{scope}/{}/BatchNorm/{part}", spec.name), vec![c]));
                }
            }
        }
    }
    Ok(names)
}

/// The weights of a MobileNet, unfolded (BatchNorm kept apart), by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MobileNetWeights<F> {
    tensors: BTreeMap<String, ArrayD<F>>,
}

impl<F: Float> MobileNetWeights<F> {
    /// An empty set.
    pub fn new() -> Self {
        MobileNetWeights {
            tensors: BTreeMap::new(),
        }
    }

    /// Deterministic weights for `config` from `seed`: He-normal conv weights
    /// (std √(2 / fan-in), the draws of [`Init::HeNormal`]), classifier std
    /// √(1 / fan-in) with zero bias, and BatchNorm statistics drawn near
    /// identity (γ ∈ [0.5, 1.5], β and mean ∈ [−0.1, 0.1], variance ∈
    /// [0.5, 1.5]) so folding is exercised. One [`SplitMix64`] seeded with
    /// `seed` draws every tensor in [`tensor_names`] order, so the same seed
    /// gives the same bits on every machine.
    ///
    /// [`Init::HeNormal`]: crate::init::Init::HeNormal
    ///
    /// # Errors
    /// As the config's `validate`; [`Error::TooLarge`] naming the tensor
    /// when memory does not hold it.
    pub fn seeded(config: &impl Architecture, seed: u64) -> Result<Self> {
        let mut rng = SplitMix64::new(seed);
        let mut tensors = BTreeMap::new();
        for (name, shape) in tensor_names(config)? {
            // Validated configurations bound every size; the allocation is
            // still fallible, as memory may not hold what the bounds allow.
            let collect = |what: &str, values: &mut dyn Iterator<Item = f64>| {
                try_collect(what, &shape, values.map(F::from_f64_lossy))
            };
            let data: Vec<F> = if name.ends_with("weights") {
                // fan-in = kh·kw·C_in for convs, kh·kw for depthwise.
                let fan_in = if name.ends_with("depthwise_weights") {
                    shape[0] * shape[1]
                } else {
                    shape[0] * shape[1] * shape[2]
                };
                let gain = if name.contains("/Logits/") { 1.0 } else { 2.0 };
                let std = (gain / fan_in as f64).sqrt();
                collect(&name, &mut std::iter::repeat_with(|| rng.normal() * std))?
            } else if name.ends_with("biases") {
                collect(&name, &mut std::iter::repeat(0.0))?
            } else {
                let (lo, hi) = match name.rsplit('/').next() {
                    Some("gamma") | Some("moving_variance") => (0.5, 1.5),
                    _ => (-0.1, 0.1),
                };
                collect(
                    &name,
                    &mut std::iter::repeat_with(|| rng.uniform_in(lo, hi)),
                )?
            };
            let array = ArrayD::from_shape_vec(IxDyn(&shape), data)
                .expect("length is the product of the shape");
            tensors.insert(name, array);
        }
        Ok(MobileNetWeights { tensors })
    }

    /// The tensor `name`, if present.
    pub fn get(&self, name: &str) -> Option<&ArrayD<F>> {
        self.tensors.get(name)
    }

    /// The tensor `name`, checked against `shape`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::ShapeMismatch`] naming the tensor.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<ArrayViewD<'_, F>> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::MissingTensor { name: name.into() })?;
        if t.shape() != shape {
            return Err(Error::shape(name, shape, t.shape()));
        }
        Ok(t.view())
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: ArrayD<F>) {
        self.tensors.insert(name.into(), tensor);
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Checks that every tensor `config` needs is present with its shape.
    ///
    /// # Errors
    /// The first [`Error::MissingTensor`] or [`Error::ShapeMismatch`].
    pub fn check(&self, config: &impl Architecture) -> Result<()> {
        for (name, shape) in tensor_names(config)? {
            self.tensor(&name, &shape)?;
        }
        Ok(())
    }

    /// Serializes to safetensors (dtype F32 or F64 as `F`), names as above.
    ///
    /// # Errors
    /// [`Error::Format`] if safetensors refuses the data.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let dtype = if F::NAME == "f32" {
            safetensors::Dtype::F32
        } else {
            safetensors::Dtype::F64
        };
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let mut b = Vec::with_capacity(t.len() * std::mem::size_of::<F>());
                for &v in t.iter() {
                    if F::NAME == "f32" {
                        b.extend_from_slice(&(v.to_f64_exact() as f32).to_le_bytes());
                    } else {
                        b.extend_from_slice(&v.to_f64_exact().to_le_bytes());
                    }
                }
                (name.clone(), t.shape().to_vec(), b)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, shape, b)| {
                safetensors::tensor::TensorView::new(dtype, shape.clone(), b)
                    .map(|v| (name.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Format {
                format: "safetensors",
                detail: e.to_string(),
            })?;
        // One entry: safetensors takes the metadata as a HashMap, whose order
        // (and so the file's bytes) would vary from run to run with two.
        let metadata = [(
            "format".to_string(),
            "sepconv MobileNet: TF-slim names; conv HWIO, depthwise [kh, kw, C, m]".to_string(),
        )];
        safetensors::serialize(views, Some(metadata.into_iter().collect())).map_err(|e| {
            Error::Format {
                format: "safetensors",
                detail: e.to_string(),
            }
        })
    }

    /// Writes a safetensors file.
    ///
    /// # Errors
    /// [`Error::Io`] with the path, or as [`to_safetensors`](Self::to_safetensors).
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_safetensors()?).map_err(|e| Error::io(path, e))
    }

    /// Reads safetensors bytes; F32 and F64 tensors are converted to `F`,
    /// with the default [`LoadOptions`] (finite values only).
    ///
    /// # Errors
    /// As [`from_safetensors_with`](Self::from_safetensors_with).
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        Self::from_safetensors_with(bytes, &LoadOptions::default())
    }

    /// Reads safetensors bytes under `opts`; F32 and F64 tensors are
    /// converted to `F`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for more than `opts.max_bytes` bytes or a tensor
    /// that cannot be allocated, [`Error::Format`] for a truncated or
    /// corrupt file, a non-finite value (unless `opts.allow_non_finite`) or
    /// an f64 beyond the range of `F` (f32: ±3.4·10³⁸), naming the tensor
    /// and the element; [`Error::Dtype`] naming a tensor of another dtype.
    pub fn from_safetensors_with(bytes: &[u8], opts: &LoadOptions) -> Result<Self> {
        opts.check_len("safetensors bytes", bytes.len() as u64)?;
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::Format {
            format: "safetensors",
            detail: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let wide: Box<dyn Iterator<Item = f64>> = match view.dtype() {
                safetensors::Dtype::F32 => Box::new(
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64),
                ),
                safetensors::Dtype::F64 => Box::new(
                    data.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
                ),
                other => {
                    return Err(Error::Dtype {
                        name,
                        expected: "F32 or F64".into(),
                        got: format!("{other:?}"),
                    });
                }
            };
            let mut bad = None;
            let values = try_collect(
                &name,
                &[data.len()
                    / if view.dtype() == safetensors::Dtype::F32 {
                        4
                    } else {
                        8
                    }],
                wide.enumerate().map(|(i, v)| {
                    let x = F::from_f64_lossy(v);
                    // A finite value that narrows to ±inf overflowed `F`.
                    if bad.is_none() && v.is_finite() && !x.to_f64_exact().is_finite() {
                        bad = Some((i, v));
                    }
                    x
                }),
            )?;
            if let Some((i, v)) = bad {
                return Err(Error::Format {
                    format: "safetensors",
                    detail: format!(
                        "tensor {name:?}: element {i} = {v:e} overflows {} (its range is ±{:e})",
                        F::NAME,
                        F::max_value().to_f64_exact()
                    ),
                });
            }
            opts.check_finite(
                "safetensors",
                &name,
                values.iter().map(|v| v.to_f64_exact()),
            )?;
            let array =
                ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| Error::Format {
                    format: "safetensors",
                    detail: format!("tensor {name:?}: {e}"),
                })?;
            tensors.insert(name, array);
        }
        Ok(MobileNetWeights { tensors })
    }

    /// Reads a safetensors file with the default [`LoadOptions`].
    ///
    /// # Errors
    /// As [`load_safetensors_with`](Self::load_safetensors_with).
    pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_safetensors_with(path, &LoadOptions::default())
    }

    /// Reads a safetensors file under `opts`: a regular file of at most
    /// `opts.max_bytes`, checked before reading (see [`crate::io`]).
    ///
    /// # Errors
    /// [`Error::Io`] with the path (also for a directory, FIFO or device),
    /// [`Error::TooLarge`] for a file over the limit, or as
    /// [`from_safetensors_with`](Self::from_safetensors_with).
    pub fn load_safetensors_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        Self::from_safetensors_with(&crate::io::read_file(path, opts)?, opts)
    }

    /// Takes the tensors `config` needs from a TensorFlow MobileNet v1 frozen
    /// graph (TF-slim names, unfused BatchNorm: the official releases of any
    /// α and resolution, with 1001 classes). Anything else in the graph (an
    /// extra head, the BN ε constants) is ignored.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] or [`Error::ShapeMismatch`] naming the tensor.
    #[cfg(feature = "tf")]
    pub fn from_graphdef(
        graph: &crate::io::tf::GraphDefWeights,
        config: &impl Architecture,
    ) -> Result<Self> {
        let mut tensors = BTreeMap::new();
        for (name, shape) in tensor_names(config)? {
            let t = graph.tensor(&name, &shape)?;
            let values = t.data.iter().map(|&v| F::from_f64_lossy(v as f64));
            let array = ArrayD::from_shape_vec(IxDyn(&shape), try_collect(&name, &shape, values)?)
                .map_err(|e| Error::Format {
                    format: "GraphDef",
                    detail: format!("tensor {name:?}: {e}"),
                })?;
            tensors.insert(name, array);
        }
        Ok(MobileNetWeights { tensors })
    }
}
