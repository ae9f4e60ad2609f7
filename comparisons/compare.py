#!/usr/bin/env python3
"""Collect the timings of run.sh into one markdown table and results.json.

Reads --raw (written by run.sh): one directory per timing pass, pass1/,
pass2/, …, each holding
  sepconv_mobilenet_A-R_tT.json   `cargo run --example mobilenet -- --json` (forward_ms_median)
  sepconv_layer_*.json            `cargo run --example export -- --time`
  onnxruntime_*.json, tract_*.json,
  candle_*.json, litert_*.json,
  openvino_*.json                 run_ort.py, tract/, candle/, run_litert.py
                                  and run_openvino.py (median_ms,
                                  max_rel_diff per case; "path", what the
                                  engine ran, where it says), one file per case
  fma_peak.json                   fma_peak.rs: one core's f32 FMA peak

Prints the CPU (model name, family/model/stepping, the ISA extensions the
engines choose kernels by) and the path each engine ran, then one table: a
row per engine and thread count, a column per MobileNet
and for the 14x14x512 layer (standard, separable, and standard / separable,
the median over passes of that ratio within a pass).
Each cell is `ms (r×)`: ms the best of the pass medians, r the median over
passes of the ratio engine / sepconv within a pass, at the same thread count
(above 1: slower than sepconv). Within a pass the engines time a case seconds
apart, so the ratio of a pass compares them on nearly the same machine; the
median over passes drops the passes a burst of load decided. Every pass
median and ratio is kept in the JSON. Then the agreement of each
engine with sepconv's outputs (max |diff| / max |ref|), and, when the CPU
has AVX2+FMA, each engine's share of the FMA peak (the higher of the AVX2+FMA
and AVX-512F rates fma_peak.rs measured: on a Zen 4, which splits a 512-bit
FMA in two, they are about equal, and an engine on either ISA can reach the
higher) on the networks:
mult-adds / (time × peak per core × threads), with the floor (the time at
100%). Last, the speed issue's targets (sepconv's time at most 1× ONNX
Runtime's, 0.4× tract's, 0.05× candle's, and 1× the faster of ONNX Runtime
and LiteRT/XNNPACK in each pass), each met or not, and where not, the share
of the peak sepconv would need to meet it. Writes all of it to --json.
"""

import argparse
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path

LAYER = "layer_14x14x512"
ENGINES = ["sepconv", "onnxruntime", "tract", "candle", "litert", "openvino"]
# The speed issue's bounds on sepconv's time over each engine's, or over the
# faster of several engines in the same pass.
TARGETS = [
    (("onnxruntime",), 1.0),
    (("tract",), 0.4),
    (("candle",), 0.05),
    (("onnxruntime", "litert"), 1.0),
]
# The path of an engine whose runner does not report one: what its README
# section says it runs (the tract and candle runners are plain Rust binaries).
KNOWN_PATHS = {
    "tract": "tract-linalg kernels, ISA picked at run time; 2 threads: multithread-mm (matrix products only)",
    "candle": "plain CPU backend (gemm crate), no MKL",
}
# ISA extensions the engines pick kernels by (as /proc/cpuinfo spells them).
ISA_FLAGS = [
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
]


def cpu_info():
    """Model name, family/model/stepping and ISA_FLAGS present, from /proc/cpuinfo."""
    info = {"model_name": platform.processor() or "unknown", "family": None, "model": None, "stepping": None, "isa": []}
    try:
        lines = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0].splitlines()
    except OSError:
        return info
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    info["model_name"] = fields.get("model name", info["model_name"])
    for key, field in (("family", "cpu family"), ("model", "model"), ("stepping", "stepping")):
        if fields.get(field, "").isdigit():
            info[key] = int(fields[field])
    flags = set(fields.get("flags", "").split())
    info["isa"] = [f for f in ISA_FLAGS if f in flags]
    info["isa_missing"] = [f for f in ISA_FLAGS if f not in flags]
    return info


def sepconv_path(cpu):
    """The kernels `Algorithm::Auto` resolves to on this CPU (src/conv/mod.rs)."""
    cap = os.environ.get("SEPCONV_ALGORITHM")
    if cap == "portable":
        return "portable kernels (SEPCONV_ALGORITHM=portable)"
    has = set(cpu["isa"])
    if {"avx2", "fma"} <= has and "avx512f" in has and cap != "avx2":
        return "own AVX-512F kernels (Algorithm::Auto; avx512f in /proc/cpuinfo)"
    if {"avx2", "fma"} <= has:
        return "own AVX2+FMA kernels (Algorithm::Auto" + (", SEPCONV_ALGORITHM=avx2)" if cap == "avx2" else ")")
    return "portable kernels (no AVX2+FMA)"


