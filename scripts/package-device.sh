#!/usr/bin/env bash
# Builds what scripts/device-check.sh runs on a GPU machine that has no Swift toolchain: a release
# `unet` with the Swift runtime linked in statically, stripped, plus the shared libraries it loads
# that such a machine may lack (oneDNN, libtiff, libpng and theirs), all in one xz archive:
#   .device/unet-bundle.tar.xz   (bin/unet, lib/*.so*, COMMIT: the commit it was built from)
# The archive stays under the 64 MiB that travels to the lent machine (about 25 MB today).
# Usage: bash scripts/package-device.sh [--tensorrt] [OUTPUT_DIR]   (default .device, ignored by git)
# --tensorrt also fetches TensorRT's Python wheels for device-check.sh's TensorRT step into
#   OUTPUT_DIR/tensorrt-wheels (the GPU machine has no network): pip's tensorrt-cu13 for CPython
#   UNET_TRT_PYTHON (default 3.12) on x86-64 Linux. TensorRT's libraries come as a wheel of about
#   1-2 GB from NVIDIA's own package index, which pip must be able to reach (PyPI itself has only a
#   stub that downloads it); UNET_TRT_WHEELS=DIR copies wheels fetched elsewhere instead.
set -euo pipefail
cd "$(dirname "$0")/.."

tensorrt=0
if [ "${1:-}" = --tensorrt ]; then tensorrt=1; shift; fi
out="${1:-.device}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

swift build -c release --static-swift-stdlib --product unet
binary=".build/release/unet"

mkdir -p "$stage/bin" "$stage/lib" "$out"
strip -o "$stage/bin/unet" "$binary"

# Every library the binary loads except the C and C++ runtimes, which the GPU machine has (glibc
# >= 2.35, libstdc++, libgcc_s); `ldd` lists the whole closure, so oneDNN's own needs come too.
base='^(linux-vdso|libc\.so|libm\.so|libstdc\+\+\.so|libgcc_s\.so|ld-linux|libpthread|libdl\.so|librt\.so)'
ldd "$binary" | awk '/=>/ { print $1, $3 }' | while read -r name path; do
  [[ "$name" =~ $base ]] && continue
  cp -L "$path" "$stage/lib/$name"
done

# The commit the binary is built from ("+dirty" with uncommitted changes), for its benchmark JSON.
commit="$(git rev-parse HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo +dirty)"
echo "$commit" > "$stage/COMMIT"

tar -C "$stage" -cf - bin lib COMMIT | xz -T0 -6 > "$out/unet-bundle.tar.xz"
echo "package-device: $out/unet-bundle.tar.xz ($(du -h "$out/unet-bundle.tar.xz" | cut -f1)): $(ls "$stage/lib" | tr '\n' ' ')"

# MARK: - TensorRT's wheels

if [ "$tensorrt" = 1 ]; then
  wheels="$out/tensorrt-wheels"
  mkdir -p "$wheels"
  if [ -n "${UNET_TRT_WHEELS:-}" ]; then
    cp "$UNET_TRT_WHEELS"/*.whl "$wheels/"
  else
    python="${UNET_PYTHON:-$( [ -x .venv/bin/python3 ] && echo .venv/bin/python3 || echo python3)}"
    version="${UNET_TRT_PYTHON:-3.12}"
    if ! "$python" -m pip download --quiet --only-binary=:all: --python-version "$version" --implementation cp \
        --platform manylinux_2_28_x86_64 --dest "$wheels" tensorrt-cu13; then
      echo "package-device: TensorRT's wheels were not fetched (its libraries wheel comes from NVIDIA's package index," \
        "not PyPI); fetch them where that index is reachable and pass the folder as UNET_TRT_WHEELS" >&2
      exit 1
    fi
  fi
  echo "package-device: $wheels: $(ls "$wheels" | tr '\n' ' ')($(du -sh "$wheels" | cut -f1))"
fi
