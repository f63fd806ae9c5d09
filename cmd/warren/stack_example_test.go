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
