#!/usr/bin/env bash
# npm packages from the lock file; re-runs `npm ci` only when package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
stamp=node_modules/.whisperops-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
