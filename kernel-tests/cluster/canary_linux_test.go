//go:build linux

package clustertest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// TestCanaryAnalysis: a canary version that resets half of its connections
// (its health check passes) is rolled back by canary analysis alone, on the
// connect failures and resets the node's dataplane counted per backend in
// the kernel, with the figures in the reason; traffic is back on the
// stable version at once and no request fails after that.
func TestCanaryAnalysis(t *testing.T) {
	h, vip := healthyWeb(t)

	// The broken canary: healthy, but half of its requests are reset.
	loop := h.background(vip, 1500, 100)
	deployed := time.Now()
	if _, err := timedCLI(t, h, "service", "update", "web", "--update-strategy", "canary", "--canary-weight", "20",
		"--canary-max-error-rate", "1%", "--env", "WARREN_DEMO_VERSION=v2", "--env", "WARREN_DEMO_RESET_RATIO=0.5", "--timeout", "2m"); err != nil {
		t.Fatalf("canary deploy: %v", err)
	}
	var rolled api.Service
	eventually(t, "canary analysis rolls the canary back", 60*time.Second, func() error {
		s, err := h.service("web")
		if err != nil {
			return err
		}
		if s.Update == nil || s.Update.State != api.UpdateRolledBack {
			return fmt.Errorf("update %+v", s.Update)
		}
		rolled = s
		return nil
	})
	t.Logf("measured: broken canary rolled back %s after the deploy began; reason: %s",
		time.Since(deployed).Round(100*time.Millisecond), rolled.Update.Message)
	for _, want := range []string{"rolled back by canary analysis", "resets", "of", "connections failed", "max error rate 1.0%", "traffic switched back at once"} {
		if !strings.Contains(rolled.Update.Message, want) {
			t.Errorf("rollback reason %q lacks %q", rolled.Update.Message, want)
		}
	}
	ps := h.mustCLI("service", "ps", "web")
	if !strings.Contains(ps, "update: rolled-back: rolled back by canary analysis") {
		t.Errorf("service ps does not show the analysis:\n%s", ps)
	}
	r := <-loop
	t.Logf("measured: during the broken canary: %d requests, %d failed, v1=%d v2=%d", len(r.versions), r.failed(), r.count("v1"), r.count("v2"))
	if r.failed() == 0 {
		t.Errorf("the broken canary failed no request: the test did not test anything")
	}
	// The kernel saw what the clients saw: each reset it counted against
	// the canary failed a request (more may have failed after the verdict,
	// before the flip).
	m := regexp.MustCompile(`canary \S+ [0-9.]+% of (\d+) connections failed \((\d+) connect failures, (\d+) resets\)`).FindStringSubmatch(rolled.Update.Message)
	if m == nil {
		t.Fatalf("no canary figures in %q", rolled.Update.Message)
	}
	resets, _ := strconv.Atoi(m[3])
	if resets == 0 || resets > r.failed() {
		t.Errorf("the kernel counted %s resets of the canary, the clients saw %d failures", m[3], r.failed())
	}
	// From the rollback on, the stable version serves everything.
	after := h.requestLoop(vip, 1000, 500)
	noFailures(t, "after the canary analysis rollback", after)
	if after.count("v1") != len(after.versions) {
		t.Errorf("after the rollback: %d of %d requests answered by v1", after.count("v1"), len(after.versions))
	}
}
