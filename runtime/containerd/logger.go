package containerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"
)

// The task logger is containerd's binary log driver: the shim starts
// Options.LoggerBinary (the warren binary itself, or a test binary) with
// the task's stdout on fd 3 and stderr on fd 4 and keeps it alive for the
// life of the process, independent of the agent. It writes one line per
// output line, "<RFC3339Nano time> <stdout|stderr> <text>", to the task's
// log file and rotates by size itself (rename, so readers see a new file).
//
// The shim passes the URI's query as arguments in map order, so the
// arguments are --key value pairs in any order and LoggerMain finds its
// marker among them.

const loggerMarker = "--warren-task-logger"

// loggerArgs are the query arguments of the binary log URI.
func loggerArgs(path string, maxBytes int64, maxFiles int) map[string]string {
	return map[string]string{
		loggerMarker:  "1",
		"--path":      path,
		"--max-bytes": strconv.FormatInt(maxBytes, 10),
		"--max-files": strconv.Itoa(maxFiles),
	}
}

// IsLoggerInvocation reports whether args (os.Args[1:]) are those the shim
// passes to the task logger. cmd/warren checks it first thing and then
// calls LoggerMain; tests re-exec their own binary the same way.
func IsLoggerInvocation(args []string) bool {
	_, ok := parsePairs(args)[loggerMarker]
	return ok
}

func parsePairs(args []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		m[args[i]] = args[i+1]
	}
	return m
}

// LoggerMain runs the task logger and exits. It never returns.
func LoggerMain() {
	kv := parsePairs(os.Args[1:])
	path := kv["--path"]
	maxBytes, _ := strconv.ParseInt(kv["--max-bytes"], 10, 64)
	maxFiles, _ := strconv.Atoi(kv["--max-files"])
	logging.Run(func(ctx context.Context, cfg *logging.Config, ready func() error) error {
		if path == "" {
			return errors.New("task logger: no --path")
		}
		w, err := newRotatingFile(path, maxBytes, maxFiles, time.Now)
		if err != nil {
			return err
		}
		defer w.Close()
		if err := ready(); err != nil {
			return fmt.Errorf("task logger ready: %w", err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); w.copyLines("stdout", cfg.Stdout) }()
		go func() { defer wg.Done(); w.copyLines("stderr", cfg.Stderr) }()
		wg.Wait() // both pipes closed: every process of the task is gone
		return nil
	})
}

// rotatingFile appends tagged lines to path and rotates it by size.
type rotatingFile struct {
	path     string
	maxBytes int64
	maxFiles int
	now      func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
}

func newRotatingFile(path string, maxBytes int64, maxFiles int, now func() time.Time) (*rotatingFile, error) {
	if maxBytes <= 0 {
		maxBytes = 10 << 20
	}
	if maxFiles <= 0 {
		maxFiles = 3
	}
	r := &rotatingFile{path: path, maxBytes: maxBytes, maxFiles: maxFiles, now: now}
	return r, r.open()
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("task logger: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("task logger: %w", err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

func (r *rotatingFile) rotate() error {
	r.f.Close()
	for i := r.maxFiles - 1; i >= 1; i-- {
		_ = os.Rename(r.path+"."+strconv.Itoa(i), r.path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("task logger rotate: %w", err)
	}
	return r.open()
}

func (r *rotatingFile) writeLine(stream string, text []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := make([]byte, 0, len(text)+48)
	line = r.now().UTC().AppendFormat(line, time.RFC3339Nano)
	line = append(line, ' ')
	line = append(line, stream...)
	line = append(line, ' ')
	line = append(line, text...)
	if len(text) == 0 || text[len(text)-1] != '\n' {
		line = append(line, '\n')
	}
	if r.size > 0 && r.size+int64(len(line)) > r.maxBytes {
		if err := r.rotate(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
	}
	n, _ := r.f.Write(line)
	r.size += int64(n)
}

// copyLines reads one stream until EOF; lines longer than 64 KiB are split.
func (r *rotatingFile) copyLines(stream string, rd io.Reader) {
	if rd == nil {
		return
	}
	br := bufio.NewReaderSize(rd, 64<<10)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			r.writeLine(stream, b)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}
