#!/usr/bin/env bash
# Builds (or finds cached) the process-node program (test/cluster/modules/process-node: virtual-kubelet
# nodes that run the project's pods as host processes) and its LD_PRELOAD bind shim. The cache key is
# the hash of the module's sources and the Go version, so any change rebuilds it:
#   $WHISPEROPS_CACHE/k8s/process-node-<hash>/bin/{process-node,bindshim.so}
# Prints that bin dir on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$(cd "${here}/../modules/process-node" && pwd)"
cache_root="${WHISPEROPS_CACHE:-${HOME}/.cache/whisperops}/k8s"
log() { printf '[process-node-build] %s\n' "$*" >&2; }

hash="$( { go env GOVERSION; gcc --version | head -n 1; cd "${mod_dir}" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.c' \) | LC_ALL=C sort | while read -r f; do printf '%s\n' "$f"; cat "$f"; done; } | sha256sum | cut -c1-16)"
dir="${cache_root}/process-node-${hash}"
if [[ ! -f "${dir}/.complete" ]]; then
  mkdir -p "${dir}/bin"
  start="$(date +%s)"
  log "go build process-node -> ${dir}/bin"
  (cd "${mod_dir}" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -p "${WHISPEROPS_GO_PARALLEL:-2}" -trimpath -ldflags "-s -w" -o "${dir}/bin/process-node.tmp" .)
  mv -f "${dir}/bin/process-node.tmp" "${dir}/bin/process-node"
  gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "${dir}/bin/bindshim.so" "${mod_dir}/bindshim/bindshim.c" -ldl
  end="$(date +%s)"
  printf 'process-node %s\n' "$((end - start))" > "${dir}/build-seconds.txt"
  date -u +%Y-%m-%dT%H:%M:%SZ > "${dir}/.complete"
  log "built in $((end - start)) s"
fi
echo "${dir}/bin"
