#!/usr/bin/env python3
"""Per-layer times of one MobileNet: ONNX Runtime's profiler beside sepconv's.

Two steps, which comparisons/layers.sh runs in turn:

`profile`: one pass of ONNX Runtime on one graph of build_onnx.py at one
thread count. The session has run_ort.py's settings (CPU provider,
intra_op_num_threads = T, inter_op_num_threads = 1, ORT_SEQUENTIAL,
ORT_ENABLE_ALL) plus `enable_profiling`. Its first output is checked against
sepconv's with run_ort.py's own check (max |diff| / max |ref| ≤ --tol, else
exit status 1); then --warmup runs, then --runs timed runs. From the trace
`end_profiling()` writes, each node's kernel times (the `"cat": "Node"`
events named `<node>_kernel_time`) are kept run by run: the run a node
event belongs to is the `model_run` event that holds it in time. Writes
--json {"threads", "runs", "max_rel_diff", "loadavg_1min" (at the start),
"model_run_us": [...],
"nodes": [{"name", "op", "us": [...]}]}; the trace itself is deleted.

`table`: reads the passes that layers.sh wrote, sepconv's (`cargo run
--example mobilenet -- --profile --json`: per layer the median over its runs)
and ONNX Runtime's (the `profile` step's), and prints one markdown table per
thread count, with a row per sepconv layer and subtotals: the stem, (v2)
all inverted residual blocks, all depthwise layers (v1), all pointwise 1x1
layers (v1; v2: Conv_1), the classifier (with the pooling before it), total. --json writes
everything, raw medians per pass included.

Mapping ONNX Runtime's nodes onto sepconv's layers. At ORT_ENABLE_ALL ONNX
Runtime folds BatchNorm into the Conv, fuses Conv+Clip (and MobileNetV2's
Conv+Add), rewrites convs to its NCHWc layout and adds layout nodes
(`ReorderOutput`). A fused node is named after a tensor it writes
(`Conv2d_3_pointwise/Relu6:21_nchwc`), and build_onnx.py names every node
and tensor with the sepconv layer first (the part before the first `/`, after
the `MobilenetV1/` scope of the BatchNorm nodes), so a node's layer is read
off its name. A node whose name names no sepconv layer (a layout node) is
counted in the layer of the node run just before it (the first node's: just
after it); the table's notes list these. For MobileNetV2, whose blocks
sepconv profiles whole, the second part of a node's name (`expand`,
`depthwise`, `project`) says which conv of the block it is, and a second
table gives ONNX Runtime's time per kind of conv over the whole network.

Times per pass: sepconv's layer time is its median over the runs of the pass;
ONNX Runtime's is the median over the runs of the sum of the layer's nodes'
kernel times; a subtotal is the sum of its layers' medians (and a row of
the v2 table by kind of conv the sum of its nodes' medians). Over passes, as
in run.sh / compare.py: a time cell is the best of the pass values, the
ratio sepconv / ONNX Runtime is the median over passes of the ratio within
a pass (both engines are timed seconds apart in a pass), so one burst of
load on this shared machine decides neither. GMAC/s = mult-adds / time.
ONNX Runtime's profiler reports whole microseconds, so its times of the
smallest layers (a few µs) are coarse.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import max_rel_diff  # noqa: E402  (the check run.sh uses)

SCOPES = ("MobilenetV1/", "MobilenetV2/")
SUFFIX = "_kernel_time"
# sepconv's summary kinds, as the v2 table by kind of conv names them.
KINDS = {
    "conv": "standard conv (the stem)",
    "depthwise": "depthwise 3×3",
    "pointwise": "pointwise 1×1 (expand, project, Conv_1)",
    "fc": "classifier (pooling, 1×1 conv, Flatten)",
    "layout": "ONNX Runtime's layout nodes",
    "other": "other",
}


# ---------------------------------------------------------------- profile


def profiled_session(path, threads, prefix):
    """run_ort.session's settings, with the profiler on."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = prefix
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def profile(args):
    load = os.getloadavg()[0]
    x = np.load(args.input)
    ref = np.load(args.expected)
    with tempfile.TemporaryDirectory() as tmp:
        sess = profiled_session(args.graph, args.threads, os.path.join(tmp, "ort_profile"))
        feed = {sess.get_inputs()[0].name: x}
        out = sess.get_outputs()[0].name
        got = sess.run([out], feed)[0]
        rel = max_rel_diff(got, ref)
        if not rel <= args.tol:
            sys.exit(f"ort_layers: MISMATCH {args.graph.name}, {args.threads} thread(s): max |diff| / max |ref| = {rel:.3e} > {args.tol:g}")
        for _ in range(args.warmup):
            sess.run([out], feed)
        for _ in range(args.runs):
            sess.run([out], feed)
        trace = json.loads(Path(sess.end_profiling()).read_text())
    runs = sorted((e for e in trace if e.get("cat") == "Session" and e["name"] == "model_run"), key=lambda e: e["ts"])
    # The check's run and the warm-ups come first; keep the timed runs.
    runs = runs[-args.runs :]
    if len(runs) != args.runs:
        sys.exit(f"ort_layers: the trace has {len(runs)} model_run events, expected at least {args.runs}")
    nodes = {}  # name -> {"op", "us": [per run]}; dicts keep the execution order
    for i, run in enumerate(runs):
        start, end = run["ts"], run["ts"] + run["dur"]
        for e in trace:
            if e.get("cat") != "Node" or not e["name"].endswith(SUFFIX) or not start <= e["ts"] <= end:
                continue
            name = e["name"][: -len(SUFFIX)]
            node = nodes.setdefault(name, {"name": name, "op": e["args"].get("op_name"), "us": []})
            if len(node["us"]) != i:
                sys.exit(f"ort_layers: node {name} runs {len(node['us'])} times in the first {i} runs")
            node["us"].append(e["dur"])
    for node in nodes.values():
        if len(node["us"]) != args.runs:
            sys.exit(f"ort_layers: node {node['name']} ran in {len(node['us'])} of {args.runs} runs")
    doc = {
        "engine": "onnxruntime",
        "version": ort.__version__,
        "graph": args.graph.name,
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "max_rel_diff": rel,
        "loadavg_1min": load,
        "model_run_us": [r["dur"] for r in runs],
        "nodes": list(nodes.values()),
    }
    args.json.write_text(json.dumps(doc) + "\n")
    total = sum(statistics.median(n["us"]) for n in nodes.values())
    print(
        f"ort_layers: {args.graph.name}, {args.threads} thread(s): {len(nodes)} nodes, "
        f"sum of kernel medians {total / 1e3:.2f} ms, max rel diff {rel:.2e}",
        file=sys.stderr,
    )


