//go:build !linux

package cni

import "errors"

// PrepareNode needs Linux.
func PrepareNode(NetConf) error { return errors.New("cni: Linux only") }
