#!/usr/bin/env bash
# `node "$@"` on Node.js 24 LTS: package.json's scripts start jest, tsx, tsc and eslint through it, so
# `npm run <script>` uses Node 24 (and puts it first on PATH for every child process) whatever node the
# shell has. The pinned Node is installed into the cache on first use (scripts/setup/node-runtime.sh).
set -euo pipefail
bin="$(bash "$(dirname "${BASH_SOURCE[0]}")/setup/node-runtime.sh" --print)"
if [[ -n "$bin" ]]; then export PATH="$bin:$PATH"; fi
exec node "$@"
