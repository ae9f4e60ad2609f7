#!/usr/bin/env bash
# Side-by-side comparison of sepconv with ONNX Runtime and tract, from a fresh
# clone: creates comparisons/.venv with the pinned Python packages, builds
# sepconv's examples and the tract runner, exports seeded MobileNets and the
# 14x14x512 layer from sepconv, builds ONNX graphs from them, checks every
# engine's outputs against sepconv's (a mismatch stops the run), times all of
# them at 1 and 2 threads, and prints one markdown table (also written to
# comparisons/out/results.json). Not part of CI.
#
#   bash comparisons/run.sh
#   MODELS="1.0-224 0.25-128" RUNS=30 bash comparisons/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COMP=comparisons
OUT=$COMP/out
VENV=$COMP/.venv
MODELS=${MODELS:-"1.0-224 0.75-224 0.5-160 0.25-128"}
THREADS=${THREADS:-"1 2"}
RUNS=${RUNS:-50}
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
SETUP_SECONDS=$SECONDS

rm -rf "$OUT"
mkdir -p "$OUT/data" "$OUT/onnx" "$OUT/raw"
model_args=()
for m in $MODELS; do model_args+=(--model "$m"); done

phase "export from sepconv: weights, inputs, outputs (${MODELS}; 14x14x512 layer)"
cargo run --release --quiet --example export -- --out "$OUT/data" "${model_args[@]}" --layer

phase "build ONNX graphs"
"$PY" "$COMP/build_onnx.py" --data "$OUT/data" --out "$OUT/onnx"

phase "time sepconv (median of $RUNS)"
for m in $MODELS; do
    for t in $THREADS; do
        cargo run --release --quiet --example mobilenet -- \
            --alpha "${m%-*}" --resolution "${m#*-}" --threads "$t" --runs "$RUNS" --json \
            > "$OUT/raw/sepconv_mobilenet_${m}_t${t}.json"
        echo "sepconv: mobilenet_$m $t thread(s): $("$PY" -c 'import json,sys; print(round(json.load(sys.stdin)["forward_ms_median"], 3))' < "$OUT/raw/sepconv_mobilenet_${m}_t${t}.json") ms"
    done
done
cargo run --release --quiet --example export -- --out "$OUT/data" --time --threads "$THREAD_LIST" --runs "$RUNS" \
    > "$OUT/raw/sepconv_layer.json"
cat "$OUT/raw/sepconv_layer.json"

phase "ONNX Runtime: check against sepconv, time (median of $RUNS)"
"$PY" "$COMP/run_ort.py" --manifest "$OUT/onnx/manifest.tsv" --threads "$THREAD_LIST" \
    --runs "$RUNS" --warmup "$WARMUP" --json "$OUT/raw/onnxruntime.json" > /dev/null

phase "tract: check against sepconv, time (median of $RUNS)"
"$TRACT" "$OUT/onnx/manifest.tsv" --threads "$THREAD_LIST" --runs "$RUNS" --warmup "$WARMUP" \
    > "$OUT/raw/tract.json"

phase "results"
"$PY" "$COMP/compare.py" --raw "$OUT/raw" --json "$OUT/results.json"
printf '\nsetup (venv, builds): %ds; export, checks and timings: %ds; total %ds\n' \
    "$SETUP_SECONDS" "$((SECONDS - SETUP_SECONDS))" "$SECONDS"
