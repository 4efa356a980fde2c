#!/bin/sh
# Regenerates src/gen/echo.ts and src/gen/echo_pb.ts from proto/echo.proto: buf lints the proto,
# then runs the ts-proto and protoc-gen-es plugins installed in the workspace (buf.gen.yaml).
# Everything is local: no remote plugins, no BSR dependencies, no network.
set -eu
cd "$(dirname "$0")/.."
bin=../../node_modules/.bin
for tool in buf protoc-gen-ts_proto protoc-gen-es; do
  if [ ! -x "$bin/$tool" ]; then
    echo "gen.sh: $bin/$tool is missing; run npm install at the repository root" >&2
    exit 1
  fi
done
"$bin/buf" lint
"$bin/buf" generate
echo "generated src/gen/echo.ts and src/gen/echo_pb.ts"
