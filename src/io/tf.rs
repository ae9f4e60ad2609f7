//! TensorFlow frozen GraphDef import.
//!
//! A frozen TensorFlow graph (`.pb`) is a serialized `GraphDef` protobuf message: a list
//! of nodes, where every trained variable has been turned into a `Const` node that holds
//! its value as a `TensorProto`. [`GraphDefWeights`] decodes such a file and keeps
//!
//! - every `float32` `Const` as a [`TfTensor`] (shape and row-major data, the same layout
//!   TensorFlow uses: HWIO conv weights, `[kh, kw, C, multiplier]` depthwise weights), and
//! - every node's name, op, inputs and scalar/list attributes as a [`TfNode`], so a loader
//!   can read a `FusedBatchNorm`'s `epsilon` or tell how the graph wires BatchNorm.
//!
//! The protobuf messages are a hand-written subset of TensorFlow's `graph.proto`,
//! `node_def.proto`, `attr_value.proto`, `tensor.proto` and `tensor_shape.proto`,
//! decoded with `prost`; fields not listed here are skipped by the decoder.
//!
//! Decoding never panics: malformed bytes give [`Error::Format`] with format
//! `"GraphDef"`.
//!
//! ```
//! // Bytes that are not a GraphDef are an error value, not a panic.
//! let e = sepconv::io::tf::GraphDefWeights::from_bytes(&[0xff; 7]).err().expect("not a graph");
//! assert!(e.to_string().contains("GraphDef"), "{e}");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};
use crate::io::LoadOptions;
use crate::layer::{try_collect, try_reserve};

/// The `format` of every [`Error::Format`] this module returns.
const FORMAT: &str = "GraphDef";

/// TensorFlow's `DT_FLOAT`.
const DT_FLOAT: i32 = 1;

// The elements that `float_val` broadcasting may create over a whole graph are bounded
// by `LoadOptions::max_broadcast_elements` (2²⁴ by default), summed over every `Const`
// before any is allocated: data stored in `tensor_content` is bounded by the input
// size, broadcast data is not, so a tiny hostile file could otherwise ask for an
// arbitrarily large allocation.

// ----------------------------------------------------------------------------------
// The protobuf subset (field numbers from tensorflow/core/framework/*.proto).
// ----------------------------------------------------------------------------------

/// `tensorflow.GraphDef`.
#[derive(Clone, PartialEq, Message)]
struct GraphDefProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeDefProto>,
}

/// `tensorflow.NodeDef`.
#[derive(Clone, PartialEq, Message)]
struct NodeDefProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    op: String,
    #[prost(string, repeated, tag = "3")]
    input: Vec<String>,
    #[prost(map = "string, message", tag = "5")]
    attr: HashMap<String, AttrValueProto>,
}

/// `tensorflow.AttrValue`: a oneof over the value kinds.
#[derive(Clone, PartialEq, Message)]
struct AttrValueProto {
    #[prost(oneof = "AttrValueKind", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    value: Option<AttrValueKind>,
}

/// The `value` oneof of `tensorflow.AttrValue`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum AttrValueKind {
    #[prost(message, tag = "1")]
    List(ListValueProto),
    #[prost(bytes, tag = "2")]
    S(Vec<u8>),
    #[prost(int64, tag = "3")]
    I(i64),
    #[prost(float, tag = "4")]
    F(f32),
    #[prost(bool, tag = "5")]
    B(bool),
    /// A `tensorflow.DataType` enum value.
    #[prost(int32, tag = "6")]
    Type(i32),
    #[prost(message, tag = "7")]
    Shape(TensorShapeProto),
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `tensorflow.AttrValue.ListValue` (only the int and float lists).
#[derive(Clone, PartialEq, Message)]
struct ListValueProto {
    #[prost(int64, repeated, tag = "3")]
    i: Vec<i64>,
    #[prost(float, repeated, tag = "4")]
    f: Vec<f32>,
}

/// `tensorflow.TensorProto` (only what float tensors need).
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShapeProto>,
    #[prost(bytes = "vec", tag = "4")]
    tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    float_val: Vec<f32>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<DimProto>,
    #[prost(bool, tag = "3")]
    unknown_rank: bool,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, Message)]
struct DimProto {
    #[prost(int64, tag = "1")]
    size: i64,
}

// ----------------------------------------------------------------------------------
// Public types.
// ----------------------------------------------------------------------------------

