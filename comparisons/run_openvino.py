#!/usr/bin/env python3
"""Run every graph of manifest.tsv (from build_onnx.py) in OpenVINO.

For each graph and each thread count: the ONNX graph read by
`Core.read_model` and compiled for the CPU device with
INFERENCE_PRECISION_HINT = f32 (the CPU plugin would otherwise run bf16 on a
CPU with AVX512_BF16 or AMX), INFERENCE_NUM_THREADS = T, PERFORMANCE_HINT =
LATENCY and NUM_STREAMS = 1; the compiled model's own properties are read
back, and a compiled model that does not run f32 on T threads in one stream
is an error. The path it runs is read off the compiled model's runtime graph:
the primitive each node runs (e.g. `brgconv_avx512_f32`, oneDNN's kernel
name, ISA included) and its runtime precision; a node whose runtime precision
is not f32 (bf16, f16) is an error.

The output is checked against sepconv's (max |diff| / max |ref| must be at
most --tol, else this exits with status 1 naming the graph), then the median
of --runs timed runs after --warmup runs is taken. Only the infer request's
`infer()` is timed; the NCHW input is bound to it beforehand (a tensor on the
numpy array's memory) and the output read afterwards.

Prints, and writes to --json, {"engine", "version", "path", "results":
[{"case", "threads", "median_ms", "runs", "max_rel_diff", "path"}]}.
"""

import collections
import sys
from pathlib import Path

import numpy as np
import openvino as ov

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import arguments, cases, check, finish, median_ms, threads_of  # noqa: E402


def compile_model(core, path, threads):
    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    got = {
        "INFERENCE_PRECISION_HINT": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
        "INFERENCE_NUM_THREADS": int(compiled.get_property("INFERENCE_NUM_THREADS")),
        "PERFORMANCE_HINT": str(compiled.get_property("PERFORMANCE_HINT")),
        "NUM_STREAMS": int(compiled.get_property("NUM_STREAMS")),
    }
    want = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if got != want:
        raise SystemExit(f"run_openvino: {path.name}: the compiled model has {got}, not {want}")
    # Left at the plugin's defaults, but recorded: on a shared machine a
    # pinned thread cannot move off a core another process keeps busy.
    pinning = {k: str(compiled.get_property(k)) for k in ("ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING")}
    return compiled, pinning


def path_of(compiled):
    """The compiled model's primitives: ({kind: count}, precisions not f32)."""
    kinds, odd = collections.Counter(), set()
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        layer = rt["layerType"].astype(str)
        if layer in ("Input", "Output", "Const"):
            continue
        precision = rt["runtimePrecision"].astype(str)
        if precision != "f32":
            odd.add(f"{layer} {precision}")
        kinds[f"{layer}: {rt['primitiveType'].astype(str)}"] += 1
    return kinds, odd


def main():
    args = arguments(__doc__.splitlines()[0], "comma-separated INFERENCE_NUM_THREADS values").parse_args()
    core = ov.Core()
    if "CPU" not in core.available_devices:
        sys.exit(f"run_openvino: no CPU device (available: {core.available_devices})")

    results, failures, primitives, pinning = [], [], set(), {}
    for name, graph, x, ref in cases(args.manifest):
        x = np.ascontiguousarray(x)
        for t in threads_of(args):
            compiled, pinning = compile_model(core, graph, t)
            kinds, odd = path_of(compiled)
            if odd:
                failures.append(f"{name}, {t} thread(s): nodes not run in f32: {sorted(odd)}")
                print(f"run_openvino: NOT F32 {failures[-1]}", file=sys.stderr)
                continue
            path = ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items()))
            primitives.update(k.split(": ", 1)[1] for k in kinds if k.startswith("Convolution"))
            request = compiled.create_infer_request()
            request.set_input_tensor(ov.Tensor(x, shared_memory=True))
            request.infer()
            got = request.get_output_tensor(0).data.copy()
            rel = check("run_openvino", f"{name}, {t} thread(s)", got, ref, args.tol, failures)
            if rel is None:
                continue
            ms = median_ms(request.infer, args.warmup, args.runs)
            results.append({"case": name, "threads": t, "median_ms": ms, "runs": args.runs, "max_rel_diff": rel, "path": path})
            print(f"run_openvino: {name:34} {t} thread(s) {ms:9.3f} ms   max rel diff {rel:.2e}", file=sys.stderr)
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    doc = {
        "engine": "openvino",
        "version": ov.__version__.split("-")[0],
        "path": f"CPU plugin, f32, convolutions on {', '.join(sorted(primitives)) or 'none'}; "
        f"{', '.join(f'{k} {v}' for k, v in pinning.items())}; "
        f"device {core.get_property('CPU', 'FULL_DEVICE_NAME')}, OPTIMIZATION_CAPABILITIES {', '.join(caps)}",
        "results": results,
    }
    why = "outputs disagree with sepconv's, or the model did not run as asked"
    finish("run_openvino", failures, why, doc, args.json)


if __name__ == "__main__":
    main()
