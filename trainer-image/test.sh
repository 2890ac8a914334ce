#!/usr/bin/env bash
# Runs the trainer's pytest suite in the venv that scripts/setup/python.sh creates (and creates it if
# needed). Extra arguments go to pytest, e.g. `bash trainer-image/test.sh -k jobspec`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$(bash "$HERE/../scripts/setup/python.sh" --print)"
cd "$HERE"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false PYTHONDONTWRITEBYTECODE=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
if (($#)); then set -- "$@"; else set -- tests; fi
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
