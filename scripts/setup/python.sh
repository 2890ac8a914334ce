#!/usr/bin/env bash
# Creates (once) the Python environment of the trainer (trainer-image/) and installs the Debian
# packages it needs (espeak-ng). Idempotent and quiet when everything is already there.
#
#   bash scripts/setup/python.sh           # ensure; prints nothing when cached
#   bash scripts/setup/python.sh --print   # ensure, then print the venv's path on stdout
#
# The venv lives outside the repository, keyed by the hash of trainer-image/requirements*.txt:
#   ${WHISPEROPS_CACHE:-$HOME/.cache/whisperops}/venv-<hash>
# requirements.txt is a complete lock installed with --no-deps (see trainer-image/README.md,
# "Lean torch": it leaves out triton and the CUDA packages torch does not need to import).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${WHISPEROPS_CACHE:-$HOME/.cache/whisperops}"
PRINT=0
[[ "${1:-}" == "--print" ]] && PRINT=1

log() { echo "[python-setup] $*" >&2; }

# --- Debian packages (espeak-ng): one installer for the whole project ---------------------
bash "$ROOT/scripts/setup/debian.sh"

# --- venv ----------------------------------------------------------------------------------
PY="${WHISPEROPS_PYTHON:-python3}"
HASH="$(cat "$ROOT"/trainer-image/requirements*.txt | sha256sum | cut -c1-12)"
VENV="$CACHE/venv-$HASH"

if [[ ! -f "$VENV/.complete" ]]; then
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.venv-$HASH.lock"
  flock 9
  if [[ ! -f "$VENV/.complete" ]]; then
    log "creating $VENV (first run: downloads about 3 GB of wheels, a few minutes)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    export PIP_CACHE_DIR="$CACHE/pip"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
      -r "$ROOT/trainer-image/requirements.txt" >&2
    "$VENV/bin/python" -c "import torch, transformers, peft, optimum.exporters.onnx, onnxruntime, jiwer, soundfile, sklearn, jsonschema, boto3" >&2
    touch "$VENV/.complete"
    log "ready: $VENV"
  fi
fi

if ((PRINT)); then echo "$VENV"; fi
