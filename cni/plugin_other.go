//go:build !linux

package cni

import (
	"fmt"
	"os"
)

// Main reports that the plugin only runs on Linux, in the CNI error format.
func Main() {
	fmt.Fprintln(os.Stdout, `{"cniVersion":"1.1.0","code":50,"msg":"warren-cni runs on Linux only"}`)
	os.Exit(1)
}
