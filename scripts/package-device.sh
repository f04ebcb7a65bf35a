#!/usr/bin/env bash
# Builds what scripts/device-check.sh runs on a GPU machine that has no Swift toolchain: a release
# `unet` with the Swift runtime linked in statically, stripped, plus the shared libraries it loads
# that such a machine may lack (oneDNN, libtiff, libpng and theirs), all in one xz archive:
#   .device/unet-bundle.tar.xz   (bin/unet, lib/*.so*, COMMIT: the commit it was built from)
# The archive stays under the 64 MiB that travels to the lent machine (about 25 MB today).
# Usage: bash scripts/package-device.sh [OUTPUT_DIR]   (default .device, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."

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
