#!/usr/bin/env python3
"""Build TFLite models (for LiteRT) from the tensors `examples/export.rs` wrote.

The same networks as build_onnx.py, from the same exported weights, but in
TensorFlow's own terms and layout (NHWC, which is also TFLite's), so no weight
is transposed and no pad is spelled out:

- each network is a `tf.function` of `tf.nn` ops on constant weights:
  `conv2d` (HWIO weights, as exported) and `depthwise_conv2d` (weights
  [kh, kw, C, m], as exported) with padding "SAME", which is TensorFlow's
  SAME, the padding sepconv's `Padding::Same` follows;
- BatchNorm is `tf.nn.batch_normalization` (epsilon 1e-3) on gamma, beta,
  moving mean and variance as exported, not folded here: TFLite's converter
  folds it into the conv weights and biases, as every other engine folds it
  itself; ReLU6 is `tf.nn.relu6` (fused into the conv by the converter);
- the head is `reduce_mean` over H and W, the 1x1 classifier conv with bias,
  and a reshape to logits [N, classes]; MobileNetV2's blocks are read off the
  tensor names exactly as build_onnx.py reads them (expand conv or not,
  linear projection, Add of the input where stride and width are kept);
- `tf.lite.TFLiteConverter.from_concrete_functions` converts it, builtin ops
  only, no optimizations (so every weight and activation stays float32).

Conversion takes seconds per network, so it runs at setup time only, and its
results are cached: --cache/NAME-KEY.tflite, KEY a hash of this script, the
TensorFlow version and the exported weights' names, shapes and values
(seeded, so the same from run to run; not the files' bytes, whose header
order varies). A cached model is copied, not converted again.

Writes --out/NAME.tflite and --out/manifest.tsv: one line per model,
`name<TAB>model<TAB>input<TAB>expected` (paths relative to the manifest; the
NHWC input and expected output are the exported files themselves: logits as
they are, layer outputs NHWC), read by run_litert.py.
"""

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

BN_EPSILON = 1e-3
BLOCK_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
SCOPE = "MobilenetV1"
V2_SCOPE = "MobilenetV2"
V2_SEQUENCES = [(1, 1), (2, 2), (3, 2), (4, 2), (3, 1), (3, 2), (1, 1)]
LAYER = "layer_14x14x512"


def import_tf():
    # Quiet TensorFlow's start-up banner (CUDA probing, CPU feature notes).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import tensorflow as tf

    return tf


def builders(tf):
    """The network builders, closed over the imported TensorFlow module."""

    def conv(x, w, stride, bias=None):
        y = tf.nn.conv2d(x, tf.constant(w), strides=stride, padding="SAME")
        return y if bias is None else tf.nn.bias_add(y, tf.constant(bias))

    def depthwise(x, w, stride):
        return tf.nn.depthwise_conv2d(x, tf.constant(w), strides=[1, stride, stride, 1], padding="SAME")

    def bn(x, tensors, prefix, relu6=True):
        p = {k: tf.constant(tensors[f"{prefix}/BatchNorm/{k}"]) for k in ("gamma", "beta", "moving_mean", "moving_variance")}
        y = tf.nn.batch_normalization(x, p["moving_mean"], p["moving_variance"], p["beta"], p["gamma"], BN_EPSILON)
        return tf.nn.relu6(y) if relu6 else y

    def head(y, tensors, scope):
        y = tf.reduce_mean(y, axis=[1, 2], keepdims=True)
        w = tensors[f"{scope}/Logits/Conv2d_1c_1x1/weights"]
        y = conv(y, w, 1, tensors[f"{scope}/Logits/Conv2d_1c_1x1/biases"])
        return tf.reshape(y, [-1, w.shape[3]])

    def mobilenet(tensors):
        def forward(x):
            t = lambda leaf: tensors[f"{SCOPE}/{leaf}"]
            y = bn(conv(x, t("Conv2d_0/weights"), 2), tensors, f"{SCOPE}/Conv2d_0")
            for block, stride in enumerate(BLOCK_STRIDES, start=1):
                d, p = f"Conv2d_{block}_depthwise", f"Conv2d_{block}_pointwise"
                y = bn(depthwise(y, t(f"{d}/depthwise_weights"), stride), tensors, f"{SCOPE}/{d}")
                y = bn(conv(y, t(f"{p}/weights"), 1), tensors, f"{SCOPE}/{p}")
            return head(y, tensors, SCOPE)

        return forward

    def mobilenet_v2(tensors):
        def forward(x):
            t = lambda leaf: tensors[f"{V2_SCOPE}/{leaf}"]
            y = bn(conv(x, t("Conv/weights"), 2), tensors, f"{V2_SCOPE}/Conv")
            block = 0
            for repeats, first_stride in V2_SEQUENCES:
                for i in range(repeats):
                    stride = first_stride if i == 0 else 1
                    b = "expanded_conv" if block == 0 else f"expanded_conv_{block}"
                    inp, c_in = y, y.shape[3]
                    if f"{V2_SCOPE}/{b}/expand/weights" in tensors:
                        y = bn(conv(y, t(f"{b}/expand/weights"), 1), tensors, f"{V2_SCOPE}/{b}/expand")
                    y = bn(depthwise(y, t(f"{b}/depthwise/depthwise_weights"), stride), tensors, f"{V2_SCOPE}/{b}/depthwise")
                    pw = t(f"{b}/project/weights")
                    y = bn(conv(y, pw, 1), tensors, f"{V2_SCOPE}/{b}/project", relu6=False)
                    if stride == 1 and pw.shape[3] == c_in:
                        y = y + inp
                    block += 1
            y = bn(conv(y, t("Conv_1/weights"), 1), tensors, f"{V2_SCOPE}/Conv_1")
            return head(y, tensors, V2_SCOPE)

        return forward

    def layer(form, data):
        if form == "standard":
            w = np.load(data / f"{LAYER}_standard_weights.npy")
            return lambda x: conv(x, w, 1)
        dw = np.load(data / f"{LAYER}_depthwise_weights.npy")
        pw = np.load(data / f"{LAYER}_pointwise_weights.npy")
        return lambda x: conv(depthwise(x, dw, 1), pw[None, None], 1)

    return mobilenet, mobilenet_v2, layer


