#!/usr/bin/env bash
# Debian packages the demo and the tests need: espeak-ng (real speech for tests), sox (audio checks),
# openssl (cluster certificates). Installs only what is missing; `apt-get update` runs only when
# something must be installed.
set -euo pipefail
need=()
for pkg in espeak-ng sox openssl ca-certificates; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "missing ${need[*]} and not root: install them with apt-get" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "installing Debian packages: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