/// A float32 tensor read from a `Const` node: its shape and its elements in row-major
/// (C) order, as TensorFlow stores them.
#[derive(Debug, Clone, PartialEq)]
pub struct TfTensor {
    /// The dimensions, outermost first (for example `[3, 3, 3, 32]` for an HWIO conv
    /// kernel). Empty for a scalar.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, row-major.
    pub data: Vec<f32>,
}

/// One attribute of a [`TfNode`], as far as this importer reads it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TfAttr {
    /// A float (`f`), for example `FusedBatchNorm`'s `epsilon`.
    Float(f32),
    /// An integer (`i`).
    Int(i64),
    /// A boolean (`b`), for example `FusedBatchNorm`'s `is_training`.
    Bool(bool),
    /// A byte string (`s`), for example a conv's `padding` (`b"SAME"`).
    Bytes(Vec<u8>),
    /// A `tensorflow.DataType` enum value (`type`), for example a `Const`'s `dtype`
    /// (1 = `DT_FLOAT`).
    DataType(i32),
    /// A shape (`shape`): `None` when its rank is unknown; a dimension of −1 is unknown.
    Shape(Option<Vec<i64>>),
    /// A list of integers (`list.i`), for example a conv's `strides`.
    Ints(Vec<i64>),
    /// A list of floats (`list.f`).
    Floats(Vec<f32>),
    /// A tensor (`tensor`); its value is kept in the weight map when it is float32.
    Tensor,
    /// Any other kind (string, type, shape or tensor lists, functions, placeholders).
    Other,
}

/// A graph node without its tensor data: name, op type, inputs and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct TfNode {
    /// The node's unique name, for example `"MobilenetV1/Conv2d_0/weights"`.
    pub name: String,
    /// The op type, for example `"Const"`, `"Conv2D"` or `"FusedBatchNorm"`.
    pub op: String,
    /// Input node names in order (`"name"`, `"name:1"` for a second output, `"^name"`
    /// for a control dependency), as the GraphDef writes them.
    pub inputs: Vec<String>,
    /// Attributes by name.
    pub attrs: BTreeMap<String, TfAttr>,
}

impl TfNode {
    /// The float attribute `attr`, or `None` if it is absent or not a float.
    pub fn attr_f32(&self, attr: &str) -> Option<f32> {
        match self.attrs.get(attr) {
            Some(TfAttr::Float(v)) => Some(*v),
            _ => None,
        }
    }

