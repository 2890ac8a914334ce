//go:build tools

// Package tools pins the helm command so `go mod tidy` keeps its dependencies.
// Kept in its own module: the Kubernetes wrapper's replace lines must not move helm's libraries.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
