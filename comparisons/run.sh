#!/usr/bin/env bash
# Side-by-side comparison of sepconv with ONNX Runtime, tract and candle, from
# a fresh clone: creates comparisons/.venv with the pinned Python packages,
# builds sepconv's examples and the tract and candle runners, exports seeded
# MobileNets and the 14x14x512 layer from sepconv, builds ONNX graphs from them
# (candle builds its networks from the exported tensors instead), checks every
# engine's outputs against sepconv's (a mismatch stops the run), times all of
# them at 1 and 2 threads, and prints one markdown table (also written to
# comparisons/out/results.json), with each engine's share of this machine's
# FMA peak (measured by comparisons/fma_peak.rs in every pass). Not part of CI.
#
# The timings run in PASSES passes (default 3), each timing every engine on
# every case back to back; a cell of the table is the best of the pass
# medians, so a burst of load on this shared machine during one pass does not
# decide a ratio.
#
#   bash comparisons/run.sh
#   MODELS="1.0-224 0.25-128" RUNS=30 PASSES=5 bash comparisons/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COMP=comparisons
OUT=$COMP/out
VENV=$COMP/.venv
MODELS=${MODELS:-"1.0-224 0.75-224 0.5-160 0.25-128"}
THREADS=${THREADS:-"1 2"}
RUNS=${RUNS:-50}
PASSES=${PASSES:-3}
WARMUP=${WARMUP:-5}
PYTHON=${PYTHON:-python3}
THREAD_LIST=$(echo $THREADS | tr ' ' ',')

phase() { printf '\n== %s (%ds so far)\n' "$1" "$SECONDS"; }

phase "setup: Python venv ($VENV) with pinned packages"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$COMP/requirements.txt"
PY="$VENV/bin/python"

phase "setup: cargo build --release (sepconv examples export, mobilenet)"
cargo build --release --quiet --example export --example mobilenet

phase "setup: cargo build --release (comparisons/tract, locked)"
cargo build --release --quiet --locked --manifest-path "$COMP/tract/Cargo.toml"
TRACT="$COMP/tract/target/release/sepconv-compare-tract"

phase "setup: cargo build --release (comparisons/candle, locked)"
cargo build --release --quiet --locked --manifest-path "$COMP/candle/Cargo.toml"
CANDLE="$COMP/candle/target/release/sepconv-compare-candle"
SETUP_SECONDS=$SECONDS

rm -rf "$OUT"
mkdir -p "$OUT/data" "$OUT/onnx" "$OUT/raw"

phase "setup: rustc -O comparisons/fma_peak.rs (this core's FMA peak, for the share-of-peak table)"
rustc --edition 2024 -O -o "$OUT/fma_peak" "$COMP/fma_peak.rs"
model_args=()
for m in $MODELS; do model_args+=(--model "$m"); done

phase "export from sepconv: weights, inputs, outputs (${MODELS}; 14x14x512 layer)"
cargo run --release --quiet --example export -- --out "$OUT/data" "${model_args[@]}" --layer

phase "build ONNX graphs"
"$PY" "$COMP/build_onnx.py" --data "$OUT/data" --out "$OUT/onnx"

for pass in $(seq 1 "$PASSES"); do
RAW="$OUT/raw/pass$pass"
mkdir -p "$RAW"

phase "pass $pass/$PASSES: FMA peak of one core"
"$OUT/fma_peak" | tee "$RAW/fma_peak.json"

phase "pass $pass/$PASSES: time sepconv (median of $RUNS)"
for m in $MODELS; do
    for t in $THREADS; do
        cargo run --release --quiet --example mobilenet -- \
            --alpha "${m%-*}" --resolution "${m#*-}" --threads "$t" --runs "$RUNS" --json \
            > "$RAW/sepconv_mobilenet_${m}_t${t}.json"
        echo "sepconv: mobilenet_$m $t thread(s): $("$PY" -c 'import json,sys; print(round(json.load(sys.stdin)["forward_ms_median"], 3))' < "$RAW/sepconv_mobilenet_${m}_t${t}.json") ms"
    done
done
cargo run --release --quiet --example export -- --out "$OUT/data" --time --threads "$THREAD_LIST" --runs "$RUNS" \
    > "$RAW/sepconv_layer.json"
cat "$RAW/sepconv_layer.json"

phase "pass $pass/$PASSES: ONNX Runtime: check against sepconv, time (median of $RUNS)"
"$PY" "$COMP/run_ort.py" --manifest "$OUT/onnx/manifest.tsv" --threads "$THREAD_LIST" \
    --runs "$RUNS" --warmup "$WARMUP" --json "$RAW/onnxruntime.json" > /dev/null

phase "pass $pass/$PASSES: tract: check against sepconv, time (median of $RUNS)"
"$TRACT" "$OUT/onnx/manifest.tsv" --threads "$THREAD_LIST" --runs "$RUNS" --warmup "$WARMUP" \
    > "$RAW/tract.json"

phase "pass $pass/$PASSES: candle: check against sepconv, time (median of $RUNS)"
"$CANDLE" "$OUT/onnx/manifest.tsv" --threads "$THREAD_LIST" --runs "$RUNS" --warmup "$WARMUP" \
    > "$RAW/candle.json"
done

phase "results"
"$PY" "$COMP/compare.py" --raw "$OUT/raw" --json "$OUT/results.json"
printf '\nsetup (venv, builds): %ds; export, checks and timings: %ds; total %ds\n' \
    "$SETUP_SECONDS" "$((SECONDS - SETUP_SECONDS))" "$SECONDS"