    /// The integer attribute `attr`, or `None` if it is absent or not an integer.
    pub fn attr_i64(&self, attr: &str) -> Option<i64> {
        match self.attrs.get(attr) {
            Some(TfAttr::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// The integer-list attribute `attr` (for example `strides`), or `None` if it is
    /// absent or not an integer list.
    pub fn attr_ints(&self, attr: &str) -> Option<&[i64]> {
        match self.attrs.get(attr) {
            Some(TfAttr::Ints(v)) => Some(v),
            _ => None,
        }
    }

    /// The byte-string attribute `attr` as UTF-8 text (for example `padding`), or
    /// `None` if it is absent, not a string, or not UTF-8.
    pub fn attr_str(&self, attr: &str) -> Option<&str> {
        match self.attrs.get(attr) {
            Some(TfAttr::Bytes(v)) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }
}

/// The float32 constants of a frozen TensorFlow graph, by node name, together with the
/// graph's nodes (without tensor data).
///
/// ```no_run
/// # fn main() -> sepconv::Result<()> {
/// use sepconv::io::tf::GraphDefWeights;
/// let g = GraphDefWeights::from_file("mobilenet_v1_1.0_224_frozen.pb".as_ref())?;
/// let w = g.tensor("MobilenetV1/Conv2d_0/weights", &[3, 3, 3, 32])?;
/// assert_eq!(w.data.len(), 3 * 3 * 3 * 32);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct GraphDefWeights {
    /// float32 `Const` nodes.
    tensors: BTreeMap<String, TfTensor>,
    /// `Const` nodes of another dtype: name → TensorFlow dtype enum value.
    other_dtypes: BTreeMap<String, i32>,
    /// Every node, in graph order.
    nodes: Vec<TfNode>,
    /// Node name → index in `nodes`.
    index: HashMap<String, usize>,
}

impl GraphDefWeights {
    /// Decodes a serialized `GraphDef` and keeps its float32 `Const` tensors and its
    /// nodes.
    ///
    /// A `Const`'s value is read from `tensor_content` (raw little-endian f32) when that
    /// is present, else from `float_val` with TensorFlow's rule: no value gives zeros,
    /// fewer values than elements repeat the last one (so a single value is broadcast),
    /// exactly as many are copied.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] (format `"GraphDef"`) if the bytes are not a valid protobuf
    /// `GraphDef` (truncated, corrupt; the detail carries prost's message), if two nodes
    /// share a name, or if a `Const` node is malformed: no `value` tensor, a negative or
    /// unknown dimension, an element count that overflows, a `tensor_content` whose
    /// length is not 4 × the element count, more `float_val` entries than elements, or
    /// broadcasts that would create more than 2²⁴ elements in total, or a value that is
    /// NaN or infinite. The detail names the node. [`Error::TooLarge`] for more than
    /// 1 GiB of bytes or a tensor that cannot be allocated. (The limits are
    /// [`LoadOptions`]'s defaults; [`from_bytes_with`](Self::from_bytes_with) sets them.)
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes_with(bytes, &LoadOptions::default())
    }

    /// As [`from_bytes`](Self::from_bytes), under `opts`: at most `opts.max_bytes`
    /// bytes, `opts.max_broadcast_elements` elements created by broadcasts (checked
    /// over the whole graph before any tensor is allocated), and non-finite values
    /// only with `opts.allow_non_finite`.
    ///
    /// # Errors
    ///
    /// As [`from_bytes`](Self::from_bytes), with `opts`' limits.
    pub fn from_bytes_with(bytes: &[u8], opts: &LoadOptions) -> Result<Self> {
        opts.check_len("GraphDef bytes", bytes.len() as u64)?;
        let graph = GraphDefProto::decode(bytes).map_err(|e| Error::Format {
            format: FORMAT,
            detail: e.to_string(),
        })?;
        check_broadcasts(&graph, opts.max_broadcast_elements)?;
        let mut out = GraphDefWeights::default();
        for node in graph.node {
            if out.index.contains_key(&node.name) {
                return Err(format_error(format!("duplicate node name {:?}", node.name)));
            }
            let mut attrs = BTreeMap::new();
            let mut value = None;
            for (key, attr) in node.attr {
                let kept = match attr.value {
                    Some(AttrValueKind::Tensor(t)) => {
                        if key == "value" {
                            value = Some(t);
                        }
                        TfAttr::Tensor
                    }
                    Some(kind) => convert_attr(kind),
                    None => TfAttr::Other,
                };
                attrs.insert(key, kept);
            }
            if node.op == "Const" {
                let Some(proto) = value else {
                    return Err(format_error(format!(
                        "Const node {:?} has no `value` tensor attribute",
                        node.name
                    )));
                };
                if proto.dtype == DT_FLOAT {
                    let tensor = decode_float_tensor(&node.name, proto)?;
                    opts.check_finite(FORMAT, &node.name, tensor.data.iter().map(|&v| v as f64))?;
                    out.tensors.insert(node.name.clone(), tensor);
                } else {
                    out.other_dtypes.insert(node.name.clone(), proto.dtype);
                }
            }
            out.index.insert(node.name.clone(), out.nodes.len());
            out.nodes.push(TfNode {
                name: node.name,
                op: node.op,
                inputs: node.input,
                attrs,
            });
        }
        Ok(out)
    }

    /// Reads and decodes a frozen graph file, as [`from_bytes`](Self::from_bytes), with
    /// the default [`LoadOptions`].
    ///
    /// # Errors
    ///
    /// As [`from_file_with`](Self::from_file_with).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with(path, &LoadOptions::default())
    }

    /// Reads and decodes a frozen graph file under `opts`: a regular file of at most
    /// `opts.max_bytes`, checked from its metadata before reading (see [`crate::io`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with the path if the file cannot be read or is not a regular file
    /// (a directory, FIFO or device); [`Error::TooLarge`] for a file over the limit;
    /// otherwise those of [`from_bytes_with`](Self::from_bytes_with).
    pub fn from_file_with(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_bytes_with(&crate::io::read_file(path, opts)?, opts)
    }

    /// The float32 constant named `name`, or `None` if there is none (absent, not a
    /// `Const`, or another dtype).
    pub fn get(&self, name: &str) -> Option<&TfTensor> {
        self.tensors.get(name)
    }

    /// The float32 constant named `name`, checked to have shape `expected_shape`.
    ///
    /// # Errors
    ///
    /// - [`Error::Dtype`] if `name` is a `Const` of another dtype (the message names the
    ///   TensorFlow dtype, for example `DT_INT32`);
    /// - [`Error::MissingTensor`] if there is no `Const` named `name`;
    /// - [`Error::ShapeMismatch`] (with `what` = `name`) if its shape differs.
    pub fn tensor(&self, name: &str, expected_shape: &[usize]) -> Result<&TfTensor> {
        let Some(t) = self.tensors.get(name) else {
            if let Some(&dtype) = self.other_dtypes.get(name) {
                return Err(Error::Dtype {
                    name: name.to_string(),
                    expected: dtype_name(DT_FLOAT),
                    got: dtype_name(dtype),
                });
            }
            return Err(Error::MissingTensor {
                name: name.to_string(),
            });
        };
        if t.shape != expected_shape {
            return Err(Error::shape(name, expected_shape, &t.shape));
        }
        Ok(t)
    }

    /// The names of all float32 constants, in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The number of float32 constants.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the graph has no float32 constant.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The node named `name` (any op, tensor data left out), or `None`.
    pub fn node(&self, name: &str) -> Option<&TfNode> {
        self.index.get(name).and_then(|&i| self.nodes.get(i))
    }

    /// All nodes, in graph order.
    pub fn nodes(&self) -> impl Iterator<Item = &TfNode> {
        self.nodes.iter()
    }

    /// The float attribute `attr` of node `node` (for example a `FusedBatchNorm`'s
    /// `"epsilon"`), or `None` if the node or the attribute is absent or the attribute
    /// is not a float.
    pub fn node_attr_f32(&self, node: &str, attr: &str) -> Option<f32> {
        self.node(node).and_then(|n| n.attr_f32(attr))
    }

    /// The names of the nodes whose op type is `op` (for example `"FusedBatchNorm"`), in
    /// graph order.
    pub fn nodes_with_op<'a>(&'a self, op: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.nodes
            .iter()
            .filter(move |n| n.op == op)
            .map(|n| n.name.as_str())
    }
}

