#!/usr/bin/env bash
# The main job: a local demo of whisperops on the embedded model (see scripts/demo.ts for the steps).
# Installs what it needs (cached), then runs the demo. Flags: --keep (leave the cluster running),
# --retrain (ignore the cached fine-tune).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bash scripts/setup/all.sh
exec node --import tsx scripts/demo.ts "$@"
