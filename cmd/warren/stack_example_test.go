package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The pgstack example converts strictly (every option it uses is mapped),
// declares its secret, config and volume, and stack config shows the
// password's digest, never the password.
func TestPgstackExampleConverts(t *testing.T) {
	dir := filepath.Join("..", "..", "docs", "examples", "pgstack")
	out, _, err := runCLI(t, "stack", "config", "--strict", "--name", "shop", "-f", filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: shop_db-password", "name: shop_nginx-conf", "name: shop_db-data", "target: /run/secrets/db-password", "target: /etc/nginx/nginx.conf", "source: shop_db-data", "com.warren.stack.digest: sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("stack config has no %q:\n%s", want, out)
		}
	}
	pw, err := os.ReadFile(filepath.Join(dir, "db", "password.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, strings.TrimSpace(string(pw))) {
		t.Errorf("stack config prints the password:\n%s", out)
	}
}

// A warren.yaml's Secret document: the value is read relative to the file,
// the service's mount gets the stack's name.
func TestWarrenFileSecretConverts(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw.txt"), []byte("s3cret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(dir, "warren.yaml")
	doc := "kind: Secret\nname: pw\nfile: pw.txt\n---\nkind: Volume\nname: data\n---\nkind: Service\nname: db\ntask:\n  container:\n    image: pg\n    secrets: [{name: pw}]\n    mounts: [{type: volume, source: data, target: /d}]\n"
	if err := os.WriteFile(w, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "stack", "config", "--name", "shop", "-f", w)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: shop_pw", "target: /run/secrets/pw", "source: shop_data", "name: shop_data"} {
		if !strings.Contains(out, want) {
			t.Errorf("stack config has no %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret-value") {
		t.Errorf("stack config prints the value:\n%s", out)
	}
	_ = os.Remove(filepath.Join(dir, "pw.txt"))
	if _, _, err := runCLI(t, "stack", "config", "--name", "shop", "-f", w); err == nil || !strings.Contains(err.Error(), "warren.yaml:2: secrets.pw.file: open") {
		t.Errorf("missing value file: %v", err)
	}
}
