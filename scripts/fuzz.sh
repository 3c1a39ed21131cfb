#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 60), seeded with the
# ONNX conformance models and engines saved from some of them. Crashes land in build-fuzz/crashes.
# usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
B=build-fuzz
cmake -S . -B $B -DCMAKE_C_COMPILER=clang -DKILN_FUZZ=ON -DKILN_CUDA=OFF -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build $B -j "$(nproc)" --target fuzz_onnx fuzz_engine kiln_tool >/dev/null
nodes=../shared/onnx-node-tests/node
mkdir -p $B/corpus/onnx $B/corpus/engine $B/crashes
if [ -d "$nodes" ]; then
  i=0
  for d in "$nodes"/*/; do
    i=$((i + 1))
    [ $((i % 4)) -eq 0 ] || continue   # a quarter of the tests is plenty of variety
    cp "$d/model.onnx" "$B/corpus/onnx/$(basename "$d").onnx"
  done
fi
# engines saved by the plan tests seed the loader (from the main build when there is one)
plan_test=build/tests/test_plan
if [ ! -x "$plan_test" ]; then
  cmake -S . -B build-seeds -DKILN_CUDA=OFF >/dev/null && cmake --build build-seeds -j "$(nproc)" --target test_plan >/dev/null
  plan_test=build-seeds/tests/test_plan
fi
KILN_TEST_PLAN_SEEDS=$B/corpus/engine $plan_test >/dev/null || true
# an engine with a fused KilnAttention node (the model test's small transformer, when a CPU build
# has exported it) seeds the loader's internal-op paths
if [ -f build/models/transformer.onnx ]; then
  $B/kiln build build/models/transformer.onnx --min x:1x16x64 --opt x:2x16x64 --max x:3x16x64 \
    -o $B/corpus/engine/transformer_attention.kiln >/dev/null 2>&1 || true
fi
# past findings (the regression inputs of the unit tests) seed their neighbourhoods
cp tests/plan/data/*.kiln $B/corpus/engine/ 2>/dev/null || true
cp tests/onnx/data/fuzz_*.onnx $B/corpus/onnx/ 2>/dev/null || true
status=0
for t in fuzz_onnx fuzz_engine; do
  corpus=$B/corpus/${t#fuzz_}
  echo "fuzz: $t for ${secs}s over $(ls "$corpus" | wc -l) seeds"
  if ! $B/tests/fuzz/$t "$corpus" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len=1048576 \
        -artifact_prefix=$B/crashes/$t- -print_final_stats=1 2>$B/$t.log; then
    echo "fuzz: $t FOUND A FAILURE; see $B/$t.log and $B/crashes/"; tail -30 $B/$t.log; status=1
  else
    grep -E "stat::number_of_executed_units|cov:" $B/$t.log | tail -2
  fi
done
exit $status
