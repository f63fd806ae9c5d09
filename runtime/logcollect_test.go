package runtime

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCollectLog: what the shim appends to the raw file reaches the tagged
// log once, stamped with the collection time; a partial line waits for its
// end; a restarted collector (a new call, the offset read back from disk)
// neither repeats nor skips; a re-created raw file starts over; the log is
// rotated by rename; and the result reads back through the Worker's reader
// with and without timestamps.
func TestCollectLog(t *testing.T) {
	dir := t.TempDir()
	raw, log := filepath.Join(dir, "t.raw"), filepath.Join(dir, "t.log")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	appendRaw := func(s string) {
		t.Helper()
		f, err := os.OpenFile(raw, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	collect := func(at time.Duration) bool {
		t.Helper()
		moved, err := collectLog(raw, log, 1<<20, 2, t0.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		return moved
	}
	content := func() string {
		b, _ := os.ReadFile(log)
		return string(b)
	}
	if collect(0) {
		t.Fatal("collected from a raw file that does not exist")
	}
	appendRaw("one\ntw")
	collect(time.Second)
	if got, want := content(), "2026-01-01T00:00:01Z stdout one\n"; got != want {
		t.Fatalf("after one line and a half: %q, want %q", got, want)
	}
	appendRaw("o\n")
	collect(2 * time.Second)
	if collect(3 * time.Second) {
		t.Fatal("a round with nothing new moved something")
	}
	want := "2026-01-01T00:00:01Z stdout one\n2026-01-01T00:00:02Z stdout two\n"
	if got := content(); got != want {
		t.Fatalf("after the line's end: %q, want %q", got, want)
	}
	if got := readPos(raw + ".pos"); got != int64(len("one\ntwo\n")) {
		t.Fatalf("offset %d, want %d", got, len("one\ntwo\n"))
	}

	// A new container's raw file, shorter than the offset: from the top.
	if err := os.Remove(raw); err != nil {
		t.Fatal(err)
	}
	appendRaw("x\n")
	collect(4 * time.Second)
	want += "2026-01-01T00:00:04Z stdout x\n"
	if got := content(); got != want {
		t.Fatalf("after a new raw file: %q, want %q", got, want)
	}

	// Rotation by rename once the log would pass maxBytes.
	appendRaw("y\n")
	if _, err := collectLog(raw, log, int64(len(want)+5), 2, t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if old, _ := os.ReadFile(log + ".1"); string(old) != want || content() != "2026-01-01T00:00:05Z stdout y\n" {
		t.Fatalf("rotation: .1 %q, live %q", old, content())
	}

	read := func(o LogOptions) string {
		rc, err := readLogs(context.Background(), log, 2, true, o, SystemClock{}, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	if got := read(LogOptions{}); got != "one\ntwo\nx\ny\n" {
		t.Fatalf("logs: %q", got)
	}
	if got := read(LogOptions{Tail: 1, Timestamps: true}); got != "2026-01-01T00:00:05Z y\n" {
		t.Fatalf("logs --tail 1 --timestamps: %q", got)
	}
	if strings.Contains(content(), "\n\n") {
		t.Fatal("empty lines in the log")
	}
}
