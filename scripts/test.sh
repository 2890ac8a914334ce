#!/usr/bin/env bash
# The whole test suite: installs what it needs (cached), then type-check, lint, unit tests,
# end-to-end tests against the real local control plane, and the trainer's pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
t0=$(date +%s)
bash scripts/setup/all.sh
run_stage "typecheck" npm run --silent typecheck
run_stage "lint" npm run --silent lint
run_stage "unit tests" npm run --silent test:unit
run_stage "process-node tests (go)" bash test/cluster/modules/process-node/check.sh
run_stage "gitops-check tests (go)" bash test/cluster/modules/gitops-check/check.sh
run_stage "e2e tests (real control plane)" npm run --silent test:e2e
run_stage "trainer tests (pytest)" bash trainer-image/test.sh
log "all tests passed in $(( $(date +%s) - t0 )) s"
