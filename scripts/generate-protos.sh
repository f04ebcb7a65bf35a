#!/usr/bin/env bash
# Regenerates the Swift code of our protobuf subsets (Protos/*.proto) with protoc and
# swift-protobuf's protoc-gen-swift, both at the versions the package uses. The output is
# committed; CI never runs this. Needs Debian's protobuf-compiler and a Swift toolchain:
#   scripts/generate-protos.sh [a swift-protobuf checkout, or a git URL or path to clone it from]
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.39.0
source=${1:-https://github.com/apple/swift-protobuf}
command -v protoc >/dev/null || { echo "generate-protos: protoc is missing: apt-get install -y protobuf-compiler" >&2; exit 1; }

# MARK: - protoc-gen-swift

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -f "$source/Package.swift" ]; then
  plugin_src=$source
else
  git clone --quiet --depth 1 --branch "$version" "$source" "$work/swift-protobuf"
  plugin_src=$work/swift-protobuf
fi
(cd "$plugin_src" && swift build -c release --product protoc-gen-swift)
plugin=$(cd "$plugin_src" && swift build -c release --show-bin-path)/protoc-gen-swift

# MARK: - Generation

# ONNX's schema for SegExport, TensorBoard's event for SegTrain's TensorBoard callback; both
# internal to their module.
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Internal \
  --proto_path=Protos --swift_out=Sources/SegExport/Generated Protos/onnx.proto
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Internal \
  --proto_path=Protos --swift_out="$work" Protos/tensorboard_event.proto
mv "$work/tensorboard_event.pb.swift" Sources/SegTrain/Callbacks/TensorBoardEvent.pb.swift
echo "generate-protos: wrote Sources/SegExport/Generated/onnx.pb.swift and Sources/SegTrain/Callbacks/TensorBoardEvent.pb.swift"
