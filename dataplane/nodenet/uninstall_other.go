//go:build !linux

package nodenet

// Uninstall has nothing to remove where the node network is not built in
// the kernel.
func Uninstall(Installed) ([]string, error) { return nil, nil }
