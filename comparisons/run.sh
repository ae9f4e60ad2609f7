#!/usr/bin/env bash
# Side-by-side comparison of sepconv with ONNX Runtime, tract, candle, LiteRT
# (XNNPACK) and OpenVINO, from a fresh clone: creates comparisons/.venv with
# the pinned Python packages, builds sepconv's examples and the tract and
# candle runners, exports seeded MobileNets and the 14x14x512 layer from
# sepconv, builds ONNX graphs from them (read by ONNX Runtime, tract and
# OpenVINO; candle builds its networks from the exported tensors instead) and
# TFLite models for LiteRT (converted by TensorFlow from the same tensors,
# once: cached in comparisons/out/cache/), checks every engine's outputs
# against sepconv's (a mismatch stops the run), times all of them at 1 and 2
# threads, and prints one markdown table (also written to
# comparisons/out/results.json), with the CPU, the path each engine ran and
# each engine's share of this machine's FMA peak (measured by
# comparisons/fma_peak.rs in every pass). Not part of CI.
#
# The timings run in PASSES passes (default 3). Within a pass each case (a
# network or the layer, at one thread count) is timed by every engine back to
# back, seconds apart. A cell of the table gives the best of the pass medians
# (ms) and the median over passes of the ratio to sepconv within a pass, so a
# burst of load on this shared machine during one pass decides neither.
#
# MobileNetV2 models are named v2-A-R (v2-1.0-224 is in the default set);
# candle's runner builds v1 only, so it sits out the v2 cases.
#
#   bash comparisons/run.sh
#   MODELS="1.0-224 0.25-128 v2-1.0-224" RUNS=30 PASSES=5 bash comparisons/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COMP=comparisons
OUT=$COMP/out
VENV=$COMP/.venv
MODELS=${MODELS:-"1.0-224 0.75-224 0.5-160 0.25-128 v2-1.0-224"}
THREADS=${THREADS:-"1 2"}
RUNS=${RUNS:-50}
PASSES=${PASSES:-3}
WARMUP=${WARMUP:-5}
PYTHON=${PYTHON:-python3}

phase() { printf '\n== %s (%ds so far)\n' "$1" "$SECONDS"; }

phase "this machine"
# The CPU and the ISA extensions the engines' kernels choose between.
if [ -r /proc/cpuinfo ]; then
    for key in "model name" "cpu family" "model" "stepping"; do
        grep -m1 -P "^$key\s*:" /proc/cpuinfo || true
    done
    flags=" $(grep -m1 -P '^flags\s*:' /proc/cpuinfo | cut -d: -f2) "
    isa=()
    for f in avx avx2 fma f16c avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16 avx_vnni amx_tile amx_bf16 amx_int8; do
        if [[ $flags == *" $f "* ]]; then isa+=("$f"); else isa+=("no-$f"); fi
    done
    echo "ISA: ${isa[*]}"
fi
echo "cores: $(nproc)"

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

# Everything of a previous run goes but the cache of converted TFLite models
# (keyed by the weights and the converter, so a stale one is never used).
mkdir -p "$OUT"
find "$OUT" -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} +
mkdir -p "$OUT/data" "$OUT/onnx" "$OUT/tflite" "$OUT/raw" "$OUT/cache/tflite"

phase "setup: rustc -O comparisons/fma_peak.rs (this core's FMA peak, for the share-of-peak table)"
rustc --edition 2024 -O -o "$OUT/fma_peak" "$COMP/fma_peak.rs"
model_args=()
for m in $MODELS; do model_args+=(--model "$m"); done

phase "export from sepconv: weights, inputs, outputs (${MODELS}; 14x14x512 layer)"
cargo run --release --quiet --example export -- --out "$OUT/data" "${model_args[@]}" --layer

phase "build ONNX graphs"
"$PY" "$COMP/build_onnx.py" --data "$OUT/data" --out "$OUT/onnx"

