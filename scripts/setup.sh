#!/usr/bin/env bash
# Installs what the build needs on Debian 12 (Swift itself must already be on PATH):
# oneDNN for the CPU backend, libtiff and libpng for image files. With --tests, also the Python
# packages that some tests use. Safe to run again.
set -euo pipefail

with_tests=false
[ "${1:-}" = "--tests" ] && with_tests=true

packages=(libdnnl-dev libtiff-dev libpng-dev pkg-config)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "setup: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null; then
  echo "setup: Swift 6 is not on PATH; install it from swift.org, then run this again" >&2
  exit 1
fi

# Python packages that only tests use (each such test is skipped without them): safetensors reads
# our checkpoints, tifffile and Pillow read and write images beside ours, and NVIDIA's NVRTC and
# CUDA headers (no GPU needed) compile every CUDA kernel and check our CUDA declarations.
if $with_tests && command -v python3 >/dev/null; then
  if ! python3 -c "import numpy, safetensors, tifffile, PIL, nvidia.cu13" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check \
      numpy safetensors tifffile pillow nvidia-cuda-nvrtc nvidia-cuda-runtime 2>/dev/null \
      || echo "setup: could not pip-install the test-only Python packages; their tests will be skipped"
  fi
fi

echo "setup: ready ($(swift --version 2>&1 | head -n 1))"
