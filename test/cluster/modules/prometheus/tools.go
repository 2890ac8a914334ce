//go:build tools

// Package tools pins the Prometheus server and promtool commands so `go mod tidy` keeps their
// dependencies. Kept in its own module so its client-go and OpenTelemetry versions move nothing else.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
