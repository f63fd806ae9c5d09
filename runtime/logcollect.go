package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// The node log path.
//
// With WorkerOptions.CollectLogs the shim appends each task's raw output
// (stdout and stderr, as containerd's file log URI writes them) to
// <task>.raw, and one loop of the Worker — not a process per task — turns
// what was appended into the task's "<RFC3339Nano> stdout <text>" log file,
// which it rotates by renaming (readers follow the rename). The shim never
// needs the agent: while the agent is down the raw file grows, and the
// agent catches up when it is back (those lines then carry the time they
// were collected). The offset collected so far is kept in <task>.raw.pos so
// a restarted agent neither repeats nor skips lines; the bytes behind it are
// released with a hole punched in the raw file, which the shim keeps
// appending to (truncating it would race the shim's writes).

// RawLogPath is where the shim writes a task's raw output under CollectLogs.
func RawLogPath(logPath string) string { return strings.TrimSuffix(logPath, ".log") + ".raw" }

// collectChunk bounds one round's read per task, so one chatty task cannot
// hold up the others.
const collectChunk = 1 << 20

// maxLine is where a line without an end is cut (as the task logger does).
const maxLine = 64 << 10

// collectLog moves what was appended to raw since the last round into the
// tagged log at path, stamped with now, rotating it past maxBytes (keeping
// keep old files). It reports whether it moved anything.
func collectLog(raw, path string, maxBytes int64, keep int, now time.Time) (bool, error) {
	// Read-write: punching the collected bytes out needs a writable fd.
	f, err := os.OpenFile(raw, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("collect log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("collect log: %w", err)
	}
	pos := readPos(raw + ".pos")
	if fi.Size() < pos {
		pos = 0 // a new raw file (the container was re-created)
	}
	if fi.Size() == pos {
		return false, nil
	}
	buf := make([]byte, min(fi.Size()-pos, collectChunk))
	n, err := f.ReadAt(buf, pos)
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("collect log: %w", err)
	}
	buf = buf[:n]
	end := bytes.LastIndexByte(buf, '\n') + 1
	if end == 0 {
		if len(buf) < maxLine {
			return false, nil // a partial line: wait for its end
		}
		end = len(buf)
	}
	if err := appendTagged(path, buf[:end], maxBytes, keep, now); err != nil {
		return false, err
	}
	pos += int64(end)
	if err := writePos(raw+".pos", pos); err != nil {
		return true, err
	}
	releaseBefore(f, pos)
	return true, nil
}

// appendTagged writes each line of text as "<time> stdout <line>".
func appendTagged(path string, text []byte, maxBytes int64, keep int, now time.Time) error {
	stamp := now.UTC().AppendFormat(nil, time.RFC3339Nano)
	var out []byte
	for len(text) > 0 {
		n := len(text)
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			n = i + 1
		}
		n = min(n, maxLine)
		line := text[:n]
		text = text[n:]
		out = append(append(append(out, stamp...), " stdout "...), line...)
		if line[len(line)-1] != '\n' {
			out = append(out, '\n')
		}
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 && fi.Size()+int64(len(out)) > maxBytes {
		if err := rotateByRename(path, keep); err != nil {
			return err
		}
	}
	lf, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("collect log: %w", err)
	}
	if _, err := lf.Write(out); err != nil {
		lf.Close()
		return fmt.Errorf("collect log: %w", err)
	}
	return lf.Close()
}

// rotateByRename shifts path.N to path.N+1 (dropping the oldest beyond
// keep) and path to path.1.
func rotateByRename(path string, keep int) error {
	if keep < 1 {
		keep = 1
	}
	_ = os.Remove(path + "." + strconv.Itoa(keep))
	for i := keep - 1; i >= 1; i-- {
		_ = os.Rename(path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(path, path+".1"); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	return nil
}

func readPos(p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// writePos replaces the offset file atomically, so a crash leaves the old
// or the new offset, never a torn one.
func writePos(p string, pos int64) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(pos, 10)+"\n"), 0o640); err != nil {
		return fmt.Errorf("collect log: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("collect log: %w", err)
	}
	return nil
}
