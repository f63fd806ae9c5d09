//go:build !linux

package main

import "errors"

func runCNI() error { return errors.New("warren-cni runs on Linux only") }

func ensureBPFFS() error { return nil }

func closeInheritedOnExec() {}
