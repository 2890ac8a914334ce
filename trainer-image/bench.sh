#!/usr/bin/env bash
# Benchmark of the trainer (see bench/bench_finetune.py). Usage: bash trainer-image/bench.sh [--size cpu|gpu|tiny] [...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$(bash "$HERE/../scripts/setup/python.sh" --print)"
cd "$HERE"
exec nice "$VENV/bin/python" bench/bench_finetune.py "$@"
