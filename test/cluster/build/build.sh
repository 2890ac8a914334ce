#!/usr/bin/env bash
# Builds (or finds cached) the binaries of the local control plane from their Go modules:
#   kubernetes: kube-apiserver kube-controller-manager kube-scheduler kubectl (k8s.io/kubernetes)
#   etcd:       etcd (go.etcd.io/etcd/server/v3)
#   kwok:       kwok (sigs.k8s.io/kwok/cmd/kwok)
#   helm:       helm (helm.sh/helm/v3/cmd/helm)
#   prometheus: prometheus, promtool (github.com/prometheus/prometheus/cmd/…, module v0.3MM.P = Prometheus 3.MM.P)
#   versitygw:  versitygw (github.com/versity/versitygw/cmd/versitygw), the S3 gateway
# Each component is cached under $WHISPEROPS_CACHE/k8s/<component>-<version>/bin; the set the
# harness uses is assembled (hard links) in $WHISPEROPS_CACHE/k8s/<version-key>/bin, whose path is
# printed on the last line of stdout.
#
# Usage: build.sh [component...]   (default: all). Env: WHISPEROPS_CACHE, WHISPEROPS_GO_PARALLEL (-p, default 2).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cluster_dir="$(cd "${here}/.." && pwd)"
# shellcheck source=../versions.env
source "${cluster_dir}/versions.env"

cache_root="${WHISPEROPS_CACHE:-${HOME}/.cache/whisperops}/k8s"
go_parallel="${WHISPEROPS_GO_PARALLEL:-2}"
go_version="$(go env GOVERSION)"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false"

log() { printf '[cluster-build] %s\n' "$*" >&2; }

# Runs go build for one main package; records the seconds it took in <dir>/build-seconds.txt.
go_build() {
  local out="$1" pkg="$2" tags="$3" ldflags="$4" times="$5"
  local start end
  start="$(date +%s)"
  log "go build ${pkg} -> ${out}"
  go build -p "${go_parallel}" -trimpath ${tags:+-tags "${tags}"} -ldflags "${ldflags}" -o "${out}.tmp" "${pkg}"
  mv -f "${out}.tmp" "${out}"
  end="$(date +%s)"
  printf '%s %s\n' "$(basename "${out}")" "$((end - start))" >> "${times}"
  log "built $(basename "${out}") in $((end - start)) s"
}

# component_dir <name> <version>
component_dir() { printf '%s/%s-%s' "${cache_root}" "$1" "$2"; }

is_complete() { [[ -f "$1/.complete" ]]; }

finish() {
  local dir="$1"
  printf 'go=%s\nbuilt=%s\n' "${go_version}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "${dir}/.complete"
  if [[ -f "${dir}/build-seconds.txt" ]]; then
    log "$(basename "${dir}") build times (s): $(tr '\n' ' ' < "${dir}/build-seconds.txt")"
  fi
}

build_kubernetes() {
  local dir; dir="$(component_dir kubernetes "${KUBERNETES_VERSION}")"
  is_complete "${dir}" && return 0
  local mod_dir="${cluster_dir}/modules/kubernetes"
  if ! grep -q "^require k8s.io/kubernetes ${KUBERNETES_VERSION}\$" "${mod_dir}/go.mod"; then
    log "modules/kubernetes/go.mod is not for ${KUBERNETES_VERSION}: regenerating it"
    bash "${here}/gen-kubernetes-mod.sh"
  fi
  mkdir -p "${dir}/bin"; rm -f "${dir}/build-seconds.txt"
  local v="${KUBERNETES_VERSION#v}" info build_date major minor
  major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
  # Reproducible build date: the module's publication time from the proxy.
  info="$(cd "${mod_dir}" && go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p')"
  build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${info}")"
  local ldflags="-s -w" key
  for key in "gitVersion=${KUBERNETES_VERSION}" "gitMajor=${major}" "gitMinor=${minor}" \
             "gitTreeState=clean" "buildDate=${build_date}"; do
    ldflags+=" -X k8s.io/client-go/pkg/version.${key} -X k8s.io/component-base/version.${key}"
  done
  # Tags and flags as upstream's hack/lib/golang.sh uses for non-debug builds.
  local tags="selinux,notest,grpcnotrace" cmd
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    (cd "${mod_dir}" && go_build "${dir}/bin/${cmd}" "k8s.io/kubernetes/cmd/${cmd}" "${tags}" "${ldflags}" "${dir}/build-seconds.txt")
  done
  finish "${dir}"
}

