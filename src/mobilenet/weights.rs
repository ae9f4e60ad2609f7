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
    /// As the config's `validate`.
    pub fn seeded(config: &impl Architecture, seed: u64) -> Result<Self> {
        let mut rng = SplitMix64::new(seed);
        let mut tensors = BTreeMap::new();
        for (name, shape) in tensor_names(config)? {
            let n: usize = shape.iter().product();
            let data: Vec<f64> = if name.ends_with("weights") {
                // fan-in = kh·kw·C_in for convs, kh·kw for depthwise.
                let fan_in = if name.ends_with("depthwise_weights") {
                    shape[0] * shape[1]
                } else {
                    shape[0] * shape[1] * shape[2]
                };
                let gain = if name.contains("/Logits/") { 1.0 } else { 2.0 };
                let std = (gain / fan_in as f64).sqrt();
                (0..n).map(|_| rng.normal() * std).collect()
            } else if name.ends_with("biases") {
                vec![0.0; n]
            } else {
                let (lo, hi) = match name.rsplit('/').next() {
                    Some("gamma") | Some("moving_variance") => (0.5, 1.5),
                    _ => (-0.1, 0.1),
                };
                (0..n).map(|_| rng.uniform_in(lo, hi)).collect()
            };
            let array = ArrayD::from_shape_vec(
                IxDyn(&shape),
                data.into_iter().map(F::from_f64_lossy).collect(),
            )
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
        let metadata = [
            ("format".to_string(), "sepconv MobileNet".to_string()),
            (
                "layout".to_string(),
                "TF-slim names; conv HWIO, depthwise [kh, kw, C, m]".to_string(),
            ),
        ];
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

    /// Reads safetensors bytes; F32 and F64 tensors are converted to `F`.
    ///
    /// # Errors
    /// [`Error::Format`] for a truncated or corrupt file, [`Error::Dtype`]
    /// naming a tensor of another dtype.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::Format {
            format: "safetensors",
            detail: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<F> = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| F::from_f64_lossy(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
                    .collect(),
                safetensors::Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| F::from_f64_lossy(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                    .collect(),
                other => {
                    return Err(Error::Dtype {
                        name,
                        expected: "F32 or F64".into(),
                        got: format!("{other:?}"),
                    });
                }
            };
            let array =
                ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| Error::Format {
                    format: "safetensors",
                    detail: format!("tensor {name:?}: {e}"),
                })?;
            tensors.insert(name, array);
        }
        Ok(MobileNetWeights { tensors })
    }

    /// Reads a safetensors file.
    ///
    /// # Errors
    /// [`Error::Io`] with the path, or as [`from_safetensors`](Self::from_safetensors).
    pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_safetensors(&std::fs::read(path).map_err(|e| Error::io(path, e))?)
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
            let array = ArrayD::from_shape_vec(
                IxDyn(&shape),
                t.data
                    .iter()
                    .map(|&v| F::from_f64_lossy(v as f64))
                    .collect(),
            )
            .map_err(|e| Error::Format {
                format: "GraphDef",
                detail: format!("tensor {name:?}: {e}"),
            })?;
            tensors.insert(name, array);
        }
        Ok(MobileNetWeights { tensors })
    }
}
