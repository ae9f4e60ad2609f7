#!/usr/bin/env bash
# Per-layer times of one MobileNet, sepconv beside ONNX Runtime's profiler
# (speed issue 17): where the time goes in each engine, layer by layer.
#
# Sets up what run.sh sets up for one model (comparisons/.venv with the
# pinned Python packages, sepconv's export and mobilenet examples, the
# seeded weights exported from sepconv, the ONNX graph from build_onnx.py),
# then runs PASSES passes; in each, at every thread count, sepconv's
# per-layer profile (`cargo run --release --example mobilenet -- --profile
# --json`: each layer's median over RUNS profiled forwards) and ONNX
# Runtime's profiled session (`ort_layers.py profile`: each node's kernel
# time over RUNS runs after WARMUP, with its output first checked against
# sepconv's logits: a mismatch stops the run) take turns, seconds apart,
# the one that goes first alternating from pass to pass. Then
# `ort_layers.py table` maps ONNX Runtime's (fused) nodes onto sepconv's
# layers by name and prints a markdown table per thread count: one row per
# layer (output shape, mult-adds, each engine's time and GMAC/s, the ratio
# sepconv / ONNX Runtime) and subtotals (stem, for v2 all inverted residual
# blocks, all depthwise, all pointwise 1x1, classifier, total); a cell is
# the best of the pass values and the ratio the median over passes of the
# ratio within a pass (as in run.sh). The tables also go to
# comparisons/out/layers_<model>.md, everything with the pass data to
# comparisons/out/layers_<model>.json; the exported data, graphs and raw
# per-pass files are in comparisons/out/layers/<model>/. Not part of CI.
#
# Both profiles time each layer (node) on its own, so their sums are a
# little more than a plain forward; compare the engines layer by layer, and
# the whole forward with run.sh. On a shared machine keep runs short, and
# trust the ratios within a run more than the times across runs.
#
#   bash comparisons/layers.sh                      # MobileNet v1 1.0-224, 1 thread
#   MODEL=v2-1.0-224 THREADS="1 2" RUNS=30 PASSES=5 bash comparisons/layers.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COMP=comparisons
OUT=$COMP/out
VENV=$COMP/.venv
MODEL=${MODEL:-1.0-224}
THREADS=${THREADS:-1}
RUNS=${RUNS:-20}
PASSES=${PASSES:-3}
WARMUP=${WARMUP:-5}
PYTHON=${PYTHON:-python3}
WORK=$OUT/layers/$MODEL

phase() { printf '\n== %s (%ds so far)\n' "$1" "$SECONDS"; }

cpu=$(grep -m1 "model name" /proc/cpuinfo | sed 's/^[^:]*: *//' || true)
avx512=no
if grep -qw avx512f /proc/cpuinfo; then avx512=yes; fi
printf 'CPU: %s (AVX-512F: %s; %s logical cores; load average %s)\n' "${cpu:-unknown}" "$avx512" "$(nproc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'model %s, threads %s, %s passes of %s runs (ONNX Runtime after %s warm-ups)\n' \
    "$MODEL" "$THREADS" "$PASSES" "$RUNS" "$WARMUP"

phase "setup: Python venv ($VENV) with pinned packages"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$COMP/requirements.txt"
PY="$VENV/bin/python"

phase "setup: cargo build --release (sepconv examples export, mobilenet)"
cargo build --release --quiet --example export --example mobilenet

rm -rf "$WORK"
mkdir -p "$WORK/data" "$WORK/onnx" "$WORK/raw"

phase "export from sepconv: weights, input, logits ($MODEL)"
cargo run --release --quiet --example export -- --out "$WORK/data" --model "$MODEL"

phase "build the ONNX graph"
"$PY" "$COMP/build_onnx.py" --data "$WORK/data" --out "$WORK/onnx"
G="$WORK/onnx/mobilenet_$MODEL"

m=$MODEL
version=1
if [[ $m == v2-* ]]; then version=2; m=${m#v2-}; fi

sepconv_pass() { # threads, output file
    cargo run --release --quiet --example mobilenet -- --version "$version" \
        --alpha "${m%-*}" --resolution "${m#*-}" --threads "$1" --runs "$RUNS" --profile --json > "$2"
}
ort_pass() { # threads, output file
    "$PY" "$COMP/ort_layers.py" profile --graph "$G.onnx" --input "${G}_input_nchw.npy" \
        --expected "${G}_expected.npy" --threads "$1" --runs "$RUNS" --warmup "$WARMUP" --json "$2"
}

sep_files=()
ort_files=()
for pass in $(seq 1 "$PASSES"); do
    phase "pass $pass/$PASSES: sepconv's profile and ONNX Runtime's, taking turns"
    for t in $THREADS; do
        s="$WORK/raw/sepconv_t${t}_pass$pass.json"
        o="$WORK/raw/onnxruntime_t${t}_pass$pass.json"
        if [ $((pass % 2)) = 1 ]; then
            echo "pass $pass, $t thread(s): sepconv, then ONNX Runtime"
            sepconv_pass "$t" "$s"
            ort_pass "$t" "$o"
        else
            echo "pass $pass, $t thread(s): ONNX Runtime, then sepconv"
            ort_pass "$t" "$o"
            sepconv_pass "$t" "$s"
        fi
        sep_files+=("$s")
        ort_files+=("$o")
    done
done

phase "tables"
"$PY" "$COMP/ort_layers.py" table --model "$MODEL" --sepconv "${sep_files[@]}" --ort "${ort_files[@]}" \
    --json "$OUT/layers_$MODEL.json" | tee "$OUT/layers_$MODEL.md"
printf '\ntotal %ds\n' "$SECONDS"