def model_key(model):
    """Sort 1.0-224 before 0.75-224 before 0.5-160 before 0.25-128, v1 before v2."""
    v2 = model.startswith("v2-")
    alpha, res = model.removeprefix("v2-").split("-")
    return (v2, -float(alpha), -int(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True, type=Path)
    ap.add_argument("--json", required=True, type=Path)
    args = ap.parse_args()

    # times[engine][threads][case] = {pass: ms}; diffs[...] = max rel diff
    times, diffs, versions, paths = {}, {}, {}, {}
    models, madds, peaks, peaks_by_isa = set(), {}, [], {}
    current = None  # the pass being read

    def add(engine, threads, case, ms):
        times.setdefault(engine, {}).setdefault(threads, {}).setdefault(case, {})[current] = ms

    passes = sorted(args.raw.glob("pass*"))
    if not passes:
        sys.exit(f"compare: no pass*/ directories in {args.raw}")
    runs = None
    for raw in passes:
        current = raw.name
        for f in sorted(raw.glob("sepconv_mobilenet_*_t*.json")):
            m = re.fullmatch(r"sepconv_mobilenet_(.+)_t(\d+)\.json", f.name)
            doc = json.loads(f.read_text())
            threads = int(m.group(2))
            if doc["threads"] != threads:
                sys.exit(f"compare: {f} ran on {doc['threads']} threads")
            models.add(m.group(1))
            madds[f"mobilenet_{m.group(1)}"] = doc["mult_adds"]
            add("sepconv", threads, f"mobilenet_{m.group(1)}", doc["forward_ms_median"])
        peak = json.loads((raw / "fma_peak.json").read_text())
        if peak.get("isa"):
            # The faster ISA the CPU has. AVX-512F doubles the rate on CPUs
            # with full-width units; a Zen 4 splits each 512-bit FMA in two,
            # so there its rate is the AVX2 rate, measured a little lower or
            # higher by chance, and XNNPACK or oneDNN on AVX2 kernels could
            # beat an AVX-512 "peak" that happened to be measured low.
            wide = peak.get("avx512f")
            avx2 = (peak["gmacs_per_core"], "AVX2+FMA")
            peaks.append(max((wide, "AVX-512F"), avx2) if wide else avx2)
            peaks_by_isa.setdefault("AVX2+FMA", []).append(peak["gmacs_per_core"])
            if wide:
                peaks_by_isa.setdefault("AVX-512F", []).append(wide)
        for f in sorted(raw.glob("sepconv_layer*.json")):
            layer = json.loads(f.read_text())
            runs = layer["runs"]
            for row in layer["timings"]:
                add("sepconv", row["threads"], f"{LAYER}_standard", row["standard_ms"])
                add("sepconv", row["threads"], f"{LAYER}_separable", row["separable_ms"])
        for engine in ENGINES[1:]:
            files = sorted(raw.glob(f"{engine}*.json"))
            if not files:
                sys.exit(f"compare: no {engine} results in {raw}")
            for f in files:
                doc = json.loads(f.read_text())
                versions[engine] = doc["version"]
                if doc.get("path"):
                    cases_of = paths.setdefault(engine, {}).setdefault(doc["path"], set())
                    cases_of.update(r["case"] for r in doc["results"])
                for r in doc["results"]:
                    add(engine, r["threads"], r["case"], r["median_ms"])
                    d = diffs.setdefault(engine, {}).setdefault(r["threads"], {})
                    d[r["case"]] = max(d.get(r["case"], 0.0), r["max_rel_diff"])

    def passes_of(engine, threads, case):
        return times.get(engine, {}).get(threads, {}).get(case, {})

    def best(engine, threads, case):
        v = passes_of(engine, threads, case)
        return min(v.values()) if v else None

    def pass_ratios(engine, threads, case):
        """engine / sepconv in each pass that timed both."""
        mine, ref = passes_of(engine, threads, case), passes_of("sepconv", threads, case)
        return {p: mine[p] / ref[p] for p in mine if ref.get(p)}

    def median(values):
        v = list(values)
        return statistics.median(v) if v else None

    models = sorted(models, key=model_key)
    cases = [f"mobilenet_{m}" for m in models] + [f"{LAYER}_standard", f"{LAYER}_separable"]
    header = [f"MobileNet {m}" for m in models] + ["14×14×512 standard", "14×14×512 separable", "standard / separable"]

    def cell(ms, ratio):
        if ms is None:
            return "—"
        return f"{ms:.2f} ({ratio:.2f}×)" if ratio else f"{ms:.2f}"

    lines = [
        "| engine | threads | " + " | ".join(header) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in header) + " |",
    ]
    rows = []
    for engine in ENGINES:
        for threads in sorted(times.get(engine, {})):
            cells, record = [], {}
            for case in cases:
                ms, ratios = best(engine, threads, case), pass_ratios(engine, threads, case)
                ratio = median(ratios.values())
                cells.append(cell(ms, ratio))
                record[case] = {
                    "best_ms": ms,
                    "pass_medians_ms": passes_of(engine, threads, case),
                    "pass_ratios_to_sepconv": ratios,
                    "ratio_to_sepconv": ratio,
                    "max_rel_diff": diffs.get(engine, {}).get(threads, {}).get(case),
                }
            # Standard over separable within each pass (timed seconds apart).
            std, sep = passes_of(engine, threads, f"{LAYER}_standard"), passes_of(engine, threads, f"{LAYER}_separable")
            ratio = median(std[p] / sep[p] for p in std if sep.get(p))
            cells.append(f"{ratio:.2f}" if ratio else "—")
            lines.append(f"| {engine} | {threads} | " + " | ".join(cells) + " |")
            rows.append({"engine": engine, "threads": threads, "cases": record, "standard_over_separable": ratio})
    table = "\n".join(lines)

    agree = ["| engine | threads | " + " | ".join(header[:-1]) + " |", "| --- | ---: | " + " | ".join("---:" for _ in header[:-1]) + " |"]
    for engine in ENGINES[1:]:
        for threads in sorted(diffs.get(engine, {})):
            d = diffs[engine][threads]
            agree.append(f"| {engine} | {threads} | " + " | ".join(f"{d[c]:.1e}" if c in d else "—" for c in cases) + " |")
    agreement = "\n".join(agree)

    # Share of the FMA peak: the best pass's peak (the one least disturbed by
    # other load), as the time cells are best-of-passes.
    peak, peak_isa = max(peaks) if peaks else (None, None)
    share_rows, share = [], None
    if peak:
        nets = [c for c in cases if c in madds]
        share = [
            "| engine | threads | " + " | ".join(f"MobileNet {c.split('_', 1)[1]}" for c in nets) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in nets) + " |",
        ]
        all_threads = sorted({t for e in times.values() for t in e})
        for threads in all_threads:
            floor = [madds[c] / (peak * 1e9 * threads) * 1e3 for c in nets]
            share.append(f"| floor (ms at 100%) | {threads} | " + " | ".join(f"{f:.2f}" for f in floor) + " |")
        for engine in ENGINES:
            for threads in sorted(times.get(engine, {})):
                cells, record = [], {}
                for c in nets:
                    ms = best(engine, threads, c)
                    frac = madds[c] / (ms * 1e-3 * peak * 1e9 * threads) if ms else None
                    cells.append(f"{100 * frac:.0f}%" if frac else "—")
                    record[c] = frac
                share.append(f"| {engine} | {threads} | " + " | ".join(cells) + " |")
                share_rows.append({"engine": engine, "threads": threads, "share_of_peak": record})
        share = "\n".join(share)

    # The speed issue's targets: sepconv's time at most `bound` × the
    # engine's (or the fastest of a group's, pass by pass), from the per-pass
    # ratios (sepconv / engine in each pass). Where one is missed, the share
    # of the FMA peak sepconv would need to meet it against the engine's best
    # time (of a group: the best of its engines' best times; above 100%:
    # under the floor).
    def target_name(group):
        return group[0] if len(group) == 1 else f"min({', '.join(group)})"

    def group_ratios(group, threads, case):
        """sepconv / the fastest engine of `group`, in each pass that timed all of them."""
        ref = passes_of("sepconv", threads, case)
        mine = [passes_of(e, threads, case) for e in group]
        return [ref[p] / min(m[p] for m in mine) for p in ref if all(p in m for m in mine)]

    target_rows, targets = [], None
    nets = [c for c in cases if c in madds]
    if nets:
        targets = [
            "| network | threads | "
            + " | ".join(f"sepconv / {target_name(g)} (target ≤ {b:g}×)" for g, b in TARGETS)
            + " |",
            "| --- | ---: | " + " | ".join("---" for _ in TARGETS) + " |",
        ]
        all_threads = sorted(times.get("sepconv", {}))
        for c in nets:
            for threads in all_threads:
                cells, record = [], {}
                for group, bound in TARGETS:
                    r = median(group_ratios(group, threads, c))
                    if r is None:
                        cells.append("—")
                        continue
                    met = r <= bound
                    need = None
                    text = f"{r:.3f}× {'met' if met else 'not met'}"
                    if not met and peak:
                        fastest = min(best(e, threads, c) for e in group)
                        need = madds[c] / (bound * fastest * 1e-3 * peak * 1e9 * threads)
                        floor = ": under the floor" if need > 1 else ""
                        text += f" (needs {100 * need:.0f}% of peak{floor})"
                    cells.append(text)
                    record[target_name(group)] = {"ratio": r, "bound": bound, "met": met, "share_of_peak_needed": need}
                targets.append(f"| {c.split('_', 1)[1]} | {threads} | " + " | ".join(cells) + " |")
                target_rows.append({"case": c, "threads": threads, "targets": record})
        targets = "\n".join(targets)

    cpu = cpu_info()
    engine_paths = {"sepconv": {sepconv_path(cpu): set(cases)}}
    for engine in ENGINES[1:]:
        if engine in paths:
            engine_paths[engine] = paths[engine]
        elif engine in KNOWN_PATHS and engine in times:
            engine_paths[engine] = {f"{KNOWN_PATHS[engine]} (from its README section; the runner does not report it)": set()}
    path_lines = ["| engine | version | path | cases |", "| --- | --- | --- | --- |"]
    for engine, by_path in engine_paths.items():
        for path, on in sorted(by_path.items()):
            which = "all" if len(by_path) == 1 else ", ".join(sorted(on))
            path_lines.append(f"| {engine} | {versions.get(engine, '—')} | {path} | {which} |")
    path_table = "\n".join(path_lines)
    family = "/".join("?" if cpu[k] is None else str(cpu[k]) for k in ("family", "model", "stepping"))
    print(f"CPU: {cpu['model_name']} (family/model/stepping {family}), {os.cpu_count()} logical CPUs")
    print(f"ISA: {' '.join(cpu['isa']) or 'none of the listed'}; not: {' '.join(cpu['isa_missing']) or '—'}")
    if peaks_by_isa:
        print(
            "FMA peak of one core (fma_peak.rs, f32, best of its passes): "
            + ", ".join(f"{isa} {max(v):.1f} GMAC/s" for isa, v in peaks_by_isa.items())
        )
    print("\nWhat each engine ran:\n")
    print(path_table)
    print()
    print(
        f"Forward time in ms, best of {len(passes)} pass medians of {runs} runs each (in parentheses: "
        "the median over passes of the time over sepconv's in the same pass, at the same thread "
        "count; above 1× is slower than sepconv):\n"
    )
    print(table)
    print("\nAgreement with sepconv's outputs, max |diff| / max |ref| (must be ≤ 1e-4):\n")
    print(agreement)
    if share:
        print(
            f"\nShare of the FMA peak ({peak:.1f} GMAC/s per core, {peak_isa}, best of {len(peaks)} "
            f"pass{'es' if len(peaks) > 1 else ''} of fma_peak.rs): mult-adds / (best time × peak × threads):\n"
        )
        print(share)
    if targets:
        print(
            "\nThe speed issue's targets: sepconv's time over the engine's, the median over passes "
            "of the ratio within a pass; where one is not met, the share of the FMA peak sepconv "
            "would need to meet it against that engine's best time:\n"
        )
        print(targets)
    doc = {
        "machine": {
            "cpu": cpu["model_name"],
            "cpu_family": cpu["family"],
            "cpu_model": cpu["model"],
            "cpu_stepping": cpu["stepping"],
            "isa": cpu["isa"],
            "isa_missing": cpu["isa_missing"],
            "logical_cpus": os.cpu_count(),
            "python": platform.python_version(),
            "fma_peak_gmacs_per_core": peak,
            "fma_peak_isa": peak_isa,
            "fma_peak_pass_values": [p for p, _ in peaks],
            "fma_peak_by_isa": {isa: max(v) for isa, v in peaks_by_isa.items()},
        },
        "versions": versions,
        "paths": {e: {p: sorted(on) for p, on in by.items()} for e, by in engine_paths.items()},
        "paths_markdown": path_table,
        "runs": runs,
        "passes": len(passes),
        "cases": cases,
        "rows": rows,
        "table_markdown": table,
        "agreement_markdown": agreement,
        "mult_adds": madds,
        "share_of_peak": share_rows,
        "share_of_peak_markdown": share,
        "targets": target_rows,
        "targets_markdown": targets,
    }
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
