#!/usr/bin/env bash
# Builds the local control plane's binaries (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, etcd, kwok, helm, prometheus, promtool, versitygw) from their Go modules into $WHISPEROPS_CACHE/k8s, unless they are
# cached already. Idempotent; about a second when everything is cached. See test/cluster/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
export WHISPEROPS_CACHE="${WHISPEROPS_CACHE:-$HOME/.cache/whisperops}"

say() { printf '[setup/cluster] %s\n' "$*" >&2; }

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# gcc builds the process nodes' bind shim; nsenter (util-linux) runs probes and kubectl exec in pods.
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need_apt+=(ca-certificates)
if ((${#need_apt[@]})); then
  say "installing Debian packages: ${need_apt[*]}"
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# The wrapper modules need Go >= 1.26. Debian 12's golang-go is 1.19, too old even for GOTOOLCHAIN,
# so fetch the Go toolchain as the module golang.org/toolchain from the Go module proxy (what the go
# command's own toolchain switch does) and put it first on PATH.
go_toolchain="go1.26.8"
go_minor="$(go version | sed -n 's/^go version go1\.\([0-9]*\).*/\1/p')"
if [[ -z "${go_minor}" || "${go_minor}" -lt 26 ]]; then
  arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
  mod="golang.org/toolchain@v0.0.1-${go_toolchain}.linux-${arch}"
  say "$(go version) is older than go1.26: fetching ${mod} from the Go module proxy"
  dir="$(cd /tmp && go mod download -json "${mod}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -n "${dir}" && -f "${dir}/bin/go" ]] || { say "could not download ${mod}"; exit 1; }
  # Module zips carry no file modes.
  chmod +x "${dir}/bin/"* "${dir}/pkg/tool/"*/* 2>/dev/null || true
  export GOROOT="${dir}" PATH="${dir}/bin:${PATH}" GOTOOLCHAIN=local
  say "using $(go version)"
fi

t0=$(date +%s)
bin="$(bash test/cluster/build/build.sh | tail -n 1)"
t1=$(date +%s)
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm prometheus promtool versitygw; do
  [[ -x "${bin}/${b}" ]] || { say "missing ${bin}/${b} after the build"; exit 1; }
done
if [[ -f "${bin}/../build-seconds.txt" ]] && (( t1 - t0 > 5 )); then
  say "first build took $((t1 - t0)) s; per binary (s): $(tr '\n' ' ' < "${bin}/../build-seconds.txt")"
fi
say "binaries ready in ${bin} ($((t1 - t0)) s)"

# The process-backed nodes' program (our own source: keyed by its hash, rebuilt when it changes).
pn="$(bash test/cluster/build/build-process-node.sh | tail -n 1)"
say "process-node ready in ${pn} ($(( $(date +%s) - t1 )) s)"

# gitops-check: kstatus and gopher-lua, to judge objects as Flux/kpt and Argo CD do (tests only).
t2="$(date +%s)"
gc="$(bash test/cluster/build/build-gitops-check.sh | tail -n 1)"
say "gitops-check ready in ${gc} ($(( $(date +%s) - t2 )) s)"
# The prometheus-operator's CRDs (from its Go module; the monitoring e2e installs them).
say "prometheus-operator CRDs in $(bash test/cluster/build/prometheus-operator-crds.sh | tail -n 1)"
