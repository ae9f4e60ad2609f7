#!/usr/bin/env python3
"""Build ONNX graphs from the tensors `examples/export.rs` wrote.

For every `mobilenet_A-R.safetensors` in --data it writes the MobileNet v1
graph, for every `mobilenet_v2-A-R.safetensors` the MobileNetV2 graph; for
the 14x14x512 layer files it writes two graphs, the standard 3x3 conv and the
separable pair. ONNX is NCHW, so:

- conv weights HWIO [kh, kw, Cin, Cout] become OIHW [Cout, Cin, kh, kw];
- depthwise weights [kh, kw, C, m] become [C*m, 1, kh, kw], a Conv with
  group = C (output channel c*m + j, as in sepconv and TensorFlow);
- pointwise weights [Cin, Cout] (or [1, 1, Cin, Cout]) become [Cout, Cin, 1, 1];
- TensorFlow SAME padding is written out as explicit, possibly asymmetric,
  pads [top, left, bottom, right];
- BatchNorm stays a BatchNormalization node (epsilon 1e-3), so each engine
  folds it itself; ReLU6 is Clip(0, 6); the head is GlobalAveragePool, a 1x1
  Conv with bias, and Flatten to logits [N, classes];
- every node's name starts with the sepconv layer it belongs to, up to the
  first `/` (`Conv2d_3_pointwise`, `expanded_conv_4/depthwise`,
  `Logits/AvgPool`; BatchNorm nodes have the scope before it,
  `MobilenetV1/Conv2d_3_pointwise/BatchNorm`), and so does every tensor a
  node writes: ort_layers.py maps ONNX Runtime's profile onto sepconv's
  layers by these names (a fused node is named after a tensor it writes);
- MobileNetV2's blocks are read off the tensor names (an `expand` conv or
  not, the depthwise stride from the table below), their projections have no
  Clip, and a block that keeps its stride and width ends in an Add of its
  input.

The graphs take NCHW input. The NHWC input is transposed here, once, and
saved next to the graph (`*_input_nchw.npy`), so the transpose is outside
every engine's timed region; the expected output is saved in the graph's
output layout (`*_expected.npy`: logits as they are, layer outputs NCHW).

Writes --out/manifest.tsv: one line per graph, `name<TAB>graph<TAB>input<TAB>expected`
(paths relative to the manifest), read by run_ort.py and tract/.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 13
IR_VERSION = 8  # the IR of opset 13; readable by every engine used here
BN_EPSILON = 1e-3
# Stride of each of the 13 depthwise separable blocks (Table 1 as TF-slim
# ships it: block 13 has stride 1).
BLOCK_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
SCOPE = "MobilenetV1"
V2_SCOPE = "MobilenetV2"
# MobileNetV2's bottleneck sequences (Table 2): (repeats, stride of the first).
V2_SEQUENCES = [(1, 1), (2, 2), (3, 2), (4, 2), (3, 1), (3, 2), (1, 1)]
LAYER = "layer_14x14x512"


def same_pads(size, kernel, stride):
    """TensorFlow SAME on one axis: (output size, pad before, pad after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def hwio_to_oihw(w):
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def depthwise_to_onnx(w):
    kh, kw, c, m = w.shape
    return np.ascontiguousarray(w.reshape(kh, kw, c * m, 1).transpose(2, 3, 0, 1))


class Graph:
    """Accumulates nodes and initializers; tracks the spatial size."""

    def __init__(self, name):
        self.name = name
        self.nodes = []
        self.inits = []
        self.count = 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def fresh(self, base):
        self.count += 1
        return f"{base}:{self.count}"

    def conv(self, x, name, w, size, stride, group=1, bias=None):
        """Conv with TF SAME pads on a square input of side `size`."""
        kh, kw = w.shape[2], w.shape[3]
        oh, top, bottom = same_pads(size, kh, stride)
        _, left, right = same_pads(size, kw, stride)
        inputs = [x, self.const(f"{name}/weights", w)]
        if bias is not None:
            inputs.append(self.const(f"{name}/biases", bias))
        y = self.fresh(name)
        self.nodes.append(
            helper.make_node(
                "Conv",
                inputs,
                [y],
                name=name,
                kernel_shape=[kh, kw],
                strides=[stride, stride],
                pads=[top, left, bottom, right],
                group=group,
            )
        )
        return y, oh

    def bn_relu6(self, x, name, tensors, scope=SCOPE, relu6=True):
        bn = f"{scope}/{name}/BatchNorm"
        parts = [self.const(f"{bn}/{p}", tensors[f"{bn}/{p}"]) for p in ("gamma", "beta", "moving_mean", "moving_variance")]
        y = self.fresh(f"{name}/BatchNorm")
        self.nodes.append(helper.make_node("BatchNormalization", [x, *parts], [y], name=bn, epsilon=BN_EPSILON))
        if not relu6:
            return y
        z = self.fresh(f"{name}/Relu6")
        self.nodes.append(helper.make_node("Clip", [y, "relu6/min", "relu6/max"], [z], name=f"{name}/Relu6"))
        return z

    def save(self, path, in_shape, out_shape, x, y):
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sepconv comparisons/build_onnx.py")
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, path)


