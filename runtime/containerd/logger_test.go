package containerd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoggerArgsRoundTrip(t *testing.T) {
	// The shim passes query keys and values in map order.
	var args []string
	for k, v := range loggerArgs("/x/t.log", 100, 2) {
		args = append(args, k, v)
	}
	if !IsLoggerInvocation(args) {
		t.Fatalf("not recognised: %v", args)
	}
	if IsLoggerInvocation([]string{"daemon", "--data-dir", "/x"}) {
		t.Fatal("ordinary args taken for the logger")
	}
	kv := parsePairs(args)
	if kv["--path"] != "/x/t.log" || kv["--max-bytes"] != "100" || kv["--max-files"] != "2" {
		t.Fatalf("pairs %v", kv)
	}
}

func TestRotatingFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.log")
	clock := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	r, err := newRotatingFile(p, 100, 2, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	r.copyLines("stdout", strings.NewReader("hello\nno newline"))
	r.copyLines("stderr", strings.NewReader("oops\n"))
	b, _ := os.ReadFile(p)
	want := "2026-01-02T03:04:05.000000006Z stdout hello\n" +
		"2026-01-02T03:04:05.000000006Z stdout no newline\n"
	// 100 bytes: the third line goes to a new file.
	if string(b) != "2026-01-02T03:04:05.000000006Z stderr oops\n" {
		t.Fatalf("live file %q", b)
	}
	if old, _ := os.ReadFile(p + ".1"); string(old) != want {
		t.Fatalf("rotated file %q, want %q", old, want)
	}
	for i := 0; i < 10; i++ {
		r.writeLine("stdout", []byte("filler filler filler filler filler filler\n"))
	}
	r.Close()
	if _, err := os.Stat(p + ".3"); err == nil {
		t.Fatal("kept more than max files")
	}
	if _, err := os.Stat(p + ".2"); err != nil {
		t.Fatal("second rotated file missing")
	}
}
