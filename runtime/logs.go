package runtime

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Task logs.
//
// Output goes from the shim to one file per task without passing through
// the agent, so it keeps flowing while the agent is down or restarting.
// Three writers exist:
//
//   - the node log path (WorkerOptions.CollectLogs, what the daemon uses):
//     the shim appends raw output to <task>.raw and the Worker's one
//     collector loop writes it to the log as tagged lines (logcollect.go).
//     No process per task.
//   - the task logger (runtime/containerd LoggerMain, containerd's binary
//     log driver): the shim keeps it alive next to the task; it writes
//     "<RFC3339Nano> <stdout|stderr> <text>" lines and rotates the file by
//     renaming it. Readers follow the rename.
//   - the shim's file log URI (cio.LogFile), when no logger binary is
//     configured: raw output, stdout and stderr merged, no timestamps. The
//     Worker rotates it copy-then-truncate; the shim writes with O_APPEND so
//     its next write lands at the new end. Bytes written between the copy
//     and the truncate are lost (a window of microseconds every few seconds).

// LogOptions select what Logs returns.
type LogOptions struct {
	Follow     bool
	Tail       int // last N lines; 0 = all; negative = none (only new lines when following)
	Timestamps bool
}

// RotateLog rotates path when it is larger than maxBytes, keeping keep old files.
func RotateLog(path string, maxBytes int64, keep int) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= maxBytes {
		return false, nil
	}
	if keep < 1 {
		keep = 1
	}
	for i := keep - 1; i >= 1; i-- {
		_ = os.Rename(path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1))
	}
	src, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("rotate log: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return false, fmt.Errorf("rotate log: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return false, fmt.Errorf("rotate log: %w", err)
	}
	if err := dst.Close(); err != nil {
		return false, fmt.Errorf("rotate log: %w", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return false, fmt.Errorf("rotate log: %w", err)
	}
	return true, nil
}

// readLogs streams a task's log: rotated files oldest first, then the live
// file, optionally only the last tail lines, optionally following it.
// Tagged files ("<time> <stream> <text>" lines) are shown as text, with the
// time when asked; raw files have no timestamps to show.
func readLogs(ctx context.Context, path string, keep int, tagged bool, o LogOptions, clk Clock, poll time.Duration) (io.ReadCloser, error) {
	if o.Timestamps && !tagged {
		return nil, fmt.Errorf("logs: timestamps are not recorded (raw log files; run the task logger)")
	}
	var files []string
	for i := keep + 1; i >= 1; i-- {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	if _, err := os.Stat(path); err != nil && len(files) == 0 && !o.Follow {
		return nil, fmt.Errorf("logs %s: %w", filepath.Base(path), ErrNotFound)
	}
	var old bytes.Buffer
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			old.Write(b)
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	cur, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("logs: %w", err)
	}
	offset := int64(len(cur))
	all := append(old.Bytes(), cur...)
	if tagged {
		// Hold back a partial last line; following completes it.
		if i := bytes.LastIndexByte(all, '\n'); i+1 < len(all) {
			offset -= int64(len(all) - (i + 1))
			all = all[:i+1]
		}
	}
	switch {
	case o.Tail < 0:
		all = nil
	case o.Tail > 0:
		all = lastLines(all, o.Tail)
	}
	lf := lineFormatter{tagged: tagged, timestamps: o.Timestamps}
	if !o.Follow {
		f.Close()
		return io.NopCloser(bytes.NewReader(lf.format(all))), nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		defer func() { f.Close() }()
		if _, err := pw.Write(lf.format(all)); err != nil {
			return
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := f.ReadAt(buf, offset)
			if n > 0 {
				offset += int64(n)
				if _, werr := pw.Write(lf.format(buf[:n])); werr != nil {
					return
				}
				continue
			}
			if err != nil && err != io.EOF {
				pw.CloseWithError(err)
				return
			}
			if fi, err := f.Stat(); err == nil {
				switch cur, serr := os.Stat(path); {
				case fi.Size() < offset:
					// Truncated (copy-then-truncate rotation): from the top.
					offset = 0
					continue
				case serr == nil && !os.SameFile(fi, cur):
					// Renamed away (the task logger rotated) and read to
					// its end: continue with the new file.
					if nf, err := os.Open(path); err == nil {
						f.Close()
						f, offset = nf, 0
						continue
					}
				}
			}
			if sleep(ctx, clk, poll, nil) != nil {
				pw.Close()
				return
			}
		}
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

// lineFormatter turns tagged lines into what the user asked to see. It
// keeps a partial line until its end arrives.
type lineFormatter struct {
	tagged, timestamps bool
	partial            []byte
}

func (l *lineFormatter) format(b []byte) []byte {
	if !l.tagged {
		return append([]byte(nil), b...)
	}
	data := append(l.partial, b...)
	l.partial = nil
	var out []byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			l.partial = append([]byte(nil), data...)
			break
		}
		line := data[:i+1]
		data = data[i+1:]
		ts, rest, ok1 := bytes.Cut(line, []byte(" "))
		_, text, ok2 := bytes.Cut(rest, []byte(" "))
		if !ok1 || !ok2 {
			out = append(out, line...)
			continue
		}
		if l.timestamps {
			out = append(append(out, ts...), ' ')
		}
		out = append(out, text...)
	}
	return out
}

type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (l *logReader) Close() error {
	l.cancel()
	return l.PipeReader.Close()
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) []byte {
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, append(append([]byte{}, sc.Bytes()...), '\n'))
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return bytes.Join(lines, nil)
}
