#!/usr/bin/env bash
# Everything the demo and the tests need on a fresh Debian machine; idempotent and cached.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
run_stage "debian packages" bash scripts/setup/debian.sh
run_stage "node runtime (Node 24 LTS)" bash scripts/setup/node-runtime.sh
run_stage "npm packages" bash scripts/setup/node.sh
run_stage "python environment" bash scripts/setup/python.sh
run_stage "dockerfile linter (hadolint)" bash scripts/setup/hadolint.sh
run_stage "kubernetes binaries" bash scripts/setup/cluster.sh
