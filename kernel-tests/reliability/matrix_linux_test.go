//go:build linux

package reliability

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"
)

// profile picks the number of fault rounds: short for CI, full for make
// reliability.
func profile(short, full int) int {
	if fullProfile() {
		return full
	}
	return short
}

func fullProfile() bool { return os.Getenv("WARREN_RELIABILITY_PROFILE") == "full" }

type row struct{ id, name, result, figures string }

var (
	rowsMu sync.Mutex
	rows   []row
)

// summary prints the test's one line and keeps it for the table.
func summary(id, name string, failed bool, format string, args ...any) {
	result := "pass"
	if failed {
		result = "FAIL"
	}
	r := row{id: id, name: name, result: result, figures: fmt.Sprintf(format, args...)}
	fmt.Printf("RELIABILITY %s %s: %s — %s\n", r.id, r.name, r.result, r.figures)
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
}

func printTable(w io.Writer) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) == 0 {
		return
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].id < rows[j].id })
	fmt.Fprintf(w, "\nreliability matrix (%s profile)\n", map[bool]string{true: "full", false: "short"}[os.Getenv("WARREN_RELIABILITY_PROFILE") == "full"])
	fmt.Fprintf(w, "| %-3s | %-34s | %-4s | %s\n", "id", "fault", "ok", "figures")
	for _, r := range rows {
		fmt.Fprintf(w, "| %-3s | %-34s | %-4s | %s\n", r.id, r.name, r.result, r.figures)
	}
}

// percentile of sorted durations, nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}