def mobilenet(name, tensors, x_nhwc):
    """The MobileNet v1 graph for TF-slim named `tensors`."""
    n, side, _, _ = x_nhwc.shape
    g = Graph(name)
    g.const("relu6/min", np.float32(0.0))
    g.const("relu6/max", np.float32(6.0))
    w0 = tensors[f"{SCOPE}/Conv2d_0/weights"]
    y, size = g.conv("input", "Conv2d_0", hwio_to_oihw(w0), side, 2)
    y = g.bn_relu6(y, "Conv2d_0", tensors)
    for block, stride in enumerate(BLOCK_STRIDES, start=1):
        dw = tensors[f"{SCOPE}/Conv2d_{block}_depthwise/depthwise_weights"]
        y, size = g.conv(y, f"Conv2d_{block}_depthwise", depthwise_to_onnx(dw), size, stride, group=dw.shape[2])
        y = g.bn_relu6(y, f"Conv2d_{block}_depthwise", tensors)
        pw = tensors[f"{SCOPE}/Conv2d_{block}_pointwise/weights"]
        y, size = g.conv(y, f"Conv2d_{block}_pointwise", hwio_to_oihw(pw), size, 1)
        y = g.bn_relu6(y, f"Conv2d_{block}_pointwise", tensors)
    return head(g, y, tensors, SCOPE, n, side)


def head(g, y, tensors, scope, n, side):
    """Global average pooling, the 1x1 classifier with bias, Flatten."""
    # Named under Logits: sepconv's profile counts the pooling in the
    # classifier's row, and ort_layers.py maps nodes to layers by name.
    pooled = g.fresh("Logits/AvgPool")
    g.nodes.append(helper.make_node("GlobalAveragePool", [y], [pooled], name="Logits/AvgPool"))
    w = tensors[f"{scope}/Logits/Conv2d_1c_1x1/weights"]
    b = tensors[f"{scope}/Logits/Conv2d_1c_1x1/biases"]
    y, _ = g.conv(pooled, "Logits/Conv2d_1c_1x1", hwio_to_oihw(w), 1, 1, bias=b)
    g.nodes.append(helper.make_node("Flatten", [y], ["logits"], name="Logits/Flatten", axis=1))
    return g, [n, 3, side, side], [n, w.shape[3]]


