#!/usr/bin/env bash
# A/B latency of two kiln builds in one call on one card: exports the benchmark's models
# (bench/bench.py's make_model and export) and, for each ROW (model:batch[:precision], default
# fp16), runs `kiln bench --cudagraphs whole` with A and B alternately, ROUNDS times each (one
# warm timing cache per binary, so only the first round builds cold), and prints the medians.
#   A=path/to/old/kiln B=build-cuda/kiln tests/gpu/ab.sh ROW...     e.g. transformer:1:fp32 resnet18:16:tf32
# Run after device_all.sh has unpacked the build. Logs go to $OUT/ab-*.log.
set -u
OUT=${OUT:-gpu-out}
A=${A:?A=the baseline kiln}
B=${B:-build-cuda/kiln}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
CUDNN_DIR=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib
[ -d "$CUDNN_DIR" ] && export LD_LIBRARY_PATH="$CUDNN_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH="$(pwd)/build-cuda/gpu-libs:$LD_LIBRARY_PATH"
WORK=$(mktemp -d)
. "$(dirname "$0")/bench_models.sh"
declare -a TABLE
for row in "$@"; do
  IFS=: read -r model batch prec <<< "$row"
  prec=${prec:-fp16}
  onnx="$WORK/$model.onnx"
  bench_model_onnx "$model" "$onnx" || { TABLE+=("$row: export failed"); continue; }
  shape=$(bench_model_shape "$model" "$batch")
  declare -a ms_a=() ms_b=()
  for r in $(seq 1 "$ROUNDS"); do
    for side in A B; do
      bin=$A; [ $side = B ] && bin=$B
      js="$WORK/$side.json"
      log="$OUT/ab-$model-b$batch-$prec-$side-$r.log"
      "$bin" bench "$onnx" --shapes "x:$shape" --"$prec" --device cuda --cudagraphs whole --duration-s 1 \
        --timing-cache "$WORK/$side.cache" --json "$js" > "$log" 2>&1 || { echo "$side failed: $(tail -n 3 "$log")"; continue; }
      ms=$(python3 -c "import json; d = json.load(open('$js')); print(d['runs'][0]['latency_ms']['median'])")
      if [ $side = A ]; then ms_a+=("$ms"); else ms_b+=("$ms"); fi
    done
  done
  TABLE+=("$(printf '%-28s A %s   B %s' "$row" "${ms_a[*]:-}" "${ms_b[*]:-}")")
done
echo "== A/B medians (ms, whole-module graphs; A=$A B=$B; $(nvidia-smi --query-gpu=name --format=csv,noheader))"
printf '%s\n' "${TABLE[@]}"
