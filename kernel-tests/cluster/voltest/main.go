// Command voltest is the task the volume kernel tests run: it keeps
// writing a counter into its volume and says on stdout what it found and
// what failed, so a test can tell from outside whether a task saw the data
// an earlier task wrote. GET :80/healthz is its health check: one synced
// write into the volume (so a dead storage server makes the task unhealthy).
package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	dir := os.Getenv("VOLTEST_DIR")
	if dir == "" {
		dir = "/data"
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := syncedWrite(filepath.Join(dir, ".health"), time.Now().String()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	go func() { fmt.Println("http:", http.ListenAndServe(":80", nil)) }()
	host, _ := os.Hostname()
	fmt.Println("start", host)
	probe := filepath.Join(dir, "probe-"+host)
	if err := syncedWrite(probe, "x"); err != nil {
		fmt.Println("probe error:", err)
	} else {
		fmt.Println("probe ok")
		_ = os.Remove(probe)
	}
	if _, err := os.Stat(filepath.Join(dir, "first")); os.IsNotExist(err) {
		_ = syncedWrite(filepath.Join(dir, "first"), host)
	}
	first, _ := os.ReadFile(filepath.Join(dir, "first"))
	fmt.Println("first", strings.TrimSpace(string(first)))
	b, _ := os.ReadFile(filepath.Join(dir, "counter"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	fmt.Println("found", n)
	last := ""
	for {
		time.Sleep(100 * time.Millisecond)
		msg := ""
		if err := syncedWrite(filepath.Join(dir, "counter"), strconv.Itoa(n+1)); err != nil {
			msg = "write error: " + err.Error()
		} else {
			n++
		}
		if msg != last {
			if msg == "" {
				fmt.Println("writing again at", n)
			} else {
				fmt.Println(msg)
			}
			last = msg
		}
	}
}

// syncedWrite replaces path's content durably: write a temporary file,
// fsync it, rename it over path.
func syncedWrite(path, content string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
