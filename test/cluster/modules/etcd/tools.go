//go:build tools

// Package tools pins the etcd server command (the main package at the root of
// go.etcd.io/etcd/server/v3) so `go mod tidy` keeps its dependencies. Never compiled.
package tools

import _ "go.etcd.io/etcd/server/v3"
