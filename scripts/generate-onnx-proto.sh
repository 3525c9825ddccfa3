#!/usr/bin/env bash
# Regenerates Sources/ONNXProto/onnx.pb.swift, the Swift types of ONNX's protobuf schema, from
# Sources/ONNXProto/onnx.proto. The generated file is committed: building digits (and CI) needs only
# SwiftProtobuf's runtime library, not protoc or the plugin (whose first build takes minutes).
#
# usage: scripts/generate-onnx-proto.sh [--onnx VERSION]
#   --onnx VERSION  first replace onnx.proto and LICENSE with those of the `onnx` wheel of that
#                   version on PyPI (pip download; the wheel carries the .proto and its licence)
#
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-swift of the swift-protobuf version that
# Package.swift names, built here from the package's git repository into .build-protoc-gen-swift
# (or taken from $PROTOC_GEN_SWIFT). The generator and the runtime library must be the same version:
# the generated file checks it when compiled.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
swift_protobuf_version=1.39.0   # keep equal to Package.swift's swift-protobuf version
folder=Sources/ONNXProto

if [ "${1:-}" = --onnx ]; then
  version="${2:?--onnx needs a version, such as 1.23.2}"
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary :all: "onnx==$version" -d "$work"
  wheel="$(ls "$work"/onnx-*.whl | head -1)"
  unzip -q -o "$wheel" onnx/onnx.proto "onnx-$version.dist-info/licenses/LICENSE" -d "$work/x"
  cp "$work/x/onnx/onnx.proto" "$folder/onnx.proto"
  cp "$work/x/onnx-$version.dist-info/licenses/LICENSE" "$folder/LICENSE"
  echo "generate-onnx-proto: $folder/onnx.proto and LICENSE from onnx $version; update the version in $folder/README.md"
fi

command -v protoc > /dev/null || { echo "generate-onnx-proto: protoc is missing (Debian: apt-get install protobuf-compiler)" >&2; exit 1; }
plugin="${PROTOC_GEN_SWIFT:-}"
if [ -z "$plugin" ]; then
  source_dir=.build-protoc-gen-swift/swift-protobuf
  [ -d "$source_dir" ] || git clone --quiet https://github.com/apple/swift-protobuf "$source_dir"
  git -C "$source_dir" -c advice.detachedHead=false checkout --quiet "$swift_protobuf_version"
  swift build -c release --package-path "$source_dir" --scratch-path .build-protoc-gen-swift/build --product protoc-gen-swift
  plugin=".build-protoc-gen-swift/build/release/protoc-gen-swift"
fi

# Visibility=Public: the types are used from the ONNXExport target.
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public --swift_out="$folder" -I "$folder" "$folder/onnx.proto"
echo "generate-onnx-proto: wrote $folder/onnx.pb.swift ($(protoc --version), protoc-gen-swift $swift_protobuf_version)"
