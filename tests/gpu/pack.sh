#!/usr/bin/env bash
# Builds kiln with CUDA here and packs what tests/gpu/run.sh needs on a GPU machine that cannot
# build it (no protobuf-c / OpenBLAS dev packages): the test programs, the CTest files, the tool,
# tests/gpu and the shared libraries that machine may lack, as DEST/kiln-gpu.tar.xz.
#   tests/gpu/pack.sh DEST        (run from the repository root; BUILD defaults to build-cuda)
# On the GPU machine the CTest files name this checkout's absolute path; unpack and link it:
#   mkdir -p "$(dirname SRC)" && ln -sfn UNPACKED SRC && cd SRC && tests/gpu/run.sh build-cuda
set -eu
DEST=${1:?usage: tests/gpu/pack.sh DEST}
BUILD=${BUILD:-build-cuda}
cmake -S . -B "$BUILD" -DKILN_CUDA=ON -DKILN_WERROR=ON > /dev/null
make -C "$BUILD" -j2 2>&1 | grep -E "error|warning|Error" || true
mkdir -p "$DEST" "$BUILD/gpu-libs"
for lib in libprotobuf-c.so.1 libopenblas.so.0; do
  p=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
  if [ -n "$p" ]; then cp -L "$p" "$BUILD/gpu-libs/"; fi
done
{
  find "$BUILD" -name CTestTestfile.cmake
  find "$BUILD" -maxdepth 2 -type f -perm -u+x \( -path "$BUILD/tests/*" -o -name kiln \)
  echo "$BUILD/gpu-libs"
  ls "$BUILD"/libkiln.so*   # the Python package loads it
  echo tests  # sources and scripts that scripted tests run (data outside the checkout stays behind)
} | tar -cJf "$DEST/kiln-gpu.tar.xz" -T -
ls -la "$DEST/kiln-gpu.tar.xz"
# the model test's small models with PyTorch's outputs (exported by the CPU build's ctest run), so
# that the GPU run can check them too (device_all.sh: models-cuda)
MODELS=${MODELS_DIR:-build/models}
if [ -f "$MODELS/transformer.done" ] && [ -f "$MODELS/squeezenet1_1.done" ]; then
  (cd "$MODELS" && tar -cJf - transformer.* squeezenet1_1.*) > "$DEST/models.tar.xz"
  ls -la "$DEST/models.tar.xz"
fi
echo "source path for the CTest files: $(pwd)"
