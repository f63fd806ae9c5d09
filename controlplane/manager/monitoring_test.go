package manager

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

var monitoringDir = filepath.Join("..", "..", "docs", "monitoring")

// TestAlertRulesUseMetricsManagersExpose fails when a rule or the dashboard
// names a metric no manager exposes (a renamed metric silently disables
// its alert).
func TestAlertRulesUseMetricsManagersExpose(t *testing.T) {
	ch := make(chan *prometheus.Desc, 64)
	go func() { NewCollector(&Manager{}).Describe(ch); close(ch) }()
	exposed := map[string]bool{}
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if m := name.FindStringSubmatch(d.String()); m != nil {
			exposed[m[1]] = true
		}
	}
	ref := regexp.MustCompile(`warren_[a-z_]*[a-z]`)
	for _, f := range []string{"warren-alerts.yml", "warren-dashboard.json"} {
		b, err := os.ReadFile(filepath.Join(monitoringDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
			if !exposed[base] {
				t.Errorf("%s names %s, which the manager does not expose", f, m)
			}
		}
	}
}

// TestAlertRulesPassPromtool runs promtool check rules and the rule unit
// tests. make lint runs the same and fails without promtool; here it is
// skipped on a machine without it.
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); make lint checks the rules")
	}
	for _, args := range [][]string{
		{"check", "rules", "warren-alerts.yml"},
		{"test", "rules", "warren-alerts-test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = monitoringDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
