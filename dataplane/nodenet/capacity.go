package nodenet

import (
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// HostCapacity is what the scheduler may hand out on this node: every CPU
// and the memory /proc/meminfo reports (none where it cannot be read).
func HostCapacity() api.Resources {
	b, _ := os.ReadFile("/proc/meminfo")
	return capacity(goruntime.NumCPU(), string(b))
}

func capacity(cpus int, meminfo string) api.Resources {
	r := api.Resources{NanoCPUs: int64(cpus) * 1e9}
	for _, line := range strings.Split(meminfo, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			r.MemoryBytes = kb << 10
		}
	}
	return r
}
