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

import importlib.metadata
import sys
from pathlib import Path

from ai_edge_litert import interpreter as litert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import arguments, cases, check, finish, median_ms, threads_of  # noqa: E402


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
    ap = arguments(__doc__.splitlines()[0], "comma-separated thread counts (num_threads)")
    ap.add_argument("--no-xnnpack", action="store_true", help="builtin kernels without the default XNNPACK delegate (a check, not for the table)")
    args = ap.parse_args()
    xnnpack = not args.no_xnnpack

    results, failures, paths = [], [], set()
    for name, model, x, ref in cases(args.manifest):
        for t in threads_of(args):
            it = interpreter(model, t, xnnpack)
            path, whole = path_of(it)
            if xnnpack and not whole:
                failures.append(f"{name}, {t} thread(s): {path}")
                print(f"run_litert: NOT FULLY DELEGATED {failures[-1]}", file=sys.stderr)
                continue
            paths.add(path.split(":")[0])
            i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
            it.set_tensor(i, x)
            it.invoke()
            rel = check("run_litert", f"{name}, {t} thread(s)", it.get_tensor(o), ref, args.tol, failures)
            if rel is None:
                continue
            ms = median_ms(it.invoke, args.warmup, args.runs)
            results.append({"case": name, "threads": t, "median_ms": ms, "runs": args.runs, "max_rel_diff": rel, "path": path})
            print(f"run_litert: {name:34} {t} thread(s) {ms:9.3f} ms   max rel diff {rel:.2e}   {path}", file=sys.stderr)
    doc = {
        "engine": "litert" if xnnpack else "litert-builtin",
        "version": importlib.metadata.version("ai-edge-litert"),
        "path": "; ".join(sorted(paths)),
        "results": results,
    }
    why = "outputs disagree with sepconv's, or the model did not run as asked"
    finish("run_litert", failures, why, doc, args.json)


if __name__ == "__main__":
    main()
