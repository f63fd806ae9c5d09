package compose

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoadConvert: a compose file of any bytes loads and converts to a
// stack, or fails with an error; never a panic. Seeds: the corpus of real
// projects in testdata/corpus.
func FuzzLoadConvert(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*/*compose*.y*ml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 8<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte("services:\n  web:\n    image: nginx\n    ports: [\"8080:80\"]\n    deploy: {replicas: 3}\n"))
	f.Add([]byte("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n"))
	f.Add([]byte("services:\n  a:\n    image: ${IMG:?need an image}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "compose.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := Load(ctx, LoadOptions{Files: []string{p}, Name: "fuzz"})
		if err != nil {
			return
		}
		_, _ = Convert(l, Options{})
		_, _ = Convert(l, Options{Strict: true})
	})
}
