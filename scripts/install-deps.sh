#!/usr/bin/env bash
# Installs the Debian packages kiln needs to build and test. As root it runs apt-get (one
# `apt-get update` first); otherwise it prints the exact command to run and fails.
set -euo pipefail

packages=(
  cmake make gcc pkg-config
  libprotobuf-c-dev protobuf-c-compiler   # ONNX parsing: C code generated from onnx.proto
  libonnx-dev                             # onnx.proto itself
  libopenblas-dev                         # CPU matrix products (CBLAS)
  python3-numpy python3-onnx python3-pytest
  python3-torch python3-torchvision       # the oracle for model tests and the Python package
  clang libclang-rt-14-dev                # libFuzzer and sanitizer runtimes
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "kiln: all build and test dependencies are installed"
  exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "kiln: missing Debian packages: ${missing[*]}" >&2
  echo "kiln: run as root:  $cmd" >&2
  exit 1
fi
echo "kiln: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