// ----------------------------------------------------------------------------------
// Helpers.
// ----------------------------------------------------------------------------------

fn format_error(detail: String) -> Error {
    Error::Format {
        format: FORMAT,
        detail,
    }
}

fn convert_attr(kind: AttrValueKind) -> TfAttr {
    match kind {
        AttrValueKind::F(v) => TfAttr::Float(v),
        AttrValueKind::I(v) => TfAttr::Int(v),
        AttrValueKind::B(v) => TfAttr::Bool(v),
        AttrValueKind::S(v) => TfAttr::Bytes(v),
        AttrValueKind::Type(v) => TfAttr::DataType(v),
        AttrValueKind::Shape(s) => TfAttr::Shape(
            (!s.unknown_rank).then(|| s.dim.iter().map(|d| d.size).collect::<Vec<_>>()),
        ),
        AttrValueKind::List(l) => match (l.i.is_empty(), l.f.is_empty()) {
            (false, true) => TfAttr::Ints(l.i),
            (true, false) => TfAttr::Floats(l.f),
            _ => TfAttr::Other,
        },
        AttrValueKind::Tensor(_) => TfAttr::Tensor,
    }
}

/// Checks that the `float_val` broadcasts of all float `Const` nodes of `graph` create
/// at most `budget` elements in all, before any is allocated. Nodes whose shape is
/// malformed are left to [`decode_float_tensor`] to report.
fn check_broadcasts(graph: &GraphDefProto, budget: u64) -> Result<()> {
    let mut total = 0u64;
    for node in graph.node.iter().filter(|n| n.op == "Const") {
        let Some(AttrValueKind::Tensor(t)) = node.attr.get("value").and_then(|a| a.value.as_ref())
        else {
            continue;
        };
        if t.dtype != DT_FLOAT || !t.tensor_content.is_empty() {
            continue;
        }
        let Ok(dims) = shape_of(&node.name, t) else {
            continue;
        };
        let count = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .unwrap_or(u64::MAX);
        total = total.saturating_add(count.saturating_sub(t.float_val.len() as u64));
        if total > budget {
            return Err(format_error(format!(
                "Const node {:?}: broadcasting float_val to shape {dims:?} brings the elements \
                 created by broadcasts to {total}; the importer allows {budget} in total \
                 (LoadOptions::max_broadcast_elements)",
                node.name
            )));
        }
    }
    Ok(())
}