phase "build TFLite models for LiteRT (TensorFlow's converter; cached in $OUT/cache/tflite)"
convert_start=$SECONDS
"$PY" "$COMP/build_tflite.py" --data "$OUT/data" --out "$OUT/tflite" --cache "$OUT/cache/tflite"
CONVERT_SECONDS=$((SECONDS - convert_start))

# One manifest per case (a network, or the layer's two graphs), so that
# every engine times a case right after the others: on this shared machine
# the load moves within a minute, and engines timed seconds apart see nearly
# the same machine.
CASES=()
for m in $MODELS; do CASES+=("mobilenet_$m"); done
CASES+=("layer_14x14x512")
for case in "${CASES[@]}"; do
    grep -P "^${case}(_[a-z]+)?\t" "$OUT/onnx/manifest.tsv" > "$OUT/onnx/manifest_$case.tsv"
    grep -P "^${case}(_[a-z]+)?\t" "$OUT/tflite/manifest.tsv" > "$OUT/tflite/manifest_$case.tsv"
done

for pass in $(seq 1 "$PASSES"); do
RAW="$OUT/raw/pass$pass"
mkdir -p "$RAW"

phase "pass $pass/$PASSES: FMA peak of one core"
"$OUT/fma_peak" | tee "$RAW/fma_peak.json"

phase "pass $pass/$PASSES: every case, every engine back to back (median of $RUNS; each engine checks its outputs against sepconv's)"
for case in "${CASES[@]}"; do
    for t in $THREADS; do
        tag="${case}_t$t"
        echo "pass $pass: $case, $t thread(s)"
        if [ "$case" = layer_14x14x512 ]; then
            cargo run --release --quiet --example export -- --out "$OUT/data" --time --threads "$t" --runs "$RUNS" \
                > "$RAW/sepconv_$tag.json"
        else
            m=${case#mobilenet_}
            version=1
            if [[ $m == v2-* ]]; then version=2; m=${m#v2-}; fi
            cargo run --release --quiet --example mobilenet -- --version "$version" \
                --alpha "${m%-*}" --resolution "${m#*-}" --threads "$t" --runs "$RUNS" --json \
                > "$RAW/sepconv_$tag.json"
        fi
        "$PY" "$COMP/run_ort.py" --manifest "$OUT/onnx/manifest_$case.tsv" --threads "$t" \
            --runs "$RUNS" --warmup "$WARMUP" --json "$RAW/onnxruntime_$tag.json" > /dev/null
        "$TRACT" "$OUT/onnx/manifest_$case.tsv" --threads "$t" --runs "$RUNS" --warmup "$WARMUP" \
            > "$RAW/tract_$tag.json"
        if [[ $case != mobilenet_v2-* ]]; then
            "$CANDLE" "$OUT/onnx/manifest_$case.tsv" --threads "$t" --runs "$RUNS" --warmup "$WARMUP" \
                > "$RAW/candle_$tag.json"
        fi
        "$PY" "$COMP/run_litert.py" --manifest "$OUT/tflite/manifest_$case.tsv" --threads "$t" \
            --runs "$RUNS" --warmup "$WARMUP" --json "$RAW/litert_$tag.json" > /dev/null
        "$PY" "$COMP/run_openvino.py" --manifest "$OUT/onnx/manifest_$case.tsv" --threads "$t" \
            --runs "$RUNS" --warmup "$WARMUP" --json "$RAW/openvino_$tag.json" > /dev/null
    done
done
done

phase "results"
"$PY" "$COMP/compare.py" --raw "$OUT/raw" --json "$OUT/results.json"
printf '\nsetup (venv, builds): %ds; TFLite conversion (0 when cached): %ds; export, other checks and timings: %ds; total %ds\n' \
    "$SETUP_SECONDS" "$CONVERT_SECONDS" "$((SECONDS - SETUP_SECONDS - CONVERT_SECONDS))" "$SECONDS"
