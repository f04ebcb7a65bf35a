#!/usr/bin/env bash
# Builds what scripts/device-check.sh runs on a GPU machine that has no Swift toolchain: a release
# `unet` with the Swift runtime linked in statically, stripped, plus the shared libraries it loads
# that such a machine may lack (oneDNN, libtiff, libpng and theirs), all in one xz archive:
#   .device/unet-bundle.tar.xz   (bin/unet, lib/*.so*, COMMIT: the commit it was built from; openmpi/ and
#   pmix/: Open MPI's runtime, for the NCCL check under mpirun)
# The archive stays under the 64 MiB that travels to the lent machine (about 25 MB today).
# Usage: bash scripts/package-device.sh [--tensorrt] [OUTPUT_DIR]   (default .device, ignored by git)
# --tensorrt also fetches TensorRT's Python wheels for device-check.sh's TensorRT step into
#   OUTPUT_DIR/tensorrt-wheels (the GPU machine has no network): tensorrt-cu13-bindings and
#   tensorrt-cu13-libs UNET_TRT_VERSION (default 11.4.0.106) for CPython UNET_TRT_PYTHON (default
#   3.12) on x86-64 Linux. PyPI holds the bindings; the libraries (a wheel of 1-2 GB) are on NVIDIA's
#   own package index only (PyPI has a stub that fetches them at install time): give that index as
#   UNET_TRT_INDEX_URL, or copy wheels fetched elsewhere with UNET_TRT_WHEELS=DIR.
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

# MARK: - Open MPI

# device-check.sh runs the NCCL path as `mpirun -np 1 unet train --device cuda` (NCCL's unique id goes
# through MPI); a GPU machine may have no MPI, so Open MPI's runtime travels too: mpirun (orterun),
# orted, libmpi with its plug-ins and help texts, and the PMIx library's plug-ins, laid out under
# openmpi/ as under their prefixes here, so that OPAL_PREFIX and PMIX_INSTALL_PREFIX relocate them;
# the shared libraries they need join lib/. NCCL itself (300 MB) does not fit in the archive:
# device-check.sh finds libnccl.so.2 in the machine's pip packages like the other CUDA libraries.
if command -v ompi_info >/dev/null && command -v orterun >/dev/null; then
  ompi="$stage/openmpi"
  path() { ompi_info --path "$1" --parsable | cut -d: -f3; }
  prefix="$(path prefix)"
  for dir in "$(path libdir)" "$(path pkglibdir)" "$(path pkgdatadir)"; do
    mkdir -p "$ompi${dir#"$prefix"}"
    cp -a "$dir/." "$ompi${dir#"$prefix"}/"
  done
  mkdir -p "$ompi/bin"
  cp -L "$(command -v orterun)" "$ompi/bin/orterun"
  cp -L "$(command -v orted)" "$ompi/bin/orted"
  ln -s orterun "$ompi/bin/mpirun"
  pmix="$(ompi_info | sed -n "s/.*'--with-pmix=\([^']*\)'.*/\1/p")"
  if [ -n "$pmix" ] && [ -d "$pmix/lib/pmix" ]; then
    mkdir -p "$stage/pmix/lib"
    cp -a "$pmix/lib/pmix" "$stage/pmix/lib/"
    [ -d "$pmix/share" ] && cp -a "$pmix/share" "$stage/pmix/"
  fi
  # The closure of every Open MPI and PMIx binary and plug-in, less what the GPU machine has.
  find "$ompi" "$stage/pmix" -type f \( -name '*.so*' -o -path '*/bin/*' \) 2>/dev/null | while read -r f; do
    ldd "$f" 2>/dev/null | awk '/=>/ { print $1, $3 }'
  done | sort -u | while read -r name lib; do
    [[ "$name" =~ $base ]] && continue
    [ -f "$lib" ] && [ ! -e "$stage/lib/$name" ] && cp -L "$lib" "$stage/lib/$name"
  done
else
  echo "package-device: no Open MPI here (apt-get install openmpi-bin libopenmpi-dev): the bundle has no mpirun" >&2
fi

# The commit the binary is built from ("+dirty" with uncommitted changes), for its benchmark JSON.
commit="$(git rev-parse HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo +dirty)"
echo "$commit" > "$stage/COMMIT"

tar -C "$stage" -cf - $(cd "$stage" && ls -d bin lib COMMIT openmpi pmix 2>/dev/null) | xz -T0 -6 > "$out/unet-bundle.tar.xz"
echo "package-device: $out/unet-bundle.tar.xz ($(du -h "$out/unet-bundle.tar.xz" | cut -f1)): $(ls "$stage/lib" | tr '\n' ' ')"

# MARK: - TensorRT's wheels

if [ "$tensorrt" = 1 ]; then
  wheels="$out/tensorrt-wheels"
  mkdir -p "$wheels"
  if [ -n "${UNET_TRT_WHEELS:-}" ]; then
    cp "$UNET_TRT_WHEELS"/*.whl "$wheels/"
  else
    python="${UNET_PYTHON:-$( [ -x .venv/bin/python3 ] && echo .venv/bin/python3 || echo python3)}"
    version="${UNET_TRT_VERSION:-11.4.0.106}"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version "${UNET_TRT_PYTHON:-3.12}" \
      --implementation cp --platform manylinux_2_28_x86_64 --dest "$wheels" \
      ${UNET_TRT_INDEX_URL:+--extra-index-url "$UNET_TRT_INDEX_URL"} \
      "tensorrt-cu13-bindings==$version" "tensorrt-cu13-libs==$version" || true
  fi
  if ! ls "$wheels"/tensorrt_cu13_libs-*.whl >/dev/null 2>&1 || ! ls "$wheels"/tensorrt_cu13_bindings-*.whl >/dev/null 2>&1; then
    echo "package-device: $wheels lacks TensorRT's libraries or bindings wheel ($(ls "$wheels" | tr '\n' ' '));" \
      "the libraries come from NVIDIA's package index: set UNET_TRT_INDEX_URL to it, or UNET_TRT_WHEELS to wheels fetched elsewhere" >&2
    exit 1
  fi
  echo "package-device: $wheels: $(ls "$wheels" | tr '\n' ' ')($(du -sh "$wheels" | cut -f1))"
fi
