package compose

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/stack"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// errLine is how every refusal reads: the file, the key, the reason.
var errLine = regexp.MustCompile(`^[^ :]+\.ya?ml: (services\.[a-z0-9_-]+(\.[^ :]+)?|name|[a-z_]+(\.[^ :]+)?): .+`)

// TestCorpus converts every file of the awesome-compose corpus. Each one
// must convert (the golden file holds the stack and the warnings) or be
// refused with the key and the reason; none may panic.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*/compose.y*ml")
	if err != nil || len(files) != 39 {
		t.Fatalf("corpus: %d files (%v), want 39", len(files), err)
	}
	abs, _ := filepath.Abs("testdata/corpus")
	converted := 0
	for _, f := range files {
		dir := filepath.Base(filepath.Dir(f))
		t.Run(dir, func(t *testing.T) {
			got := convertForGolden(t, f)
			if !strings.HasPrefix(got, "error:") {
				converted++
			}
			got = strings.ReplaceAll(got, abs, "$CORPUS")
			if home, err := os.UserHomeDir(); err == nil && home != "/" {
				got = strings.ReplaceAll(got, home+"/", "$HOME/")
			}
			golden := filepath.Join("testdata", "golden", dir+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s:\n%s", f, golden, got)
			}
		})
	}
	t.Logf("%d of %d files convert", converted, len(files))
}

func convertForGolden(t *testing.T, file string) string {
	t.Helper()
	l, err := Load(context.Background(), LoadOptions{Files: []string{file}})
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	res, err := Convert(l, Options{ReadFile: os.ReadFile})
	if err != nil {
		var b strings.Builder
		for _, line := range strings.Split(err.Error(), "\n") {
			if !errLine.MatchString(line) {
				t.Errorf("refusal does not name the file and the key: %q", line)
			}
			b.WriteString("error: " + line + "\n")
		}
		return b.String()
	}
	var b strings.Builder
	for _, w := range res.Warnings {
		b.WriteString("# warning: " + w + "\n")
	}
	y, err := stack.Qualify(res.Stack, res.Stack.Name).YAML()
	if err != nil {
		t.Fatal(err)
	}
	b.Write(y)
	return b.String()
}