/// The shape of a TensorProto held by node `node`, each dimension a `usize`.
fn shape_of(node: &str, proto: &TensorProto) -> Result<Vec<usize>> {
    let dims = match &proto.tensor_shape {
        None => Vec::new(),
        Some(s) if s.unknown_rank => {
            return Err(format_error(format!(
                "Const node {node:?}: tensor shape of unknown rank"
            )));
        }
        Some(s) => s.dim.iter().map(|d| d.size).collect::<Vec<_>>(),
    };
    let mut shape = Vec::with_capacity(dims.len());
    for &d in &dims {
        let Ok(d) = usize::try_from(d) else {
            return Err(format_error(format!(
                "Const node {node:?}: invalid dimension {d} in shape {dims:?}"
            )));
        };
        shape.push(d);
    }
    Ok(shape)
}

/// Decodes a `DT_FLOAT` TensorProto held by node `node`; its broadcasts were checked
/// by [`check_broadcasts`].
fn decode_float_tensor(node: &str, proto: TensorProto) -> Result<TfTensor> {
    let shape = shape_of(node, &proto)?;
    let dims = &shape;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            format_error(format!(
                "Const node {node:?}: element count of shape {dims:?} overflows"
            ))
        })?;

    let data = if !proto.tensor_content.is_empty() {
        let content = &proto.tensor_content;
        if count.checked_mul(4) != Some(content.len()) {
            return Err(format_error(format!(
                "Const node {node:?}: tensor_content has {} bytes, but shape {dims:?} \
                 needs {count} float32 = {} bytes",
                content.len(),
                count.saturating_mul(4)
            )));
        }
        let values = content
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        try_collect(node, &shape, values)?
    } else {
        let vals = &proto.float_val;
        if vals.len() > count {
            return Err(format_error(format!(
                "Const node {node:?}: {} float_val entries for shape {dims:?} of {count} elements",
                vals.len()
            )));
        }
        let fill = vals.last().copied().unwrap_or(0.0);
        let mut data = Vec::new();
        try_reserve(&mut data, count, node, &shape)?;
        data.extend_from_slice(vals);
        data.resize(count, fill);
        data
    };
    Ok(TfTensor { shape, data })
}

