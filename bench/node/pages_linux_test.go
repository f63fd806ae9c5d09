package node

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// pageSize is the size of a page, and of a page-frame entry's page.
var pageSize = os.Getpagesize()

// together is the memory, in KiB, that the processes pids hold between
// them, each physical page counted once however many of them map it: what
// they would hold on a machine of their own. PSS shares a page among every
// process mapping it, on this machine also other nodes' processes running
// the same binary (a two-node bench puts the manager beside the worker),
// so a sum of PSS understates a worker's memory where this does not. It
// reads each process's page frames from /proc/PID/pagemap (root).
func together(b *testing.B, pids []int) int {
	b.Helper()
	frames := map[uint64]struct{}{}
	for _, pid := range pids {
		if err := addFrames(pid, frames); err != nil {
			b.Fatalf("pages of %d: %v", pid, err)
		}
	}
	return len(frames) * pageSize / 1024
}

// addFrames adds the page frame of every present page of pid to frames.
func addFrames(pid int, frames map[uint64]struct{}) error {
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return err
	}
	defer maps.Close()
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return err
	}
	defer pm.Close()
	sc := bufio.NewScanner(maps)
	var buf []byte
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[1], "---") || (len(f) > 5 && f[5] == "[vsyscall]") {
			continue // no access: nothing mapped; vsyscall: not in pagemap
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return fmt.Errorf("maps line %q", sc.Text())
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("maps line %q", sc.Text())
		}
		n := int((end - start) / uint64(pageSize))
		if cap(buf) < 8*n {
			buf = make([]byte, 8*n)
		}
		buf = buf[:8*n]
		if _, err := pm.ReadAt(buf, int64(start/uint64(pageSize))*8); err != nil {
			return fmt.Errorf("pagemap %s: %w", f[0], err)
		}
		for i := 0; i < n; i++ {
			e := binary.LittleEndian.Uint64(buf[8*i:])
			if e&(1<<63) == 0 { // not present (or swapped out)
				continue
			}
			pfn := e & (1<<55 - 1)
			if pfn == 0 {
				return fmt.Errorf("pagemap of %d hides page frames (needs CAP_SYS_ADMIN)", pid)
			}
			frames[pfn] = struct{}{}
		}
	}
	return sc.Err()
}
