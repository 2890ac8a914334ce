#!/usr/bin/env bash
# The prometheus-operator's CRDs (PodMonitor, ServiceMonitor, PrometheusRule, …), as it publishes them
# in its Go module (example/prometheus-operator-crd), fetched through the Go module proxy into the Go
# module cache (once). Tests install them to check the chart's monitoring objects against the real
# schemas. Prints the folder of the CRD files on the last line of stdout.
set -euo pipefail
version="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
dir="$(cd /tmp && go mod download -json "github.com/prometheus-operator/prometheus-operator@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
crds="${dir}/example/prometheus-operator-crd"
[[ -f "${crds}/monitoring.coreos.com_podmonitors.yaml" ]] || { echo "no CRDs in ${crds}" >&2; exit 1; }
echo "${crds}"
