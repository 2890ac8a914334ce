#!/usr/bin/env bash
# Builds (or finds cached) gitops-check (test/cluster/modules/gitops-check: the kstatus library and
# gopher-lua, to judge whisperops objects as Flux/kpt and Argo CD do). The cache key is the hash of the
# module's sources and the Go version, so any change rebuilds it:
#   $WHISPEROPS_CACHE/k8s/gitops-check-<hash>/bin/gitops-check
# Prints that bin dir on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$(cd "${here}/../modules/gitops-check" && pwd)"
cache_root="${WHISPEROPS_CACHE:-${HOME}/.cache/whisperops}/k8s"
log() { printf '[gitops-check-build] %s\n' "$*" >&2; }

hash="$( { go env GOVERSION; cd "${mod_dir}" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | while read -r f; do printf '%s\n' "$f"; cat "$f"; done; } | sha256sum | cut -c1-16)"
dir="${cache_root}/gitops-check-${hash}"
if [[ ! -f "${dir}/.complete" ]]; then
  mkdir -p "${dir}/bin"
  start="$(date +%s)"
  log "go build gitops-check -> ${dir}/bin"
  (cd "${mod_dir}" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -p "${WHISPEROPS_GO_PARALLEL:-2}" -trimpath -ldflags "-s -w" -o "${dir}/bin/gitops-check.tmp" .)
  mv -f "${dir}/bin/gitops-check.tmp" "${dir}/bin/gitops-check"
  end="$(date +%s)"
  printf 'gitops-check %s\n' "$((end - start))" > "${dir}/build-seconds.txt"
  date -u +%Y-%m-%dT%H:%M:%SZ > "${dir}/.complete"
  log "built in $((end - start)) s"
fi
echo "${dir}/bin"
