"""What the engine runners (run_ort.py, run_litert.py, run_openvino.py) share.

Each reads a manifest (name, model, input .npy, expected output .npy per
line, paths relative to the manifest), checks an engine's output against
sepconv's, times it, and prints and writes one JSON document. The output
check, the timing loop and the command line are written once, here.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def max_rel_diff(got, ref):
    """max |got − ref| / max |ref|, in f64; exits when the shapes differ."""
    if got.shape != ref.shape:
        raise SystemExit(f"shape {got.shape} != expected {ref.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref.astype(np.float64))))


def arguments(description, threads_help):
    """The runners' common options; a runner may add its own before parsing."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--threads", default="1,2", help=threads_help)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-4, help="max |diff| / max |ref| allowed")
    ap.add_argument("--json", type=Path, help="also write the results here")
    return ap


def threads_of(args):
    return [int(t) for t in args.threads.split(",")]


def cases(manifest):
    """(name, model path, input, expected output) for each line of the manifest."""
    root = manifest.parent
    for line in manifest.read_text().splitlines():
        name, model, inp, expected = line.split("\t")
        yield name, root / model, np.load(root / inp), np.load(root / expected)


def check(tag, what, got, ref, tol, failures):
    """max_rel_diff(got, ref) when within tol; else None, the mismatch noted in failures."""
    rel = max_rel_diff(got, ref)
    if not rel <= tol:
        failures.append(f"{what}: max |diff| / max |ref| = {rel:.3e} > {tol:g}")
        print(f"{tag}: MISMATCH {failures[-1]}", file=sys.stderr)
        return None
    return rel


def median_ms(run, warmup, runs):
    """The median time of `runs` calls of run() after `warmup` calls, in ms."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def finish(tag, failures, why, doc, json_path):
    """Exits naming the failures, or prints the document (and writes it to json_path)."""
    if failures:
        sys.exit(f"{tag}: {why}:\n  " + "\n  ".join(failures))
    if json_path:
        json_path.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc))
