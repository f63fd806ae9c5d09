package orchestrator

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// DefaultCanaryMinConnections is how many connections a canary must have
// had before analysis judges it when the service names no
// UpdateConfig.CanaryMinConnections: at 100, a 1 % threshold is one failed
// connection in a hundred, not a single unlucky one in five.
const DefaultCanaryMinConnections = 100

// VersionTraffic is the traffic of one side of a canary, summed over the
// nodes that balanced it and the tasks that served it.
type VersionTraffic struct {
	Versions        []string // labels, sorted (the stable side may have several)
	Connections     uint64
	ConnectFailures uint64
	Resets          uint64
}

func (v VersionTraffic) errors() uint64 { return v.ConnectFailures + v.Resets }

// Rate is the share of connections that failed, 0 without connections.
func (v VersionTraffic) Rate() float64 {
	if v.Connections == 0 {
		return 0
	}
	return float64(v.errors()) / float64(v.Connections)
}

func (v VersionTraffic) describe() string {
	name := strings.Join(v.Versions, "+")
	if name == "" {
		name = "-"
	}
	return fmt.Sprintf("%s %s of %d connections failed (%d connect failures, %d resets)",
		name, percent(v.Rate()), v.Connections, v.ConnectFailures, v.Resets)
}

func percent(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// Verdict is the outcome of one canary analysis.
type Verdict struct {
	// Judged: the canary has had the minimum number of connections.
	Judged bool
	// Failed: judged, and the canary's error rate is over both the maximum
	// and the stable version's rate.
	Failed bool
	// Figures says what was compared, for the rollback reason and status.
	Figures string
}

// AnalyzeCanary compares the canary's error rate with the stable version's
// over the window [since, now] (the rollout so far, as the nodes counted
// it). The canary fails when, with at least minConns connections, its rate
// exceeds maxRate and is above the stable version's: a canary is not blamed
// for errors the stable version makes as much (a dependency down), and it
// is not judged on a handful of connections. It is a pure function of its
// arguments.
func AnalyzeCanary(canary, stable VersionTraffic, maxRate float64, minConns uint64, since, now time.Time) Verdict {
	if minConns == 0 {
		minConns = DefaultCanaryMinConnections
	}
	window := now.Sub(since).Round(time.Second)
	figures := fmt.Sprintf("canary %s in %s; stable %s; max error rate %s",
		canary.describe(), window, stable.describe(), percent(maxRate))
	if canary.Connections < minConns {
		return Verdict{Figures: fmt.Sprintf("%s (not judged before %d connections to the canary)", figures, minConns)}
	}
	failed := canary.Rate() > maxRate && canary.Rate() > stable.Rate()
	return Verdict{Judged: true, Failed: failed, Figures: figures}
}

// analysisOn reports whether the service's rollout is judged by canary
// analysis now: a canary with a maximum error rate, deployed beside the
// stable version and not yet flipped.
func analysisOn(svc *api.Service) bool {
	return svc.Spec.Update.Strategy == api.StrategyCanary && svc.Spec.Update.CanaryMaxErrorRate > 0 && rolloutOpen(svc.Update) &&
		svc.PreviousSpec != nil
}

// canaryTraffic sums what the nodes reported (Node.Status.Traffic) for the
// service's tasks, the current version's apart from the others'.
func (r *reconciler) canaryTraffic(svc *api.Service, tasks []*api.Task) (canary, stable VersionTraffic) {
	byID := make(map[string]*api.Task, len(tasks))
	for _, t := range tasks {
		byID[t.ID] = t
	}
	cv, sv := map[string]bool{}, map[string]bool{}
	for _, n := range r.order {
		for _, b := range n.Status.Traffic {
			t := byID[b.TaskID]
			if t == nil {
				continue
			}
			side, labels := &stable, sv
			if current(svc, t) {
				side, labels = &canary, cv
			}
			labels[t.Version] = true
			side.Connections += b.Connections
			side.ConnectFailures += b.ConnectFailures
			side.Resets += b.Resets
		}
	}
	canary.Versions = []string{versionLabel(svc)}
	for v := range sv {
		stable.Versions = append(stable.Versions, v)
	}
	sort.Strings(stable.Versions)
	return canary, stable
}

// analyze runs canary analysis on an open canary rollout and rolls it back
// when the canary fails, with the figures in the reason. The verdict is
// kept for canaryStep, which moves on only once the canary was judged.
func (r *reconciler) analyze(svc *api.Service, tasks []*api.Task) {
	r.verdict = nil
	if !analysisOn(svc) {
		return
	}
	canary, stable := r.canaryTraffic(svc, tasks)
	cfg := svc.Spec.Update
	v := AnalyzeCanary(canary, stable, cfg.CanaryMaxErrorRate, cfg.CanaryMinConnections, svc.Update.StartedAt, r.now)
	r.verdict = &v
	if !v.Failed {
		return
	}
	if rolled, err := Rollback(*svc, r.now, "rolled back by canary analysis: "+v.Figures); err == nil {
		*svc = rolled
		r.verdict = nil
	}
}
