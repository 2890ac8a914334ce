#!/usr/bin/env bash
# gitops-check's checks: gofmt, go vet, go test.
set -euo pipefail
cd "$(dirname "$0")"
unformatted="$(gofmt -l .)"
[[ -z "${unformatted}" ]] || { echo "gofmt: not formatted: ${unformatted}" >&2; exit 1; }
go vet ./...
go test -count=1 ./...
