#!/usr/bin/env bash
# Builds the local control plane's binaries (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, etcd, kwok, helm) from their Go modules into $WHISPEROPS_CACHE/k8s, unless they are
# cached already. Idempotent; about a second when everything is cached. See test/cluster/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
export WHISPEROPS_CACHE="${WHISPEROPS_CACHE:-$HOME/.cache/whisperops}"

say() { printf '[setup/cluster] %s\n' "$*" >&2; }

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need_apt+=(ca-certificates)
if ((${#need_apt[@]})); then
  say "installing Debian packages: ${need_apt[*]}"
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# The wrapper modules need Go >= 1.26. An older go (e.g. Debian's) fetches that toolchain from the
# Go module proxy (golang.org/toolchain), which is the one outside host besides package registries.
go_minor="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
if [[ -z "${go_minor}" || "${go_minor}" -lt 26 ]]; then
  export GOTOOLCHAIN="go1.26.8"
  say "local $(go env GOVERSION) is older than go1.26: using GOTOOLCHAIN=${GOTOOLCHAIN} from the module proxy"
fi

t0=$(date +%s)
bin="$(bash test/cluster/build/build.sh | tail -n 1)"
t1=$(date +%s)
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm; do
  [[ -x "${bin}/${b}" ]] || { say "missing ${bin}/${b} after the build"; exit 1; }
done
if [[ -f "${bin}/../build-seconds.txt" ]] && (( t1 - t0 > 5 )); then
  say "first build took $((t1 - t0)) s; per binary (s): $(tr '\n' ' ' < "${bin}/../build-seconds.txt")"
fi
say "binaries ready in ${bin} ($((t1 - t0)) s)"
