#!/usr/bin/env python3
"""Run every model of manifest.tsv (from build_tflite.py) in LiteRT.

For each model and each thread count: an `ai_edge_litert` Interpreter with
num_threads = T and its default op resolver, which applies the XNNPACK
delegate to float32 graphs (with --no-xnnpack: the builtin kernels without
default delegates, for checking that the delegate is what makes it fast).
Which path ran is read off the interpreter's nodes after allocation: a
DELEGATE node replaces the nodes it took over, so the model runs wholly on
XNNPACK when the delegate nodes produce the model's outputs and take nothing
but the model's input and constants; this exits with status 1 when the
delegate was wanted and took less than that.

The output is checked against sepconv's (max |diff| / max |ref| must be at
most --tol, else this exits with status 1 naming the model), then the median
of --runs timed runs after --warmup runs is taken. Only `invoke` is timed;
the NHWC input is set beforehand and the output read afterwards.

Prints, and writes to --json, {"engine", "version", "path", "results":
[{"case", "threads", "median_ms", "runs", "max_rel_diff", "path"}]}.
"""

import argparse
import importlib.metadata
import json
import sys
import time
from pathlib import Path

import numpy as np
from ai_edge_litert import interpreter as litert


def max_rel_diff(got, ref):
    if got.shape != ref.shape:
        raise SystemExit(f"shape {got.shape} != expected {ref.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref.astype(np.float64))))


def interpreter(path, threads, xnnpack):
    resolver = litert.OpResolverType.AUTO if xnnpack else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = litert.Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def path_of(it):
    """What ran: (text, whole graph delegated?) from the interpreter's nodes."""
    ops = it._get_ops_details()
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    kernels = [o for o in ops if o["op_name"] != "DELEGATE"]
    if not delegates:
        return f"builtin kernels, no delegate ({len(kernels)} nodes)", False
    produced_outside = {int(t) for o in kernels for t in o["outputs"]}
    produced_inside = {int(t) for o in delegates for t in o["outputs"]}
    inputs = {d["index"] for d in it.get_input_details()}
    outputs = {d["index"] for d in it.get_output_details()}
    fed_from_outside = {int(t) for o in delegates for t in o["inputs"]} & produced_outside
    whole = not fed_from_outside and outputs <= produced_inside and inputs <= {int(t) for o in delegates for t in o["inputs"]}
    if whole:
        return f"XNNPACK delegate: all {len(kernels)} nodes in {len(delegates)} partition(s)", True
    return f"XNNPACK delegate on part of the graph ({len(delegates)} partition(s), {len(kernels)} nodes, some on builtin kernels)", False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (num_threads)")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-4, help="max |diff| / max |ref| allowed")
    ap.add_argument("--no-xnnpack", action="store_true", help="builtin kernels without the default XNNPACK delegate (a check, not for the table)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    root = args.manifest.parent
    xnnpack = not args.no_xnnpack

    results, failures, paths = [], [], set()
    for line in args.manifest.read_text().splitlines():
        name, model, inp, expected = line.split("\t")
        x = np.load(root / inp)
        ref = np.load(root / expected)
        for t in threads:
            it = interpreter(root / model, t, xnnpack)
            path, whole = path_of(it)
            if xnnpack and not whole:
                failures.append(f"{name}, {t} thread(s): {path}")
                print(f"run_litert: NOT FULLY DELEGATED {failures[-1]}", file=sys.stderr)
                continue
            paths.add(path.split(":")[0])
            i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
            it.set_tensor(i, x)
            it.invoke()
            got = it.get_tensor(o)
            rel = max_rel_diff(got, ref)
            if not rel <= args.tol:
                failures.append(f"{name}, {t} thread(s): max |diff| / max |ref| = {rel:.3e} > {args.tol:g}")
                print(f"run_litert: MISMATCH {failures[-1]}", file=sys.stderr)
                continue
            for _ in range(args.warmup):
                it.invoke()
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                it.invoke()
                times.append(time.perf_counter() - start)
            ms = float(np.median(times) * 1e3)
            results.append({"case": name, "threads": t, "median_ms": ms, "runs": args.runs, "max_rel_diff": rel, "path": path})
            print(f"run_litert: {name:34} {t} thread(s) {ms:9.3f} ms   max rel diff {rel:.2e}   {path}", file=sys.stderr)

    if failures:
        sys.exit("run_litert: outputs disagree with sepconv's, or the model did not run as asked:\n  " + "\n  ".join(failures))
    doc = {
        "engine": "litert" if xnnpack else "litert-builtin",
        "version": importlib.metadata.version("ai-edge-litert"),
        "path": "; ".join(sorted(paths)),
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
