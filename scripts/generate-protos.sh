#!/usr/bin/env bash
# Regenerates gateway/_pb from proto/. The output is committed; tests/unit/test_generated.py
# fails when it is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gateway/_pb}"
rm -rf "$out"
mkdir -p "$out"
python -m grpc_tools.protoc -Iproto \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" \
  $(cd proto && find . -name '*.proto' | sort | sed 's|^\./||')
# grpc_tools emits absolute imports ("from hitl.gateway.v1 import ..."); rewrite them to live
# under gateway._pb so the generated code needs no sys.path tricks.
find "$out" -name '*.py' -o -name '*.pyi' | sort | while read -r f; do
  sed -i -E 's/^from (hitl|inference)(\.[a-z0-9_.]+)? import/from gateway._pb.\1\2 import/; s/^import (hitl|inference)(\.[a-z0-9_.]+)?\.([a-z0-9_]+_pb2)$/import gateway._pb.\1\2.\3/' "$f"
done
find "$out" -type d -exec sh -c 'touch "$1/__init__.py"' _ {} \;
touch "$out/py.typed"