# ---------------------------------------------------------------- table


def layer_of(node_name, layers, parts):
    """(sepconv layer, part) that an ORT node name belongs to, or (None, None).

    The part is the longest leading run of `/` segments that names one of
    sepconv's summary rows (`expanded_conv_4/depthwise` of
    `expanded_conv_4/depthwise/Relu6:39_nchwc`, `Conv2d_0` of
    `Conv2d_0/Relu6:3_nchwc`), else the layer and the next segment
    (`Logits/AvgPool`).
    """
    name = node_name
    for scope in SCOPES:
        if name.startswith(scope):
            name = name[len(scope) :]
    segments = name.split(":", 1)[0].split("/")
    if segments[0] not in layers:
        return None, None
    for k in range(len(segments), 0, -1):
        part = "/".join(segments[:k])
        if part in parts:
            return segments[0], part
    return segments[0], "/".join(segments[:2])


def map_nodes(nodes, layers, parts):
    """Each node's layer and part, in execution order; layout nodes join a neighbour."""
    mapped = [(n, *layer_of(n["name"], layers, parts)) for n in nodes]
    out, orphans, last = [], [], None
    for i, (n, layer, part) in enumerate(mapped):
        if layer is None:
            host = last or next((l for _, l, _ in mapped[i + 1 :] if l), None)
            if host is None:
                sys.exit(f"ort_layers: no node of the profile names a sepconv layer ({n['name']})")
            orphans.append({"node": n["name"], "op": n["op"], "counted_in": host})
            out.append((n, host, None))
        else:
            out.append((n, layer, part))
            last = layer
    return out, orphans


def group_of(index, layer, kinds):
    """stem / depthwise / pointwise / block / classifier for a sepconv layer."""
    if index == 0:
        return "stem"
    if layer == "Logits":
        return "classifier"
    ks = set(kinds)
    if ks == {"depthwise"}:
        return "depthwise"
    if ks == {"pointwise"}:
        return "pointwise"
    return "block"


def med(xs):
    return float(statistics.median(xs))


def fmt_us(us):
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def gmacs(macs, us):
    return macs / (us * 1e3) if us > 0 else float("nan")


def plural(n, one, many):
    return f"{n} {one if n == 1 else many}"


