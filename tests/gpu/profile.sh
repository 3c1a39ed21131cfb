#!/usr/bin/env bash
# Per-step profiles on the GPU: exports the benchmark's models (bench/bench.py's make_model and
# export) and runs `kiln bench --profile` for each ROW (model:batch[:precision], default fp16),
# each compiled for exactly that batch with a fresh timing cache, so the build time is cold.
#   tests/gpu/profile.sh [ROW...]          e.g. tests/gpu/profile.sh mobilenet_v2:16 resnet18:256
# Run after device_all.sh has unpacked the build (or with build-cuda built on this machine).
# Logs go to $OUT/profile-MODEL-bBATCH-PREC.log; a table of build time and latency is printed last.
set -u
OUT=${OUT:-gpu-out}
KILN=${KILN:-build-cuda/kiln}
mkdir -p "$OUT"
CUDNN_DIR=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib
[ -d "$CUDNN_DIR" ] && export LD_LIBRARY_PATH="$CUDNN_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH="$(pwd)/build-cuda/gpu-libs:$LD_LIBRARY_PATH"
WORK=$(mktemp -d)
. "$(dirname "$0")/bench_models.sh"
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(resnet18:1 resnet18:16 resnet18:256 mobilenet_v2:1 mobilenet_v2:16 resnet50:256)
declare -a TABLE
for row in "${ROWS[@]}"; do
  IFS=: read -r model batch prec <<< "$row"
  prec=${prec:-fp16}
  onnx="$WORK/$model.onnx"
  bench_model_onnx "$model" "$onnx" || { TABLE+=("$row: export failed"); continue; }
  shape=$(bench_model_shape "$model" "$batch")
  log="$OUT/profile-$model-b$batch-$prec.log"
  t0=$(date +%s.%N)
  "$KILN" bench "$onnx" --shapes "x:$shape" --"$prec" --device cuda --cudagraphs whole \
    --duration-s 1 --profile --timing-cache "$WORK/$model-$batch-$prec.cache" -v > "$log" 2>&1
  rc=$?
  t=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")
  med=$(grep -m1 -E "median" "$log" | tr -s ' ')
  TABLE+=("$(printf '%-24s rc=%s total %6ss  %s' "$row" "$rc" "$t" "$med")")
done
rm -rf "$WORK"
echo "== profile summary"
printf '%s\n' "${TABLE[@]}"
