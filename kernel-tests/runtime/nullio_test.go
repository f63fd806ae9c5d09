//go:build linux

package runtimetest

import "github.com/containerd/containerd/v2/pkg/cio"

var nullIO = cio.NullIO
