#!/usr/bin/env bash
# One lease of a GPU machine, in stages: the tests (ctest on the GPU build, conformance with
# --device cuda, the Python suite and the seed example on CUDA, the demo) and the benchmark.
# The machine lacks protobuf-c and onnx.proto, so the build is made here by tests/gpu/pack.sh and
# carried in $CARRY together with the ONNX node tests; this script unpacks both and runs.
#   tests/gpu/device_all.sh tests|sanitize|bench|all      (from the repository root on the GPU machine)
# Logs and results go to $OUT (the device tool brings them back). A short table is printed last.
set -u
STAGE=${1:-all}
ROOT=$(pwd)
CARRY=${CARRY:-build-cuda-carry}
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
CUDNN_DIR=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib
[ -d "$CUDNN_DIR" ] && export LD_LIBRARY_PATH="$CUDNN_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ ! -x build-cuda/kiln ]; then
  tar -xJf "$CARRY/kiln-gpu.tar.xz" -C "$ROOT" || exit 1
fi
export LD_LIBRARY_PATH="$ROOT/build-cuda/gpu-libs:$LD_LIBRARY_PATH"
# CTest files and the conformance test name the paths of the machine that built them
mkdir -p /work/shared
[ -e /work/main ] || ln -sfn "$ROOT" /work/main
if [ ! -d /work/shared/onnx-node-tests/node ] && [ -f "$CARRY/onnx-node-tests.tar.xz" ]; then
  tar -xJf "$CARRY/onnx-node-tests.tar.xz" -C /work/shared
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
declare -a SUMMARY
step() { # name, command...: runs it, logs to $OUT/name.log, records the last summary line
  local name=$1; shift
  local t0=$(date +%s)
  ( "$@" ) > "$OUT/$name.log" 2>&1
  local rc=$? t=$(( $(date +%s) - t0 ))
  local last=$(grep -E "[0-9]+ passed|tests passed|match|passed, [0-9]+ failed|ERROR SUMMARY" "$OUT/$name.log" | tail -n 1)
  SUMMARY+=("$(printf '%-28s rc=%-3s %4ss  %s' "$name" "$rc" "$t" "$last")")
  echo "== $name (rc $rc, ${t}s)"; tail -n 15 "$OUT/$name.log"
}
if [ "$STAGE" = tests ] || [ "$STAGE" = all ]; then
  step ctest-gpu bash -c "cd /work/main/build-cuda && ctest --output-on-failure --timeout 900 -j4 -LE 'python|cli|models|conformance'"
  # one process: a CUDA context per forked test costs minutes over 1800 tests
  step conformance-cuda build-cuda/kiln conformance /work/shared/onnx-node-tests/node --device cuda --no-fork \
    --exclude tests/conformance/excluded.txt
  step pytest-cuda env KILN_LIBRARY="$ROOT/build-cuda/libkiln.so" PYTHONPATH="$ROOT/python" python3 -m pytest -q -rs tests/python
  if [ -f "$CARRY/models.tar.xz" ]; then
    mkdir -p "$ROOT/build-cuda/models" && tar -xJf "$CARRY/models.tar.xz" -C "$ROOT/build-cuda/models"
    step models-cuda env KILN_MODELS_DEVICE=cuda build-cuda/tests/kiln_model_check "$ROOT/build-cuda/models" transformer squeezenet1_1
  fi
  step seed-example-cuda env KILN_LIBRARY="$ROOT/build-cuda/libkiln.so" PYTHONPATH="$ROOT/python" python3 examples/torch_export_cudagraphs.py
  step demo-fp32 build-cuda/kiln demo --device cuda --seconds 1
  step demo-tf32 build-cuda/kiln demo --device cuda --tf32 --seconds 1
  step demo-fp16 build-cuda/kiln demo --device cuda --fp16 --seconds 1
  step demo-r50-fp16 build-cuda/kiln demo --device cuda --fp16 --model resnet50 --seconds 1
fi
if [ "$STAGE" = sanitize ] || [ "$STAGE" = all ]; then
  # compute-sanitizer memcheck and racecheck over every test program that runs on the GPU, and
  # memcheck over a ResNet-18 fp16 demo (whole-module graphs). API errors are not reported: the
  # backend test breaks a capture with a synchronize on purpose. SANITIZE_SECONDS bounds each.
  # SANITIZE_RUNS picks runs ("tool:program ..."; default all) and SANITIZE_JOBS runs that many at
  # once: the sanitizers are bound by the host CPU, so parallel runs share the one GPU well.
  # (compute-sanitizer's --kernel-name filter is no way to speed racecheck up: the kernels it
  # leaves out are not run at all, and the tests then fail on garbage)
  RUNS=${SANITIZE_RUNS:-}
  if [ -z "$RUNS" ]; then
    for t in test_cuda_backend test_cuda_ops test_cuda_nhwc test_graphs test_profile test_runtime; do
      RUNS="$RUNS memcheck:$t racecheck:$t"
    done
    RUNS="$RUNS memcheck:demo"
  fi
  sanitize_one() { # tool:program; its summary line goes to a file (it may run in the background)
    local tool=${1%%:*} t=${1#*:} cmd
    if [ "$t" = demo ]; then cmd=(build-cuda/kiln demo --device cuda --fp16 --seconds 0.2 --batches 1,8)
    else [ -x build-cuda/tests/$t ] || return 0; cmd=(build-cuda/tests/$t); fi
    # racecheck of test_graphs and test_cuda_backend spent their whole budgets in cuDNN's
    # runtime-compiled engines and tactic timing: they run without both. test_graphs' ResNet-18
    # did not finish under racecheck even at 64x64 without them (360 s, cuDNN's kernels), so its
    # racecheck runs the graph-break model only
    local env=()
    [ "$tool:$t" = racecheck:test_graphs ] && env=(env KILN_TEST_NO_TIMING=1 KILN_TEST_NO_RTC=1 KILN_TEST_SPATIAL=64 KILN_TEST_MODELS=seed)
    [ "$tool:$t" = racecheck:test_cuda_backend ] && env=(env KILN_TEST_NO_RTC=1)
    step "$tool-$t" timeout ${SANITIZE_SECONDS:-240} ${env[@]+"${env[@]}"} compute-sanitizer --tool $tool --report-api-errors no \
      --error-exitcode 1 "${cmd[@]}" > /dev/null
    printf '%s\n' "${SUMMARY[-1]}" > "$OUT/summary-$tool-$t.txt"
  }
  for r in $RUNS; do
    while [ "$(jobs -rp | wc -l)" -ge "${SANITIZE_JOBS:-1}" ]; do wait -n; done
    sanitize_one "$r" &
  done
  wait
  for r in $RUNS; do f="$OUT/summary-${r%%:*}-${r#*:}.txt"; [ -f "$f" ] && SUMMARY+=("$(cat "$f")"); done
fi
if [ "$STAGE" = bench ] || [ "$STAGE" = all ]; then
  step bench python3 bench/bench.py --kiln build-cuda/kiln ${BENCH_ARGS:---quick} --out "$OUT/RESULTS.md"
fi
echo; echo "== summary ($(head -n 1 "$OUT/device.txt"))"
printf '%s\n' "${SUMMARY[@]}"
