#!/bin/sh
# Rebuilds types.pb from types.proto with protoc (Debian's protobuf-compiler).
set -eu
cd "$(dirname "$0")"
protoc --include_imports --descriptor_set_out=types.pb types.proto
