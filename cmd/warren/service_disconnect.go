package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
)

// disconnectFlags set the service's api.DisconnectPolicy.
type disconnectFlags struct {
	grace     string
	stopAfter time.Duration
	reconcile string
}

func addDisconnectFlags(fs *pflag.FlagSet, f *disconnectFlags) {
	fs.StringVar(&f.grace, "disconnect-grace", "", "how long the tasks of a node that stopped heartbeating still count as running before replacements are placed: a duration, 0 (at once) or inf (never) (default: the node-down grace; inf for global services)")
	fs.DurationVar(&f.stopAfter, "disconnect-stop-after", 0, "the node itself stops the task after being cut off from every manager this long, for work that must not run twice (0 = keep running)")
	var names []string
	for _, p := range api.ReconcilePolicies {
		names = append(names, string(p))
	}
	fs.StringVar(&f.reconcile, "reconcile", string(api.ReconcileKeepOriginal), "when a cut-off node returns and both its task and the replacement run, keep: "+strings.Join(names, ", "))
}

// applyDisconnectFlags overlays the disconnect flags the user set on s.
func applyDisconnectFlags(s *api.ServiceSpec, f *disconnectFlags, set func(string) bool) error {
	if !set("disconnect-grace") && !set("disconnect-stop-after") && !set("reconcile") {
		return nil
	}
	d := api.DisconnectPolicy{}
	if s.Disconnect != nil {
		d = *s.Disconnect
	}
	if set("disconnect-grace") {
		g, err := api.ParseGrace(f.grace)
		if err != nil || g < 0 {
			return fmt.Errorf("--disconnect-grace %q: must be a duration ≥ 0 (e.g. 30m), 0 or inf", f.grace)
		}
		d.Grace = &g
	}
	if set("disconnect-stop-after") {
		if f.stopAfter < 0 {
			return fmt.Errorf("--disconnect-stop-after %s: must be ≥ 0", f.stopAfter)
		}
		d.StopAfter = api.Duration(f.stopAfter)
	}
	if set("reconcile") {
		p := api.ReconcilePolicy(f.reconcile)
		if !slices.Contains(api.ReconcilePolicies, p) {
			return fmt.Errorf("--reconcile %q: must be keep-original, keep-replacement, healthiest or longest-running", f.reconcile)
		}
		d.Reconcile = p
	}
	s.Disconnect = &d
	return nil
}
