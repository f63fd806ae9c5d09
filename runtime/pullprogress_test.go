package runtime_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/testutil"
	"github.com/warrenhq/warren/runtime"
	"github.com/warrenhq/warren/runtime/fake"
)

// pullingExecutor is the fake whose Prepare first plays a pull: it hands
// the samples to PullProgress, moving the clock by step before each.
type pullingExecutor struct {
	*fake.Executor
	clk     *fake.Clock
	step    time.Duration
	samples []api.PullProgress
}

func (e *pullingExecutor) Controller(t *api.Task, o runtime.ControllerOptions) (runtime.Controller, error) {
	c, err := e.Executor.Controller(t, o)
	return &pullingController{Controller: c, e: e, o: o}, err
}

type pullingController struct {
	runtime.Controller
	e *pullingExecutor
	o runtime.ControllerOptions
}

func (c *pullingController) Prepare(ctx context.Context) error {
	for _, s := range c.e.samples {
		c.e.clk.Advance(c.e.step)
		c.o.PullProgress(s)
	}
	return c.Controller.Prepare(ctx)
}

func TestWorkerReportsPullProgress(t *testing.T) {
	ex := &pullingExecutor{Executor: fake.New(), step: 300 * time.Millisecond}
	for done := int64(0); done <= 1000; done += 100 {
		ex.samples = append(ex.samples, api.PullProgress{Ref: "reg/web:v1", Done: done, Total: 1000})
	}
	rec := &recorder{}
	w, clk := newWorker(t, ex, rec)
	ex.clk = clk
	if err := w.Set(context.Background(), []api.Task{task("web", api.RestartPolicy{})}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "web running", wait, func() bool { return w.Tasks()["web"].State == api.TaskRunning })
	rec.mu.Lock()
	seen := append([]api.TaskStatus(nil), rec.seen["web"]...)
	rec.mu.Unlock()
	var pulls []int64
	for _, st := range seen {
		if st.Pull != (api.PullProgress{}) {
			if st.State != api.TaskPreparing {
				t.Errorf("pull progress %+v reported in state %s", st.Pull, st.State)
			}
			pulls = append(pulls, st.Pull.Done)
		}
	}
	// 11 samples 300 ms apart: the first, then one per second at most.
	if want := []int64{0, 400, 800}; !reflect.DeepEqual(pulls, want) {
		t.Errorf("reported pull progress %v, want %v (of %d samples)", pulls, want, len(ex.samples))
	}
	if last := seen[len(seen)-1]; last.Pull != (api.PullProgress{}) {
		t.Errorf("running task still reports a pull: %+v", last)
	}
}
