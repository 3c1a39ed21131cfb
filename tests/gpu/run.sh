#!/usr/bin/env bash
# Builds kiln with the CUDA backend, runs every ctest test (CPU and GPU ones) and prints a short
# table last. Usage, from the repository root on a machine with a GPU:
#   tests/gpu/run.sh [BUILD_DIR [CTEST_ARGS...]]      e.g. tests/gpu/run.sh build-gpu -LE conformance
# BUILD_DIR (default build-gpu) is configured and built unless it already holds a build (one made
# on another machine by tests/gpu/pack.sh and carried over, when this one lacks protobuf-c or
# OpenBLAS dev packages). Logs go to $OUT when set, else to BUILD_DIR.
set -u
BUILD=${1:-build-gpu}
shift || true
CUDNN_DIR=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib
# cuDNN 9.19 (matching the headers kiln is built against) before the system's older 9.14
if [ -d "$CUDNN_DIR" ]; then export LD_LIBRARY_PATH="$CUDNN_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
LOGDIR=${OUT:-$BUILD}
if [ ! -f "$BUILD/CTestTestfile.cmake" ]; then
  cmake -S . -B "$BUILD" -DKILN_CUDA=ON -DKILN_WERROR=ON || exit 1
  make -C "$BUILD" -j"$(nproc)" 2>&1 | tail -n 20
  [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
fi
echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 4
mkdir -p "$LOGDIR"
( cd "$BUILD" && ctest --output-on-failure --timeout 600 -j4 --test-output-size-passed 65536 \
    --test-output-size-failed 262144 --output-junit "$(realpath "$LOGDIR")/ctest-junit.xml" "$@" ) \
  > "$LOGDIR/ctest.log" 2>&1
rc=$?
tail -n 60 "$LOGDIR/ctest.log"
echo "== summary (ctest exit $rc; full log: ctest.log, ctest-junit.xml)"
python3 - "$LOGDIR/ctest-junit.xml" <<'PY'
import re, sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as e:
    print("no junit report:", e); sys.exit(0)
rows = []
for tc in root.iter("testcase"):
    status = "fail" if tc.find("failure") is not None or tc.get("status") == "fail" else "pass"
    if tc.find("skipped") is not None or tc.get("status") == "notrun": status = "skip"
    out = "".join((e.text or "") for e in tc.iter("system-out"))
    m = re.findall(r"(SKIP: [^\n]*|\d+ passed, \d+ failed)", out)
    rows.append((tc.get("name"), status, float(tc.get("time") or 0), m[-1] if m else ""))
w = max([len(r[0]) for r in rows] + [4])
print(f"{'test':<{w}}  {'status':<6}  {'sec':>7}  result")
for n, s, t, r in rows:
    print(f"{n:<{w}}  {s:<6}  {t:7.2f}  {r}")
PY
exit $rc
