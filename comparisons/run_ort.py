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

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def max_rel_diff(got, ref):
    if got.shape != ref.shape:
        raise SystemExit(f"shape {got.shape} != expected {ref.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref.astype(np.float64))))


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-4, help="max |diff| / max |ref| allowed")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    root = args.manifest.parent

    results, failures, providers = [], [], set()
    for line in args.manifest.read_text().splitlines():
        name, graph, inp, expected = line.split("\t")
        x = np.load(root / inp)
        ref = np.load(root / expected)
        for t in threads:
            sess = session(root / graph, t)
            providers.update(sess.get_providers())
            feed = {sess.get_inputs()[0].name: x}
            out = sess.get_outputs()[0].name
            got = sess.run([out], feed)[0]
            rel = max_rel_diff(got, ref)
            if not rel <= args.tol:
                failures.append(f"{name}, {t} thread(s): max |diff| / max |ref| = {rel:.3e} > {args.tol:g}")
                print(f"run_ort: MISMATCH {failures[-1]}", file=sys.stderr)
                continue
            for _ in range(args.warmup):
                sess.run([out], feed)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                sess.run([out], feed)
                times.append(time.perf_counter() - start)
            ms = float(np.median(times) * 1e3)
            results.append({"case": name, "threads": t, "median_ms": ms, "runs": args.runs, "max_rel_diff": rel})
            print(f"run_ort: {name:34} {t} thread(s) {ms:9.3f} ms   max rel diff {rel:.2e}", file=sys.stderr)

    if failures:
        sys.exit("run_ort: outputs disagree with sepconv's:\n  " + "\n  ".join(failures))
    doc = {
        "engine": "onnxruntime",
        "version": ort.__version__,
        "path": ", ".join(sorted(providers)) + " (MLAS kernels, ISA picked at run time)",
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