def table(args):
    sep = [json.loads(Path(p).read_text()) for p in args.sepconv]
    orr = [json.loads(Path(p).read_text()) for p in args.ort]
    if len(sep) != len(orr) or not sep:
        sys.exit("ort_layers: give as many --sepconv files as --ort files, pass by pass, at least one")
    first = sep[0]
    names = [l["name"] for l in first["layers"]]
    layers = set(names)
    part_kind = {p["name"]: p["kind"] for p in first["parts"]}
    part_macs = {p["name"]: p["mult_adds"] for p in first["parts"]}
    kinds = {l: [k for p, k in part_kind.items() if p == l or p.startswith(l + "/")] for l in names}
    groups = {l: group_of(i, l, kinds[l]) for i, l in enumerate(names)}
    batch = first["batch"]

    by_threads = {}
    for s, o in zip(sep, orr):
        if s["threads"] != o["threads"]:
            sys.exit(f"ort_layers: a pass pairs sepconv at {s['threads']} thread(s) with ONNX Runtime at {o['threads']}")
        if [l["name"] for l in s["layers"]] != names:
            sys.exit("ort_layers: the sepconv files are not all of one model")
        by_threads.setdefault(s["threads"], []).append((s, o))

    doc = {
        "model": args.model,
        "cpu": first["cpu"],
        "sepconv": {k: first[k] for k in ("version", "alpha", "resolution", "classes", "batch", "seed", "runs", "mult_adds")},
        "onnxruntime": {"version": orr[0]["version"], "runs": orr[0]["runs"], "warmup": orr[0]["warmup"]},
        "tables": [],
    }
    cpu = first["cpu"]
    isa = cpu.get("x86") or {}
    isa_text = ", ".join(k for k in ("avx2", "fma", "avx512f") if isa.get(k)) or "no AVX2"
    print(f"CPU: {cpu.get('model') or 'unknown'} ({isa_text}; {cpu.get('logical_cores')} logical cores)")
    loads = [o["loadavg_1min"] for o in orr]
    print(
        f"ONNX Runtime {orr[0]['version']}; sepconv's and ONNX Runtime's runs per pass: {first['runs']} and {orr[0]['runs']}; "
        f"1-minute load average {min(loads):.1f} to {max(loads):.1f} at the passes' start"
    )

    for threads, passes in sorted(by_threads.items()):
        # Per pass: per layer (sepconv ms -> us, ORT us), per part kind (ORT).
        per_pass = []
        orphans = []
        for s, o in passes:
            mapped, orphans = map_nodes(o["nodes"], layers, part_kind)
            runs = o["runs"]
            ort_layer = {l: [0.0] * runs for l in names}
            ort_kind = {}
            for n, layer, part in mapped:
                for r, us in enumerate(n["us"]):
                    ort_layer[layer][r] += us
                kind = "layout" if part is None else part_kind.get(part, "other")
                ort_kind[kind] = ort_kind.get(kind, 0.0) + med(n["us"])
            per_pass.append(
                {
                    "sepconv_us": {l["name"]: l["median_ms"] * 1e3 for l in s["layers"]},
                    "ort_us": {l: med(v) for l, v in ort_layer.items()},
                    "ort_kind_us": ort_kind,
                    "ort_model_run_us": med(o["model_run_us"]),
                    "max_rel_diff": o["max_rel_diff"],
                    "loadavg_1min": o["loadavg_1min"],
                }
            )

        def cell(members, macs):
            """Best over passes of both engines' sums, and the median ratio within a pass."""
            sv = [sum(p["sepconv_us"][m] for m in members) for p in per_pass]
            ov = [sum(p["ort_us"][m] for m in members) for p in per_pass]
            return {
                "sepconv_us": min(sv),
                "onnxruntime_us": min(ov),
                "ratio": med([a / b for a, b in zip(sv, ov)]),
                "mult_adds": macs,
                "sepconv_gmacs": gmacs(macs, min(sv)),
                "onnxruntime_gmacs": gmacs(macs, min(ov)),
                "passes_sepconv_us": sv,
                "passes_onnxruntime_us": ov,
            }

        rows = []
        for l in first["layers"]:
            c = cell([l["name"]], l["mult_adds"] * batch)
            c.update({"layer": l["name"], "output": l["output"], "group": groups[l["name"]]})
            rows.append(c)
        def several(what):
            return lambda n, ms: f"the {what} {ms[0]}" if n == 1 else f"all {n} {what}s"

        labels = {
            "stem": lambda n, ms: f"stem ({', '.join(ms)})",
            "depthwise": several("depthwise layer"),
            "pointwise": several("pointwise 1×1 layer"),
            "block": several("inverted residual block"),
            "classifier": lambda n, ms: "classifier (pooling + 1×1 conv)",
        }
        subtotals = []
        for g in ("stem", "block", "depthwise", "pointwise", "classifier"):
            members = [l for l in names if groups[l] == g]
            if members:
                macs = sum(r["mult_adds"] for r in rows if r["layer"] in members)
                c = cell(members, macs)
                c.update({"group": g, "label": labels[g](len(members), members), "layers": members})
                subtotals.append(c)
        total = cell(names, sum(r["mult_adds"] for r in rows))
        total.update({"group": "total", "label": "total (sum of the layers)", "layers": names})
        subtotals.append(total)

        print(f"\n### {args.model}, {plural(threads, 'thread', 'threads')}: best of {len(passes)} pass(es), ratio the median over passes\n")
        print("| layer | output | mult-adds | sepconv µs | GMAC/s | ONNX Runtime µs | GMAC/s | sepconv / ORT |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            h, w, c = r["output"]
            print(
                f"| {r['layer']} | {h}×{w}×{c} | {r['mult_adds']:,} | {fmt_us(r['sepconv_us'])} | {r['sepconv_gmacs']:.1f} "
                f"| {fmt_us(r['onnxruntime_us'])} | {r['onnxruntime_gmacs']:.1f} | {r['ratio']:.2f}× |"
            )
        for t in subtotals:
            print(
                f"| **{t['label']}** | | {t['mult_adds']:,} | {fmt_us(t['sepconv_us'])} | {t['sepconv_gmacs']:.1f} "
                f"| {fmt_us(t['onnxruntime_us'])} | {t['onnxruntime_gmacs']:.1f} | {t['ratio']:.2f}× |"
            )

        kind_rows = []
        if "block" in groups.values():
            # sepconv times a block whole: ONNX Runtime's time per kind of conv.
            kind_macs = {}
            for p, k in part_kind.items():
                kind_macs[k] = kind_macs.get(k, 0) + part_macs[p] * batch
            print(f"\nONNX Runtime by kind of conv, over the whole network (sepconv profiles each block whole, so has no such split):\n")
            print("| kind | mult-adds | ONNX Runtime µs | GMAC/s |")
            print("| --- | ---: | ---: | ---: |")
            for k in sorted({k for p in per_pass for k in p["ort_kind_us"]}, key=lambda k: (k not in KINDS, list(KINDS).index(k) if k in KINDS else k)):
                us = min(p["ort_kind_us"].get(k, 0.0) for p in per_pass)
                macs = kind_macs.get(k, 0)
                kind_rows.append({"kind": k, "mult_adds": macs, "onnxruntime_us": us})
                rate = f"{gmacs(macs, us):.1f}" if macs else ""
                print(f"| {KINDS.get(k, k)} | {macs:,} | {fmt_us(us)} | {rate} |")

        model_run = min(p["ort_model_run_us"] for p in per_pass)
        rels = [p["max_rel_diff"] for p in per_pass]
        print(
            f"\nONNX Runtime's whole profiled run (its model_run events): best median {model_run / 1e3:.2f} ms, "
            f"against {total['onnxruntime_us'] / 1e3:.2f} ms in its kernels (the rest is between and around them). "
            f"Agreement with sepconv's logits, max |diff| / max |ref|: {max(rels):.1e} (worst pass)."
        )
        if orphans:
            listed = ", ".join(f"{o['node']} ({o['op']}) in {o['counted_in']}" for o in orphans)
            print(f"ONNX Runtime nodes that name no sepconv layer, counted in the layer run before them: {listed}.")
        doc["tables"].append(
            {
                "threads": threads,
                "passes": len(passes),
                "rows": rows,
                "subtotals": subtotals,
                "onnxruntime_by_kind": kind_rows,
                "onnxruntime_model_run_us": model_run,
                "max_rel_diff": max(rels),
                "unmapped_nodes": orphans,
                "per_pass": per_pass,
            }
        )
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"ort_layers: written: {args.json}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("profile", help="one profiled pass of ONNX Runtime")
    p.add_argument("--graph", required=True, type=Path, help="an .onnx from build_onnx.py")
    p.add_argument("--input", required=True, type=Path, help="its NCHW input (.npy)")
    p.add_argument("--expected", required=True, type=Path, help="sepconv's output for it (.npy)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--tol", type=float, default=1e-4, help="max |diff| / max |ref| allowed")
    p.add_argument("--json", required=True, type=Path)
    t = sub.add_parser("table", help="the markdown tables from the passes")
    t.add_argument("--model", required=True, help="the model's name, for the headings")
    t.add_argument("--sepconv", required=True, nargs="+", help="sepconv's --profile --json files, one per pass and thread count")
    t.add_argument("--ort", required=True, nargs="+", help="the profile step's files, in the same order")
    t.add_argument("--json", type=Path, help="write the tables and the pass data here")
    args = ap.parse_args()
    if args.step == "profile":
        if args.runs < 1 or args.warmup < 0:
            sys.exit("ort_layers: --runs must be ≥ 1 and --warmup ≥ 0")
        profile(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
