//go:build tools

// Package tools pins the versitygw S3 gateway command so `go mod tidy` keeps its dependencies.
// Kept in its own module so its AWS SDK and other libraries move nothing else.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
