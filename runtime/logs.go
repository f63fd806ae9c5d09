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
// The container's stdout and stderr go straight from the shim to one file
// per task (containerd's file log URI, cio.LogFile): the shim opens it with
// O_APPEND and keeps writing while the agent is down or restarting, so no
// output is lost and nothing in the agent sits in the data path.
//
// Rotation is copy-then-truncate, done by the Worker: when the file passes
// MaxBytes it is copied to .1 (older files shift to .2 …) and truncated to
// zero. Because the shim writes with O_APPEND, its next write lands at the
// new end of file. Bytes written between the copy and the truncate are lost;
// with a check every few seconds that window is a few microseconds. The
// shim merges stdout and stderr into the one file, and lines carry no
// timestamps (LogOptions.Timestamps is refused).

// LogOptions select what Logs returns.
type LogOptions struct {
	Follow     bool
	Tail       int // last N lines; 0 = all
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
func readLogs(ctx context.Context, path string, keep int, o LogOptions, poll time.Duration) (io.ReadCloser, error) {
	if o.Timestamps {
		return nil, fmt.Errorf("logs: timestamps are not recorded (the shim writes raw output)")
	}
	var files []string
	for i := keep; i >= 1; i-- {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	if _, err := os.Stat(path); err != nil {
		if len(files) == 0 && !o.Follow {
			return nil, fmt.Errorf("logs %s: %w", filepath.Base(path), ErrNotFound)
		}
	}
	var old bytes.Buffer
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
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
	if o.Tail > 0 {
		all = lastLines(all, o.Tail)
	}
	if !o.Follow {
		f.Close()
		return io.NopCloser(bytes.NewReader(all)), nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		defer f.Close()
		if _, err := pw.Write(all); err != nil {
			return
		}
		buf := make([]byte, 32<<10)
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			n, err := f.ReadAt(buf, offset)
			if n > 0 {
				offset += int64(n)
				if _, werr := pw.Write(buf[:n]); werr != nil {
					return
				}
				continue
			}
			if err != nil && err != io.EOF {
				pw.CloseWithError(err)
				return
			}
			// Truncated by rotation: start again from the top.
			if fi, err := f.Stat(); err == nil && fi.Size() < offset {
				offset = 0
				continue
			}
			select {
			case <-ctx.Done():
				pw.Close()
				return
			case <-t.C:
			}
		}
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
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
