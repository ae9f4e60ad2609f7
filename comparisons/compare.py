#!/usr/bin/env python3
"""Collect the timings of run.sh into one markdown table and results.json.

Reads --raw (written by run.sh): one directory per timing pass, pass1/,
pass2/, …, each holding
  sepconv_mobilenet_A-R_tT.json   `cargo run --example mobilenet -- --json` (forward_ms_median)
  sepconv_layer.json              `cargo run --example export -- --time`
  onnxruntime.json, tract.json,   run_ort.py, tract/ and candle/
  candle.json                     (median_ms, max_rel_diff per case)
  fma_peak.json                   fma_peak.rs: one core's f32 FMA peak

Prints one table: a row per engine and thread count, a column per MobileNet
and for the 14x14x512 layer (standard, separable, and standard / separable).
Each cell is `ms (r×)`: ms the best of the pass medians, r = that time /
sepconv's at the same thread count (above 1: slower than sepconv). Every
pass median is kept in the JSON. Then the agreement of each
engine with sepconv's outputs (max |diff| / max |ref|), and, when the CPU
has AVX2+FMA, each engine's share of the FMA peak on the networks:
mult-adds / (time × peak per core × threads), with the floor (the time at
100%). Writes all of it to --json.
"""

import argparse
import json
import platform
import re
import sys
from pathlib import Path

LAYER = "layer_14x14x512"
ENGINES = ["sepconv", "onnxruntime", "tract", "candle"]


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def model_key(model):
    """Sort 1.0-224 before 0.75-224 before 0.5-160 before 0.25-128."""
    alpha, res = model.split("-")
    return (-float(alpha), -int(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True, type=Path)
    ap.add_argument("--json", required=True, type=Path)
    args = ap.parse_args()

    # times[engine][threads][case] = [ms of each pass]; diffs[...] = max rel diff
    times, diffs, versions = {}, {}, {}
    models, madds, peaks = set(), {}, []

    def add(engine, threads, case, ms):
        times.setdefault(engine, {}).setdefault(threads, {}).setdefault(case, []).append(ms)

    passes = sorted(args.raw.glob("pass*"))
    if not passes:
        sys.exit(f"compare: no pass*/ directories in {args.raw}")
    runs = None
    for raw in passes:
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
            peaks.append(peak["gmacs_per_core"])
        layer = json.loads((raw / "sepconv_layer.json").read_text())
        runs = layer["runs"]
        for row in layer["timings"]:
            add("sepconv", row["threads"], f"{LAYER}_standard", row["standard_ms"])
            add("sepconv", row["threads"], f"{LAYER}_separable", row["separable_ms"])
        for engine in ENGINES[1:]:
            doc = json.loads((raw / f"{engine}.json").read_text())
            versions[engine] = doc["version"]
            for r in doc["results"]:
                add(engine, r["threads"], r["case"], r["median_ms"])
                d = diffs.setdefault(engine, {}).setdefault(r["threads"], {})
                d[r["case"]] = max(d.get(r["case"], 0.0), r["max_rel_diff"])

    def best(engine, threads, case):
        v = times.get(engine, {}).get(threads, {}).get(case)
        return min(v) if v else None

    models = sorted(models, key=model_key)
    cases = [f"mobilenet_{m}" for m in models] + [f"{LAYER}_standard", f"{LAYER}_separable"]
    header = [f"MobileNet {m}" for m in models] + ["14×14×512 standard", "14×14×512 separable", "standard / separable"]

    def cell(ms, base):
        if ms is None:
            return "—"
        return f"{ms:.2f} ({ms / base:.2f}×)" if base else f"{ms:.2f}"

    lines = [
        "| engine | threads | " + " | ".join(header) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in header) + " |",
    ]
    rows = []
    for engine in ENGINES:
        for threads in sorted(times.get(engine, {})):
            cells, record = [], {}
            for case in cases:
                ms, ref = best(engine, threads, case), best("sepconv", threads, case)
                cells.append(cell(ms, ref))
                record[case] = {
                    "best_ms": ms,
                    "pass_medians_ms": times[engine][threads].get(case),
                    "ratio_to_sepconv": ms / ref if ms is not None and ref else None,
                    "max_rel_diff": diffs.get(engine, {}).get(threads, {}).get(case),
                }
            std, sep = best(engine, threads, f"{LAYER}_standard"), best(engine, threads, f"{LAYER}_separable")
            ratio = std / sep if std and sep else None
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
    peak = max(peaks) if peaks else None
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

    print(
        f"Forward time in ms, best of {len(passes)} pass medians of {runs} runs each (ratio to sepconv "
        "at the same thread count; above 1× is slower than sepconv):\n"
    )
    print(table)
    print("\nAgreement with sepconv's outputs, max |diff| / max |ref| (must be ≤ 1e-4):\n")
    print(agreement)
    if share:
        print(
            f"\nShare of the FMA peak ({peak:.1f} GMAC/s per core, AVX2+FMA, best of {len(peaks)} "
            "passes of fma_peak.rs): mult-adds / (best time × peak × threads):\n"
        )
        print(share)
    doc = {
        "machine": {
            "cpu": cpu_name(),
            "python": platform.python_version(),
            "fma_peak_gmacs_per_core": peak,
            "fma_peak_pass_values": peaks,
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
    }
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
