#!/usr/bin/env bash
# Installs the transformers.js baseline for bench-agent.ts OUTSIDE the repo (default /tmp/tfjs), so the
# project's dependencies stay lean. npm overrides point its onnxruntime-node and onnxruntime-common at
# the repo's own copies: one onnxruntime-node/onnxruntime-common serves both (it checks instanceof Tensor).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${WHISPEROPS_TFJS_DIR:-/tmp/tfjs}"
mkdir -p "$dir"
cat > "$dir/package.json" <<JSON
{
  "name": "whisperops-transformers-baseline",
  "private": true,
  "type": "module",
  "dependencies": { "@huggingface/transformers": "4.3.1" },
  "overrides": {
    "onnxruntime-node": "file:$repo/node_modules/onnxruntime-node",
    "onnxruntime-common": "file:$repo/node_modules/onnxruntime-common"
  }
}
JSON
cd "$dir"
npm install --no-audit --no-fund --ignore-scripts --loglevel=error
echo "transformers.js baseline installed in $dir (WHISPEROPS_TFJS_DIR)"