def mobilenet_v2(name, tensors, x_nhwc):
    """The MobileNetV2 graph for TF-slim named `tensors`."""
    n, side, _, _ = x_nhwc.shape
    g = Graph(name)
    g.const("relu6/min", np.float32(0.0))
    g.const("relu6/max", np.float32(6.0))
    t = lambda leaf: tensors[f"{V2_SCOPE}/{leaf}"]
    y, size = g.conv("input", "Conv", hwio_to_oihw(t("Conv/weights")), side, 2)
    y = g.bn_relu6(y, "Conv", tensors, V2_SCOPE)
    block = 0
    for repeats, first_stride in V2_SEQUENCES:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            b = "expanded_conv" if block == 0 else f"expanded_conv_{block}"
            x, c_in = y, None
            if f"{V2_SCOPE}/{b}/expand/weights" in tensors:
                w = t(f"{b}/expand/weights")
                c_in = w.shape[2]
                y, size = g.conv(y, f"{b}/expand", hwio_to_oihw(w), size, 1)
                y = g.bn_relu6(y, f"{b}/expand", tensors, V2_SCOPE)
            dw = t(f"{b}/depthwise/depthwise_weights")
            c_in = c_in or dw.shape[2]
            y, size = g.conv(y, f"{b}/depthwise", depthwise_to_onnx(dw), size, stride, group=dw.shape[2])
            y = g.bn_relu6(y, f"{b}/depthwise", tensors, V2_SCOPE)
            pw = t(f"{b}/project/weights")
            y, size = g.conv(y, f"{b}/project", hwio_to_oihw(pw), size, 1)
            y = g.bn_relu6(y, f"{b}/project", tensors, V2_SCOPE, relu6=False)
            if stride == 1 and pw.shape[3] == c_in:
                z = g.fresh(f"{b}/add")
                g.nodes.append(helper.make_node("Add", [y, x], [z], name=f"{b}/add"))
                y = z
            block += 1
    y, size = g.conv(y, "Conv_1", hwio_to_oihw(t("Conv_1/weights")), size, 1)
    y = g.bn_relu6(y, "Conv_1", tensors, V2_SCOPE)
    return head(g, y, tensors, V2_SCOPE, n, side)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="folder written by `cargo run --example export`")
    ap.add_argument("--out", required=True, type=Path, help="folder for the graphs, NCHW inputs and manifest.tsv")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []

    for st in sorted(args.data.glob("mobilenet_*.safetensors")):
        name = st.stem
        tensors = load_file(str(st))
        x = np.load(args.data / f"{name}_input.npy")
        logits = np.load(args.data / f"{name}_logits.npy")
        build = mobilenet_v2 if name.startswith("mobilenet_v2-") else mobilenet
        g, in_shape, out_shape = build(name, tensors, x)
        if list(logits.shape) != out_shape:
            sys.exit(f"build_onnx: {name}: sepconv's logits have shape {logits.shape}, the graph gives {out_shape}")
        g.save(args.out / f"{name}.onnx", in_shape, out_shape, "input", "logits")
        np.save(args.out / f"{name}_input_nchw.npy", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        np.save(args.out / f"{name}_expected.npy", logits)
        rows.append(name)
        print(f"build_onnx: {name}.onnx: {len(g.nodes)} nodes, input {in_shape}, logits {out_shape}")

    layer_input = args.data / f"{LAYER}_input.npy"
    if layer_input.exists():
        x = np.load(layer_input)
        n, h, w, c = x.shape
        x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        for form in ("standard", "separable"):
            name = f"{LAYER}_{form}"
            g = Graph(name)
            if form == "standard":
                wt = np.load(args.data / f"{LAYER}_standard_weights.npy")
                y, _ = g.conv("input", "Conv", hwio_to_oihw(wt), h, 1)
            else:
                dw = np.load(args.data / f"{LAYER}_depthwise_weights.npy")
                pw = np.load(args.data / f"{LAYER}_pointwise_weights.npy")
                y, _ = g.conv("input", "Depthwise", depthwise_to_onnx(dw), h, 1, group=dw.shape[2])
                y, _ = g.conv(y, "Pointwise", hwio_to_oihw(pw[None, None]), h, 1)
            expected = np.load(args.data / f"{LAYER}_{form}_output.npy")
            out_shape = [expected.shape[0], expected.shape[3], expected.shape[1], expected.shape[2]]
            g.save(args.out / f"{name}.onnx", [n, c, h, w], out_shape, "input", y)
            np.save(args.out / f"{name}_input_nchw.npy", x_nchw)
            np.save(args.out / f"{name}_expected.npy", np.ascontiguousarray(expected.transpose(0, 3, 1, 2)))
            rows.append(name)
            print(f"build_onnx: {name}.onnx: {len(g.nodes)} nodes, input {[n, c, h, w]}, output {out_shape}")

    if not rows:
        sys.exit(f"build_onnx: nothing to build in {args.data}")
    with open(args.out / "manifest.tsv", "w") as f:
        for name in rows:
            f.write(f"{name}\t{name}.onnx\t{name}_input_nchw.npy\t{name}_expected.npy\n")


if __name__ == "__main__":
    main()
