# Shared shell helpers for scripts/*.sh (sourced, not executed).
# WHISPEROPS_CACHE holds everything heavy that is built or downloaded once: the Python environment,
# the Kubernetes binaries, synthesized audio. It lives outside the repo so clean clones reuse it.
export WHISPEROPS_CACHE="${WHISPEROPS_CACHE:-$HOME/.cache/whisperops}"
export ONNXRUNTIME_NODE_INSTALL=skip
export NODE_NO_WARNINGS=1
mkdir -p "$WHISPEROPS_CACHE"
# Node.js 24 LTS first on PATH for everything the scripts start (npm, jest, tsx, the cluster's
# process-node pods): the pinned one from the cache when the system's node is older (setup/node-runtime.sh).
whisperops_node_bin="$(bash "$(dirname "${BASH_SOURCE[0]}")/setup/node-runtime.sh" --print)"
if [[ -n "$whisperops_node_bin" ]]; then export PATH="$whisperops_node_bin:$PATH"; fi
unset whisperops_node_bin

log() { printf '\033[1m[%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*" >&2; }

# run_stage NAME CMD...: prints a banner and the stage's wall time.
run_stage() {
  local name="$1"; shift
  local t0; t0=$(date +%s)
  log "stage: $name"
  "$@"
  log "stage: $name done in $(( $(date +%s) - t0 )) s"
}
