#!/usr/bin/env python3
"""Collect the timings of run.sh into one markdown table and results.json.

Reads --raw (written by run.sh): one directory per timing pass, pass1/,
pass2/, …, each holding
  sepconv_mobilenet_A-R_tT.json   `cargo run --example mobilenet -- --json` (forward_ms_median)
  sepconv_layer_*.json            `cargo run --example export -- --time`
  onnxruntime_*.json, tract_*.json,
  candle_*.json                   run_ort.py, tract/ and candle/ (median_ms,
                                  max_rel_diff per case), one file per case
  fma_peak.json                   fma_peak.rs: one core's f32 FMA peak

Prints one table: a row per engine and thread count, a column per MobileNet
and for the 14x14x512 layer (standard, separable, and standard / separable,
the median over passes of that ratio within a pass).
Each cell is `ms (r×)`: ms the best of the pass medians, r the median over
passes of the ratio engine / sepconv within a pass, at the same thread count
(above 1: slower than sepconv). Within a pass the engines time a case seconds
apart, so the ratio of a pass compares them on nearly the same machine; the
median over passes drops the passes a burst of load decided. Every pass
median and ratio is kept in the JSON. Then the agreement of each
engine with sepconv's outputs (max |diff| / max |ref|), and, when the CPU
has AVX2+FMA, each engine's share of the FMA peak (of AVX-512F where the CPU
has it, else of AVX2+FMA) on the networks:
mult-adds / (time × peak per core × threads), with the floor (the time at
100%). Last, the speed issue's targets (sepconv's time at most 1× ONNX
Runtime's, 0.4× tract's, 0.05× candle's), each met or not, and where not, the
share of the peak sepconv would need to meet it. Writes all of it to --json.
"""

import argparse
import json
import platform
import re
import statistics
import sys
from pathlib import Path

LAYER = "layer_14x14x512"
ENGINES = ["sepconv", "onnxruntime", "tract", "candle"]
# The speed issue's bounds on sepconv's time over each engine's.
TARGETS = [("onnxruntime", 1.0), ("tract", 0.4), ("candle", 0.05)]


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
    times, diffs, versions = {}, {}, {}
    models, madds, peaks = set(), {}, []
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
            # The widest ISA the CPU has: AVX-512F where present (sepconv and
            # ONNX Runtime both run AVX-512 kernels there), else AVX2+FMA.
            wide = peak.get("avx512f")
            peaks.append((wide, "AVX-512F") if wide else (peak["gmacs_per_core"], "AVX2+FMA"))
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
    # engine's, from the per-pass ratios (sepconv / engine in each pass).
    # Where one is missed, the share of the FMA peak sepconv would need to
    # meet it against the engine's best time (above 100%: under the floor).
    target_rows, targets = [], None
    nets = [c for c in cases if c in madds]
    if nets:
        targets = [
            "| network | threads | "
            + " | ".join(f"sepconv / {e} (target ≤ {b:g}×)" for e, b in TARGETS)
            + " |",
            "| --- | ---: | " + " | ".join("---" for _ in TARGETS) + " |",
        ]
        all_threads = sorted(times.get("sepconv", {}))
        for c in nets:
            for threads in all_threads:
                cells, record = [], {}
                for engine, bound in TARGETS:
                    ratios = pass_ratios(engine, threads, c)
                    r = median(1 / v for v in ratios.values())
                    if r is None:
                        cells.append("—")
                        continue
                    met = r <= bound
                    need = None
                    text = f"{r:.3f}× {'met' if met else 'not met'}"
                    if not met and peak:
                        need = madds[c] / (bound * best(engine, threads, c) * 1e-3 * peak * 1e9 * threads)
                        floor = ": under the floor" if need > 1 else ""
                        text += f" (needs {100 * need:.0f}% of peak{floor})"
                    cells.append(text)
                    record[engine] = {"ratio": r, "bound": bound, "met": met, "share_of_peak_needed": need}
                targets.append(f"| {c.split('_', 1)[1]} | {threads} | " + " | ".join(cells) + " |")
                target_rows.append({"case": c, "threads": threads, "targets": record})
        targets = "\n".join(targets)

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
            "cpu": cpu_name(),
            "python": platform.python_version(),
            "fma_peak_gmacs_per_core": peak,
            "fma_peak_isa": peak_isa,
            "fma_peak_pass_values": [p for p, _ in peaks],
        },
        "versions": versions,
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
