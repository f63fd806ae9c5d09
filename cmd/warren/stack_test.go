package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(append([]string{"warren"}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStackConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, dir, "compose.yaml", "services:\n  web:\n    image: nginx\n    privileged: true\n    ports: [\"8080:80\"]\n")
	out, stderr, err := runCLI(t, "stack", "config", "-f", good)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: shop_web", "com.warren.stack: shop", "published_port: 8080"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "warning: service web: ignoring unsupported options: privileged") {
		t.Errorf("stderr = %q", stderr)
	}

	_, _, err = runCLI(t, "stack", "config", "--strict", "-f", good)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "privileged") {
		t.Errorf("--strict: %v", err)
	}

	bad := writeFile(t, dir, "bad.yaml", "services:\n  api:\n    build: .\n")
	_, _, err = runCLI(t, "stack", "config", "-f", bad)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "bad.yaml: services.api.build: Warren does not build images") {
		t.Errorf("build without image: %v", err)
	}

	w := writeFile(t, dir, "warren.yaml", "kind: Service\nname: web\ntask: {container: {image: nginx}}\n")
	out, _, err = runCLI(t, "stack", "config", "-f", w, "--name", "blog")
	if err != nil || !strings.Contains(out, "name: blog_web") {
		t.Errorf("warren.yaml: %v\n%s", err, out)
	}
	_, _, err = runCLI(t, "stack", "config", "-f", w, "-f", good)
	if err == nil || !strings.Contains(err.Error(), "cannot be mixed") {
		t.Errorf("mixed: %v", err)
	}
}

// The examples in docs/examples convert, and both forms of the demo stack
// give the same services.
func TestDocsExamplesConvert(t *testing.T) {
	var names [][]string
	for _, f := range []string{"compose.yaml", "warren.yaml"} {
		out, _, err := runCLI(t, "stack", "config", "--strict", "--name", "demo", "-f", filepath.Join("..", "..", "docs", "examples", "demo", f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "name: demo_"); ok {
				got = append(got, n)
			}
		}
		names = append(names, got)
	}
	if strings.Join(names[0], ",") != "api,store" || strings.Join(names[1], ",") != "api,store" {
		t.Errorf("services: compose %v, warren.yaml %v", names[0], names[1])
	}
}
