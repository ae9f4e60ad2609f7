#!/usr/bin/env python3
"""Run every graph of manifest.tsv (from build_onnx.py) in ONNX Runtime.

For each graph and each thread count: a session with intra_op_num_threads = T,
inter_op_num_threads = 1, sequential execution and all graph optimizations;
the output is checked against sepconv's (max |diff| / max |ref| must be at
most --tol, else this exits with status 1 naming the graph), then the median
of --runs timed runs after --warmup runs is taken. Only `session.run` is
timed; the NCHW input is prepared beforehand.

Prints, and writes to --json, {"engine", "version", "path", "results":
[{"case", "threads", "median_ms", "runs", "max_rel_diff"}]}; "path" names
the execution providers the sessions ran (`get_providers()`).
"""

import sys
from pathlib import Path

import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import arguments, cases, check, finish, median_ms, threads_of  # noqa: E402


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def main():
    args = arguments(__doc__.splitlines()[0], "comma-separated intra-op thread counts").parse_args()
    results, failures, providers = [], [], set()
    for name, graph, x, ref in cases(args.manifest):
        for t in threads_of(args):
            sess = session(graph, t)
            providers.update(sess.get_providers())
            feed = {sess.get_inputs()[0].name: x}
            out = sess.get_outputs()[0].name
            got = sess.run([out], feed)[0]
            rel = check("run_ort", f"{name}, {t} thread(s)", got, ref, args.tol, failures)
            if rel is None:
                continue
            ms = median_ms(lambda: sess.run([out], feed), args.warmup, args.runs)
            results.append({"case": name, "threads": t, "median_ms": ms, "runs": args.runs, "max_rel_diff": rel})
            print(f"run_ort: {name:34} {t} thread(s) {ms:9.3f} ms   max rel diff {rel:.2e}", file=sys.stderr)
    doc = {
        "engine": "onnxruntime",
        "version": ort.__version__,
        "path": ", ".join(sorted(providers)) + " (MLAS kernels, ISA picked at run time)",
        "results": results,
    }
    finish("run_ort", failures, "outputs disagree with sepconv's", doc, args.json)


if __name__ == "__main__":
    main()
