#!/usr/bin/env python3
"""Collect the timings of run.sh into one markdown table and results.json.

Reads --raw (written by run.sh):
  sepconv_mobilenet_A-R_tT.json   `cargo run --example mobilenet -- --json` (forward_ms_median)
  sepconv_layer.json              `cargo run --example export -- --time`
  onnxruntime.json, tract.json    run_ort.py and tract/ (median_ms, max_rel_diff per case)

Prints one table of medians: a row per engine and thread count, a column per
MobileNet and for the 14x14x512 layer (standard, separable, and standard /
separable). Each cell is `ms (r×)` with r = that time / sepconv's at the same
thread count (above 1: slower than sepconv). Then the agreement of each
engine with sepconv's outputs (max |diff| / max |ref|). Writes both to
--json.
"""

import argparse
import json
import platform
import re
import sys
from pathlib import Path

LAYER = "layer_14x14x512"
ENGINES = ["sepconv", "onnxruntime", "tract"]


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

    # times[engine][threads][case] = ms; diffs[engine][threads][case] = max rel diff
    times, diffs, versions = {}, {}, {}
    models = set()
    for f in sorted(args.raw.glob("sepconv_mobilenet_*_t*.json")):
        m = re.fullmatch(r"sepconv_mobilenet_(.+)_t(\d+)\.json", f.name)
        doc = json.loads(f.read_text())
        threads = int(m.group(2))
        if doc["threads"] != threads:
            sys.exit(f"compare: {f.name} ran on {doc['threads']} threads")
        models.add(m.group(1))
        times.setdefault("sepconv", {}).setdefault(threads, {})[f"mobilenet_{m.group(1)}"] = doc["forward_ms_median"]
    layer = json.loads((args.raw / "sepconv_layer.json").read_text())
    for row in layer["timings"]:
        t = times.setdefault("sepconv", {}).setdefault(row["threads"], {})
        t[f"{LAYER}_standard"] = row["standard_ms"]
        t[f"{LAYER}_separable"] = row["separable_ms"]
    for engine in ENGINES[1:]:
        doc = json.loads((args.raw / f"{engine}.json").read_text())
        versions[engine] = doc["version"]
        for r in doc["results"]:
            times.setdefault(engine, {}).setdefault(r["threads"], {})[r["case"]] = r["median_ms"]
            diffs.setdefault(engine, {}).setdefault(r["threads"], {})[r["case"]] = r["max_rel_diff"]

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
            mine, base = times[engine][threads], times["sepconv"].get(threads, {})
            cells, record = [], {}
            for case in cases:
                ms, ref = mine.get(case), base.get(case)
                cells.append(cell(ms, ref))
                record[case] = {
                    "median_ms": ms,
                    "ratio_to_sepconv": ms / ref if ms is not None and ref else None,
                    "max_rel_diff": diffs.get(engine, {}).get(threads, {}).get(case),
                }
            std, sep = mine.get(f"{LAYER}_standard"), mine.get(f"{LAYER}_separable")
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

    print("Median forward time in ms (ratio to sepconv at the same thread count; above 1× is slower than sepconv):\n")
    print(table)
    print("\nAgreement with sepconv's outputs, max |diff| / max |ref| (must be ≤ 1e-4):\n")
    print(agreement)
    doc = {
        "machine": {"cpu": cpu_name(), "python": platform.python_version()},
        "versions": versions,
        "runs": layer["runs"],
        "cases": cases,
        "rows": rows,
        "table_markdown": table,
        "agreement_markdown": agreement,
    }
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