def convert(tf, forward, in_shape):
    fn = tf.function(forward, input_signature=[tf.TensorSpec(in_shape, tf.float32, name="input")], autograph=False)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = []
    return converter.convert()


def tf_version():
    """The installed TensorFlow's version, without importing it (slow)."""
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return f"{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            pass
    sys.exit("build_tflite: TensorFlow is not installed (pip install -r comparisons/requirements.txt)")


def cache_key(tf_version, files):
    """A hash of this script, TensorFlow's version and the tensors in `files`.

    Of the tensors, not the files' bytes: the export writes a safetensors
    header's entries in no fixed order, so the same weights can come in
    different bytes from run to run. Each tensor goes in by name, dtype,
    shape and values, in name order.
    """
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(tf_version.encode())
    for f in files:
        tensors = load_file(str(f)) if f.suffix == ".safetensors" else {f.name: np.load(f)}
        for name in sorted(tensors):
            t = np.ascontiguousarray(tensors[name])
            h.update(f"{f.name}/{name} {t.dtype.str} {t.shape}".encode())
            h.update(t.tobytes())
    return h.hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="folder written by `cargo run --example export`")
    ap.add_argument("--out", required=True, type=Path, help="folder for the .tflite models and manifest.tsv")
    ap.add_argument("--cache", required=True, type=Path, help="folder of converted models kept between runs")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    data_rel = Path(os.path.relpath(args.data, args.out))

    # (name, weight files for the cache key, input file, expected file, kind)
    jobs = []
    for st in sorted(args.data.glob("mobilenet_*.safetensors")):
        name = st.stem
        jobs.append((name, [st], f"{name}_input.npy", f"{name}_logits.npy", "v2" if name.startswith("mobilenet_v2-") else "v1"))
    if (args.data / f"{LAYER}_input.npy").exists():
        for form in ("standard", "separable"):
            weights = ["standard_weights"] if form == "standard" else ["depthwise_weights", "pointwise_weights"]
            files = [args.data / f"{LAYER}_{w}.npy" for w in weights]
            jobs.append((f"{LAYER}_{form}", files, f"{LAYER}_input.npy", f"{LAYER}_{form}_output.npy", form))
    if not jobs:
        sys.exit(f"build_tflite: nothing to build in {args.data}")

    tf, version = None, tf_version()
    rows = []
    for name, files, inp, expected, kind in jobs:
        for f in (*files, args.data / inp, args.data / expected):
            if not f.exists():
                sys.exit(f"build_tflite: {name}: {f} is missing (run the export first)")
        x_shape = list(np.load(args.data / inp, mmap_mode="r").shape)
        cached = args.cache / f"{name}-{cache_key(version, files)}.tflite"
        if cached.exists():
            how = "cached"
        else:
            start = time.perf_counter()
            if tf is None:
                tf = import_tf()
                mobilenet, mobilenet_v2, layer = builders(tf)
            if kind in ("v1", "v2"):
                forward = (mobilenet if kind == "v1" else mobilenet_v2)(load_file(str(files[0])))
            else:
                forward = layer(kind, args.data)
            flat = convert(tf, forward, x_shape)
            tmp = cached.with_suffix(".tmp")
            tmp.write_bytes(flat)
            tmp.replace(cached)
            how = f"converted in {time.perf_counter() - start:.1f} s"
        shutil.copyfile(cached, args.out / f"{name}.tflite")
        rows.append(f"{name}\t{name}.tflite\t{data_rel / inp}\t{data_rel / expected}\n")
        print(f"build_tflite: {name}.tflite: input {x_shape}, {cached.stat().st_size / 1e6:.1f} MB, {how}")
    (args.out / "manifest.tsv").write_text("".join(rows))


if __name__ == "__main__":
    main()
