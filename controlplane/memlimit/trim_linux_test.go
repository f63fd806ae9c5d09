package memlimit

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestParseMapsLine(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
		want mapping
	}{
		{"00400000-01277000 r-xp 00000000 fe:00 9986101                            /work/main/build/warren", true,
			mapping{start: 0x400000, end: 0x1277000, dev: 0xfe00, inode: 9986101}},
		{"0226b000-02320000 rw-p 01e6b000 fe:00 9986101 /work/main/build/warren", true,
			mapping{start: 0x226b000, end: 0x2320000, writable: true, dev: 0xfe00, inode: 9986101}},
		{"7f5adc580000-7f5adc900000 rw-p 00000000 00:00 0 ", true,
			mapping{start: 0x7f5adc580000, end: 0x7f5adc900000, writable: true}},
		{"01277000-0226b000 r--p 00e77000 103:02 42 /usr/bin/warren (deleted)", true,
			mapping{start: 0x1277000, end: 0x226b000, dev: 0x10302, inode: 42}},
		{"garbage", false, mapping{}},
		{"02000000-01000000 r--p 00000000 fe:00 1 /reversed", false, mapping{}},
		{"0100-0200 r--p 00000000 fe00 1 /no-colon", false, mapping{}},
		{"0100-0200 r--p 00000000 fe:00 x /bad-inode", false, mapping{}},
	} {
		got, ok := parseMapsLine(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("parseMapsLine(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestReadOnlyOf(t *testing.T) {
	text := mapping{start: 1, end: 2, dev: 7, inode: 9}
	for _, c := range []struct {
		m    mapping
		want bool
	}{
		{text, true},
		{mapping{start: 1, end: 2, dev: 7, inode: 9, writable: true}, false}, // Go's data: never
		{mapping{start: 1, end: 2, dev: 7, inode: 8}, false},                 // another file
		{mapping{start: 1, end: 2, dev: 6, inode: 9}, false},                 // same inode, another device
		{mapping{start: 1, end: 2}, false},                                   // anonymous
	} {
		if got := c.m.readOnlyOf(7, 9); got != c.want {
			t.Errorf("%+v.readOnlyOf(7, 9) = %v, want %v", c.m, got, c.want)
		}
	}
}

// written is in the binary's data segment with a value other than its
// initial one once the test has run: a trim that dropped writable
// mappings would put the file's value back.
var written = []byte("as in the file.")

// TestTrimBinary trims this test binary's mappings: what it maps of its
// executable falls, and its data keeps what the program wrote.
func TestTrimBinary(t *testing.T) {
	copy(written, "set at run time")
	before := exeRss(t)
	n, err := TrimBinary()
	if err != nil {
		t.Fatal(err)
	}
	after := exeRss(t)
	t.Logf("went over %d KiB of mappings; the executable's resident pages %d → %d KiB", n>>10, before, after)
	if n == 0 {
		t.Fatal("trimmed no mapping of the executable")
	}
	if after >= before {
		t.Errorf("the executable's resident pages did not fall: %d → %d KiB", before, after)
	}
	if string(written) != "set at run time" {
		t.Errorf("a writable mapping was dropped: the data segment holds %q again", written)
	}
}

// exeRss sums the Rss of this process's read-only mappings of its
// executable, in KiB.
func exeRss(t *testing.T) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m, ok := parseMapsLine(line); ok {
			in = m.readOnlyOf(uint64(st.Dev), st.Ino)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("smaps %q: %v", line, err)
			}
			total += kb
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
