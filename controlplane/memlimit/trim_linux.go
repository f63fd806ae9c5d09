package memlimit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TrimPeriod is how often a long-lived process drops its mappings of the
// binary (TrimBinaryEvery): what it maps between two trims is what it
// used in one period.
const TrimPeriod = 10 * time.Second

// TrimBinary drops this process's mappings of its executable's read-only
// pages (code and read-only data), so they are mapped again only as they
// are next used, and returns how many bytes of mappings it went over.
//
// Every package's init runs at start-up and touches its code, and the
// kernel maps the already-cached pages around every fault (fault-around,
// 64 KiB), so a process of this 32 MB binary that has started maps most
// of it, though its steady state uses a fraction: a worker's device
// process maps ~21 MiB of it and then uses ~7. The pages dropped stay in
// the page cache, clean and shared, where the kernel may reclaim them
// (a mapped executable page is kept in preference to nearly everything
// else); the next use is a minor fault. Writable mappings (Go's data and
// bss) are never touched: dropping those would reset them to the file.
func TrimBinary() (int, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("trim binary: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("trim binary: %w", err)
	}
	var spans []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := parseMapsLine(sc.Text()); ok && m.readOnlyOf(uint64(st.Dev), st.Ino) {
			spans = append(spans, m)
		}
	}
	err = sc.Err()
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("trim binary: %w", err)
	}
	dropped := 0
	for _, m := range spans {
		// The raw call: these addresses are not Go memory, and
		// unix.Madvise wants a slice of it.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); e != 0 {
			return dropped, fmt.Errorf("trim binary: madvise %#x-%#x: %w", m.start, m.end, e)
		}
		dropped += int(m.end - m.start)
	}
	return dropped, nil
}

// TrimBinaryEvery trims once a TrimPeriod until ctx ends. A failure stops
// it quietly: trimming only saves memory, and a kernel that refuses once
// refuses every time.
func TrimBinaryEvery(ctx context.Context) {
	t := time.NewTicker(TrimPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := TrimBinary(); err != nil {
				return
			}
		}
	}
}

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end uintptr
	writable   bool
	dev, inode uint64
}

// readOnlyOf reports whether m maps the file dev/inode without write
// permission — the only mappings TrimBinary may drop.
func (m mapping) readOnlyOf(dev, inode uint64) bool {
	return !m.writable && m.inode != 0 && m.inode == inode && m.dev == dev
}

// parseMapsLine reads "00400000-01277000 r-xp 00000000 fe:00 9986101 /path".
func parseMapsLine(line string) (mapping, bool) {
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return mapping{}, false
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	maj, mnr, ok := strings.Cut(fields[3], ":")
	if err1 != nil || err2 != nil || !ok || end <= start || len(fields[1]) < 2 {
		return mapping{}, false
	}
	ma, err3 := strconv.ParseUint(maj, 16, 32)
	mi, err4 := strconv.ParseUint(mnr, 16, 32)
	ino, err5 := strconv.ParseUint(fields[4], 10, 64)
	if err3 != nil || err4 != nil || err5 != nil {
		return mapping{}, false
	}
	return mapping{
		start:    uintptr(start),
		end:      uintptr(end),
		writable: fields[1][1] == 'w',
		dev:      unix.Mkdev(uint32(ma), uint32(mi)),
		inode:    ino,
	}, true
}