# Points a wrapper module at MODULE@VERSION when its go.mod pins another version.
ensure_module_version() {
  local mod_dir="$1" module="$2" version="$3"
  if ! grep -q "${module} ${version}\$" "${mod_dir}/go.mod"; then
    log "modules/$(basename "${mod_dir}")/go.mod is not for ${version}: updating it"
    (cd "${mod_dir}" && go get "${module}@${version}" && go mod tidy)
  fi
}

build_etcd() {
  local dir; dir="$(component_dir etcd "${ETCD_VERSION}")"
  is_complete "${dir}" && return 0
  local mod_dir="${cluster_dir}/modules/etcd"
  ensure_module_version "${mod_dir}" go.etcd.io/etcd/server/v3 "${ETCD_VERSION}"
  mkdir -p "${dir}/bin"; rm -f "${dir}/build-seconds.txt"
  # etcd's own build (scripts/build_lib.sh) stamps the git SHA; the version is compiled in.
  (cd "${mod_dir}" && go_build "${dir}/bin/etcd" "go.etcd.io/etcd/server/v3" "" \
    "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" "${dir}/build-seconds.txt")
  finish "${dir}"
}

build_kwok() {
  local dir; dir="$(component_dir kwok "${KWOK_VERSION}")"
  is_complete "${dir}" && return 0
  local mod_dir="${cluster_dir}/modules/kwok"
  ensure_module_version "${mod_dir}" sigs.k8s.io/kwok "${KWOK_VERSION}"
  mkdir -p "${dir}/bin"; rm -f "${dir}/build-seconds.txt"
  (cd "${mod_dir}" && go_build "${dir}/bin/kwok" "sigs.k8s.io/kwok/cmd/kwok" "" \
    "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" "${dir}/build-seconds.txt")
  finish "${dir}"
}

build_helm() {
  local dir; dir="$(component_dir helm "${HELM_VERSION}")"
  is_complete "${dir}" && return 0
  local mod_dir="${cluster_dir}/modules/helm"
  ensure_module_version "${mod_dir}" helm.sh/helm/v3 "${HELM_VERSION}"
  mkdir -p "${dir}/bin"; rm -f "${dir}/build-seconds.txt"
  # Without these, helm believes the cluster is Kubernetes 1.20 (pkg/chartutil/capabilities.go).
  local kv="${KUBERNETES_VERSION#v}" kmaj kmin
  kmaj="${kv%%.*}"; kmin="${kv#*.}"; kmin="${kmin%%.*}"
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${kmaj} -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${kmin}"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${kmaj} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${kmin}"
  (cd "${mod_dir}" && go_build "${dir}/bin/helm" "helm.sh/helm/v3/cmd/helm" "" "${ldflags}" "${dir}/build-seconds.txt")
  finish "${dir}"
}

# Prometheus 3.MM.P is published as the Go module version v0.3MM.P (0.(100*major+minor).patch).
prometheus_module_version() {
  local v="${PROMETHEUS_VERSION#v}" major minor patch
  IFS=. read -r major minor patch <<< "${v}"
  printf 'v0.%d.%d' "$((major * 100 + minor))" "${patch}"
}

# Publication time of MODULE@VERSION on the proxy (reproducible build date).
module_time() {
  local mod_dir="$1" module="$2" version="$3" info
  info="$(cd "${mod_dir}" && go mod download -json "${module}@${version}" | sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p')"
  sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${info}"
}

