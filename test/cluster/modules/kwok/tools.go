//go:build tools

// Package tools pins the kwok controller command so `go mod tidy` keeps its dependencies.
// Kept in its own module: the Kubernetes wrapper's replace lines must not move kwok's libraries.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
