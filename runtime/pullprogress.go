package runtime

import (
	"sync"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// PullReportEvery is how often at most a task's pull progress is reported.
// Every report is a status update the managers commit through raft (in
// group commits, apiserver's reportBatcher), so progress is a sample, not
// a report per chunk fetched.
const PullReportEvery = time.Second

// pullThrottle decides which of a task's pull progress samples are
// reported: one whenever it changed and the last report is at least every
// old. A sample dropped is not owed later: the next change, or the end of
// the pull (which clears the progress), says more.
type pullThrottle struct {
	every time.Duration
	mu    sync.Mutex
	last  api.PullProgress
	at    time.Time
	sent  bool
}

func (p *pullThrottle) pass(now time.Time, pr api.PullProgress) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr == p.last || p.sent && now.Sub(p.at) < p.every {
		return false
	}
	p.last, p.at, p.sent = pr, now, true
	return true
}

// pullReporter is ControllerOptions.PullProgress for a task: samples the
// throttle passes go into the task's status, only while it prepares.
func (w *Worker) pullReporter(taskID string) func(api.PullProgress) {
	th := &pullThrottle{every: PullReportEvery}
	return func(pr api.PullProgress) {
		if !th.pass(w.o.Clock.Now(), pr) {
			return
		}
		w.report(taskID, false, func(st *api.TaskStatus) { st.Pull = pr })
	}
}