build_prometheus() {
  local dir; dir="$(component_dir prometheus "${PROMETHEUS_VERSION}")"
  is_complete "${dir}" && return 0
  local mod_dir="${cluster_dir}/modules/prometheus" modv
  modv="$(prometheus_module_version)"
  ensure_module_version "${mod_dir}" github.com/prometheus/prometheus "${modv}"
  mkdir -p "${dir}/bin"; rm -f "${dir}/build-seconds.txt"
  # As promu stamps release builds (.promu.yml); the revision is the module version (no git here),
  # the build date the module's publication time.
  local t build_date pv="github.com/prometheus/common/version"
  t="$(module_time "${mod_dir}" github.com/prometheus/prometheus "${modv}")"
  build_date="$(date -u -d "${t}" +%Y%m%d-%H:%M:%S)"
  local ldflags="-s -w -X ${pv}.Version=${PROMETHEUS_VERSION#v} -X ${pv}.Revision=${modv}"
  ldflags+=" -X ${pv}.Branch=HEAD -X ${pv}.BuildUser=whisperops@localhost -X ${pv}.BuildDate=${build_date}"
  # Only Kubernetes service discovery: the other discoverers are not needed and cost build time.
  (cd "${mod_dir}" && go_build "${dir}/bin/prometheus" github.com/prometheus/prometheus/cmd/prometheus \
    "remove_all_sd,enable_kubernetes_sd" "${ldflags}" "${dir}/build-seconds.txt")
  (cd "${mod_dir}" && go_build "${dir}/bin/promtool" github.com/prometheus/prometheus/cmd/promtool \
    "remove_all_sd,enable_kubernetes_sd" "${ldflags}" "${dir}/build-seconds.txt")
  finish "${dir}"
}

build_versitygw() {
  local dir; dir="$(component_dir versitygw "${VERSITYGW_VERSION}")"
  is_complete "${dir}" && return 0
  local mod_dir="${cluster_dir}/modules/versitygw"
  ensure_module_version "${mod_dir}" github.com/versity/versitygw "${VERSITYGW_VERSION}"
  mkdir -p "${dir}/bin"; rm -f "${dir}/build-seconds.txt"
  local t; t="$(module_time "${mod_dir}" github.com/versity/versitygw "${VERSITYGW_VERSION}")"
  # Its Makefile stamps main.Version/Build/BuildTime.
  (cd "${mod_dir}" && go_build "${dir}/bin/versitygw" github.com/versity/versitygw/cmd/versitygw "" \
    "-s -w -X main.Version=${VERSITYGW_VERSION} -X main.Build=${VERSITYGW_VERSION} -X main.BuildTime=${t}" "${dir}/build-seconds.txt")
  finish "${dir}"
}

components=("$@")
((${#components[@]})) || components=(kubernetes etcd kwok helm prometheus versitygw)
for c in "${components[@]}"; do
  case "${c}" in
    kubernetes|etcd|kwok|helm|prometheus|versitygw) "build_${c}" ;;
    *) echo "unknown component ${c}" >&2; exit 2 ;;
  esac
done

# Assemble the versioned bin dir the harness uses, once every component exists.
# config.ts versionKey() spells it the same way.
key="kube-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_prometheus-${PROMETHEUS_VERSION}_versitygw-${VERSITYGW_VERSION}"
set_dir="${cache_root}/${key}"
pairs=("kubernetes ${KUBERNETES_VERSION}" "etcd ${ETCD_VERSION}" "kwok ${KWOK_VERSION}" "helm ${HELM_VERSION}"
       "prometheus ${PROMETHEUS_VERSION}" "versitygw ${VERSITYGW_VERSION}")
all_present=1
for pair in "${pairs[@]}"; do
  # shellcheck disable=SC2086
  is_complete "$(component_dir ${pair})" || all_present=0
done
if ((all_present)); then
  if [[ ! -f "${set_dir}/.complete" ]]; then
    rm -rf "${set_dir}"; mkdir -p "${set_dir}/bin"
    for pair in "${pairs[@]}"; do
      # shellcheck disable=SC2086
      src="$(component_dir ${pair})"
      ln -f "${src}"/bin/* "${set_dir}/bin/" 2>/dev/null || cp -f "${src}"/bin/* "${set_dir}/bin/"
      [[ -f "${src}/build-seconds.txt" ]] && cat "${src}/build-seconds.txt" >> "${set_dir}/build-seconds.txt"
    done
    date -u +%Y-%m-%dT%H:%M:%SZ > "${set_dir}/.complete"
  fi
  echo "${set_dir}/bin"
fi