/// TensorFlow's name of a `DataType` enum value.
fn dtype_name(dtype: i32) -> String {
    let (base, reference) = if dtype > 100 {
        (dtype - 100, "_REF")
    } else {
        (dtype, "")
    };
    let name = match base {
        1 => "DT_FLOAT",
        2 => "DT_DOUBLE",
        3 => "DT_INT32",
        4 => "DT_UINT8",
        5 => "DT_INT16",
        6 => "DT_INT8",
        7 => "DT_STRING",
        8 => "DT_COMPLEX64",
        9 => "DT_INT64",
        10 => "DT_BOOL",
        11 => "DT_QINT8",
        12 => "DT_QUINT8",
        13 => "DT_QINT32",
        14 => "DT_BFLOAT16",
        15 => "DT_QINT16",
        16 => "DT_QUINT16",
        17 => "DT_UINT16",
        18 => "DT_COMPLEX128",
        19 => "DT_HALF",
        20 => "DT_RESOURCE",
        21 => "DT_VARIANT",
        22 => "DT_UINT32",
        23 => "DT_UINT64",
        _ => return format!("DataType({dtype})"),
    };
    format!("{name}{reference}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shape_proto(dims: &[i64]) -> TensorShapeProto {
        TensorShapeProto {
            dim: dims.iter().map(|&size| DimProto { size }).collect(),
            unknown_rank: false,
        }
    }

    fn content_tensor(dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            dtype: DT_FLOAT,
            tensor_shape: Some(shape_proto(dims)),
            tensor_content: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            float_val: Vec::new(),
        }
    }

    fn float_val_tensor(dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            dtype: DT_FLOAT,
            tensor_shape: Some(shape_proto(dims)),
            tensor_content: Vec::new(),
            float_val: values.to_vec(),
        }
    }

    fn const_node(name: &str, t: TensorProto) -> NodeDefProto {
        let mut attr = HashMap::new();
        attr.insert(
            "dtype".to_string(),
            AttrValueProto {
                value: Some(AttrValueKind::Type(t.dtype)),
            },
        );
        attr.insert(
            "value".to_string(),
            AttrValueProto {
                value: Some(AttrValueKind::Tensor(t)),
            },
        );
        NodeDefProto {
            name: name.to_string(),
            op: "Const".to_string(),
            input: Vec::new(),
            attr,
        }
    }

    fn op_node(
        name: &str,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, AttrValueKind)>,
    ) -> NodeDefProto {
        NodeDefProto {
            name: name.to_string(),
            op: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            attr: attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), AttrValueProto { value: Some(v) }))
                .collect(),
        }
    }

    fn encode(nodes: Vec<NodeDefProto>) -> Vec<u8> {
        GraphDefProto { node: nodes }.encode_to_vec()
    }

    /// A small MobileNet-like graph: a placeholder, a conv weight in tensor_content,
    /// BN parameters in both encodings, a FusedBatchNorm with epsilon, an int Const.
    fn sample_graph() -> Vec<u8> {
        let weights: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        encode(vec![
            op_node(
                "input",
                "Placeholder",
                &[],
                vec![
                    ("dtype", AttrValueKind::Type(DT_FLOAT)),
                    ("shape", AttrValueKind::Shape(shape_proto(&[-1, 4, 4, 1]))),
                ],
            ),
            const_node("net/conv/weights", content_tensor(&[2, 2, 1, 3], &weights)),
            op_node(
                "net/conv/Conv2D",
                "Conv2D",
                &["input", "net/conv/weights"],
                vec![
                    ("padding", AttrValueKind::S(b"SAME".to_vec())),
                    (
                        "strides",
                        AttrValueKind::List(ListValueProto {
                            i: vec![1, 2, 2, 1],
                            f: Vec::new(),
                        }),
                    ),
                ],
            ),
            const_node(
                "net/conv/BatchNorm/beta",
                float_val_tensor(&[3], &[0.1, 0.2, 0.3]),
            ),
            const_node(
                "net/conv/BatchNorm/moving_mean",
                float_val_tensor(&[3], &[0.25]),
            ),
            const_node(
                "net/conv/BatchNorm/moving_variance",
                content_tensor(&[3], &[1.0, 2.0, 4.0]),
            ),
            const_node("net/conv/BatchNorm/gamma", float_val_tensor(&[3], &[])),
            op_node(
                "net/conv/BatchNorm/FusedBatchNorm",
                "FusedBatchNorm",
                &[
                    "net/conv/Conv2D",
                    "net/conv/BatchNorm/gamma",
                    "net/conv/BatchNorm/beta",
                    "net/conv/BatchNorm/moving_mean",
                    "net/conv/BatchNorm/moving_variance",
                ],
                vec![
                    ("epsilon", AttrValueKind::F(0.001)),
                    ("is_training", AttrValueKind::B(false)),
                ],
            ),
            const_node(
                "net/Reshape/shape",
                TensorProto {
                    dtype: 3,
                    tensor_shape: Some(shape_proto(&[2])),
                    tensor_content: [-1i32, 3].iter().flat_map(|v| v.to_le_bytes()).collect(),
                    float_val: Vec::new(),
                },
            ),
            const_node("net/scalar", float_val_tensor(&[], &[2.5])),
        ])
    }

    #[test]
    fn round_trip_tensor_content() {
        let g = GraphDefWeights::from_bytes(&sample_graph()).unwrap();
        let w = g.tensor("net/conv/weights", &[2, 2, 1, 3]).unwrap();
        let expected: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        assert_eq!(w.data, expected);
        let var = g
            .tensor("net/conv/BatchNorm/moving_variance", &[3])
            .unwrap();
        assert_eq!(var.data, vec![1.0, 2.0, 4.0]);
    }

    #[test]
    fn float_val_full_broadcast_and_empty() {
        let g = GraphDefWeights::from_bytes(&sample_graph()).unwrap();
        assert_eq!(
            g.get("net/conv/BatchNorm/beta").unwrap().data,
            vec![0.1, 0.2, 0.3]
        );
        assert_eq!(
            g.get("net/conv/BatchNorm/moving_mean").unwrap().data,
            vec![0.25, 0.25, 0.25]
        );
        assert_eq!(
            g.get("net/conv/BatchNorm/gamma").unwrap().data,
            vec![0.0; 3]
        );
        let s = g.tensor("net/scalar", &[]).unwrap();
        assert_eq!(s.data, vec![2.5]);
    }

    #[test]
    fn float_val_shorter_list_repeats_last_value() {
        let bytes = encode(vec![const_node(
            "t",
            float_val_tensor(&[2, 2], &[1.0, 2.0]),
        )]);
        let g = GraphDefWeights::from_bytes(&bytes).unwrap();
        assert_eq!(
            g.tensor("t", &[2, 2]).unwrap().data,
            vec![1.0, 2.0, 2.0, 2.0]
        );
    }

    #[test]
    fn float_val_longer_than_shape_is_an_error() {
        let bytes = encode(vec![const_node(
            "too_many",
            float_val_tensor(&[2], &[1.0, 2.0, 3.0]),
        )]);
        let err = GraphDefWeights::from_bytes(&bytes).unwrap_err();
        match err {
            Error::Format { format, detail } => {
                assert_eq!(format, "GraphDef");
                assert!(detail.contains("too_many"), "{detail}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn huge_broadcast_is_refused() {
        let bytes = encode(vec![const_node(
            "huge",
            float_val_tensor(&[1 << 20, 1 << 10], &[1.0]),
        )]);
        let err = GraphDefWeights::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(&err, Error::Format { detail, .. } if detail.contains("huge")),
            "{err}"
        );
    }

    #[test]
    fn names_nodes_and_attrs() {
        let g = GraphDefWeights::from_bytes(&sample_graph()).unwrap();
        let names: Vec<&str> = g.names().collect();
        assert_eq!(
            names,
            vec![
                "net/conv/BatchNorm/beta",
                "net/conv/BatchNorm/gamma",
                "net/conv/BatchNorm/moving_mean",
                "net/conv/BatchNorm/moving_variance",
                "net/conv/weights",
                "net/scalar",
            ]
        );
        assert_eq!(g.len(), 6);
        assert!(!g.is_empty());
        let bn: Vec<&str> = g.nodes_with_op("FusedBatchNorm").collect();
        assert_eq!(bn, vec!["net/conv/BatchNorm/FusedBatchNorm"]);
        assert_eq!(
            g.node_attr_f32("net/conv/BatchNorm/FusedBatchNorm", "epsilon"),
            Some(0.001)
        );
        assert_eq!(
            g.node_attr_f32("net/conv/BatchNorm/FusedBatchNorm", "is_training"),
            None
        );
        assert_eq!(g.node_attr_f32("nope", "epsilon"), None);
        let bn_node = g.node("net/conv/BatchNorm/FusedBatchNorm").unwrap();
        assert_eq!(bn_node.inputs.len(), 5);
        assert_eq!(bn_node.inputs[1], "net/conv/BatchNorm/gamma");
        assert_eq!(bn_node.attrs.get("is_training"), Some(&TfAttr::Bool(false)));
        let conv = g.node("net/conv/Conv2D").unwrap();
        assert_eq!(conv.attr_ints("strides"), Some(&[1, 2, 2, 1][..]));
        assert_eq!(conv.attr_str("padding"), Some("SAME"));
        assert_eq!(conv.attr_i64("padding"), None);
        let input = g.node("input").unwrap();
        assert_eq!(
            input.attrs.get("shape"),
            Some(&TfAttr::Shape(Some(vec![-1, 4, 4, 1])))
        );
        let consts: Vec<&str> = g.nodes_with_op("Const").collect();
        assert_eq!(consts.len(), 7);
        assert_eq!(g.nodes().count(), 10);
    }

    #[test]
    fn wrong_content_length_names_the_node() {
        let mut t = content_tensor(&[2, 3], &[1.0; 6]);
        t.tensor_content.pop();
        let bytes = encode(vec![const_node("bad/weights", t)]);
        match GraphDefWeights::from_bytes(&bytes) {
            Err(Error::Format { format, detail }) => {
                assert_eq!(format, "GraphDef");
                assert!(detail.contains("bad/weights"), "{detail}");
                assert!(detail.contains("23 bytes"), "{detail}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn negative_dimension_is_an_error() {
        let bytes = encode(vec![const_node("neg", float_val_tensor(&[-1, 2], &[1.0]))]);
        let err = GraphDefWeights::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(&err, Error::Format { detail, .. } if detail.contains("neg")),
            "{err}"
        );
    }

    #[test]
    fn const_without_value_is_an_error() {
        let bytes = encode(vec![op_node(
            "c",
            "Const",
            &[],
            vec![("dtype", AttrValueKind::Type(1))],
        )]);
        let err = GraphDefWeights::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(&err, Error::Format { detail, .. } if detail.contains("\"c\"")),
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_are_an_error() {
        let bytes = encode(vec![
            const_node("x", float_val_tensor(&[1], &[1.0])),
            const_node("x", float_val_tensor(&[1], &[2.0])),
        ]);
        let err = GraphDefWeights::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(&err, Error::Format { detail, .. } if detail.contains("duplicate")),
            "{err}"
        );
    }

    #[test]
    fn non_float_dtype_is_kept_out_and_reported() {
        let g = GraphDefWeights::from_bytes(&sample_graph()).unwrap();
        assert!(g.get("net/Reshape/shape").is_none());
        assert!(g.names().all(|n| n != "net/Reshape/shape"));
        assert_eq!(
            g.tensor("net/Reshape/shape", &[2]),
            Err(Error::Dtype {
                name: "net/Reshape/shape".to_string(),
                expected: "DT_FLOAT".to_string(),
                got: "DT_INT32".to_string(),
            })
        );
        // The node itself is still there.
        assert_eq!(g.node("net/Reshape/shape").unwrap().op, "Const");
    }

    #[test]
    fn missing_tensor() {
        let g = GraphDefWeights::from_bytes(&sample_graph()).unwrap();
        assert_eq!(
            g.tensor("net/conv/biases", &[3]),
            Err(Error::MissingTensor {
                name: "net/conv/biases".to_string()
            })
        );
        // A node that exists but is not a Const is not a tensor either.
        assert!(matches!(
            g.tensor("net/conv/Conv2D", &[1]),
            Err(Error::MissingTensor { .. })
        ));
    }

    #[test]
    fn wrong_shape() {
        let g = GraphDefWeights::from_bytes(&sample_graph()).unwrap();
        assert_eq!(
            g.tensor("net/conv/weights", &[2, 2, 3, 1]),
            Err(Error::ShapeMismatch {
                what: "net/conv/weights".to_string(),
                expected: [2, 2, 3, 1].into(),
                got: [2, 2, 1, 3].into(),
            })
        );
    }

    #[test]
    fn empty_input_is_an_empty_graph() {
        let g = GraphDefWeights::from_bytes(&[]).unwrap();
        assert!(g.is_empty());
        assert_eq!(g.nodes().count(), 0);
    }

    #[test]
    fn truncated_bytes_are_a_format_error() {
        let bytes = sample_graph();
        let mut errors = 0;
        for cut in 1..bytes.len() {
            match GraphDefWeights::from_bytes(&bytes[..cut]) {
                Err(Error::Format { format, detail }) => {
                    assert_eq!(format, "GraphDef");
                    assert!(!detail.is_empty());
                    errors += 1;
                }
                Err(other) => panic!("cut at {cut}: unexpected {other:?}"),
                // A cut exactly at a node boundary is a valid, shorter graph.
                Ok(g) => assert!(g.nodes().count() < 10, "cut at {cut}"),
            }
        }
        assert!(
            errors > bytes.len() / 2,
            "only {errors} of {} cuts failed",
            bytes.len()
        );
        // Cutting inside the last node must fail.
        assert!(GraphDefWeights::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn from_file_reports_the_path() {
        let path = Path::new("/nonexistent/sepconv/graph.pb");
        match GraphDefWeights::from_file(path) {
            Err(Error::Io { path, message }) => {
                assert_eq!(path, "/nonexistent/sepconv/graph.pb");
                assert!(!message.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn from_file_reads_a_graph() {
        let dir = std::env::temp_dir().join(format!("sepconv-tf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.pb");
        std::fs::write(&path, sample_graph()).unwrap();
        let g = GraphDefWeights::from_file(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(g.unwrap().len(), 6);
    }

    #[test]
    fn dtype_names() {
        assert_eq!(dtype_name(1), "DT_FLOAT");
        assert_eq!(dtype_name(19), "DT_HALF");
        assert_eq!(dtype_name(101), "DT_FLOAT_REF");
        assert_eq!(dtype_name(77), "DataType(77)");
        assert_eq!(dtype_name(-3), "DataType(-3)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn garbage_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = GraphDefWeights::from_bytes(&bytes);
        }

        #[test]
        fn corrupted_graph_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = sample_graph();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let keep = cut.index(bytes.len() + 1);
            bytes.truncate(keep);
            if let Err(e) = GraphDefWeights::from_bytes(&bytes) {
                // Every failure on bytes is a format error.
                prop_assert!(matches!(e, Error::Format { format: "GraphDef", .. }), "{e}");
            }
        }
    }
}
