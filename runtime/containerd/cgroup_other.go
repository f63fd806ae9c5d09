//go:build !linux

package containerd

import (
	"errors"

	"github.com/warrenhq/warren/runtime"
)

type cgroupLayout struct{ v2Root string }

func detectCgroups(v2Root string) cgroupLayout { return cgroupLayout{v2Root: v2Root} }

func (l cgroupLayout) ensureV2(int, string) (bool, error) { return false, nil }

func (l cgroupLayout) remove(string) {}

func (l cgroupLayout) stats(string) (runtime.Stats, error) {
	return runtime.Stats{}, errors.New("task stats: cgroups are Linux only")
}
