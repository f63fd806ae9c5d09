package runtime

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestTransition(t *testing.T) {
	for _, c := range []struct {
		from, to api.TaskState
		restart  bool
		ok       bool
	}{
		{api.TaskAssigned, api.TaskPreparing, false, true},
		{api.TaskPreparing, api.TaskStarting, false, true},
		{api.TaskStarting, api.TaskRunning, false, true},
		{api.TaskRunning, api.TaskFailed, false, true},
		{api.TaskRunning, api.TaskComplete, false, true},
		{api.TaskRunning, api.TaskShutdown, false, true},
		{api.TaskPreparing, api.TaskFailed, false, true},
		{api.TaskRunning, api.TaskRunning, false, true},
		{api.TaskRunning, api.TaskStarting, false, false},
		{api.TaskFailed, api.TaskRunning, false, false},
		{api.TaskFailed, api.TaskShutdown, false, false},
		{api.TaskComplete, api.TaskFailed, false, false},
		{api.TaskFailed, api.TaskPreparing, false, false},
		{api.TaskFailed, api.TaskPreparing, true, true},
		{api.TaskComplete, api.TaskPreparing, true, true},
		{api.TaskShutdown, api.TaskPreparing, true, false},
		{api.TaskRunning, api.TaskPreparing, true, false},
		{api.TaskFailed, api.TaskRunning, true, false},
	} {
		err := Transition(c.from, c.to, c.restart)
		if (err == nil) != c.ok {
			t.Errorf("Transition(%s, %s, restart=%v) = %v, want ok=%v", c.from, c.to, c.restart, err, c.ok)
		}
	}
}

func TestNextRestart(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	ms := func(n int) api.Duration { return api.Duration(time.Duration(n) * time.Millisecond) }
	fail, ok := ExitStatus{Code: 1}, ExitStatus{Code: 0}
	for _, c := range []struct {
		name    string
		p       api.RestartPolicy
		h       []time.Time
		exit    ExitStatus
		restart bool
		delay   time.Duration
	}{
		{"none", api.RestartPolicy{Condition: api.RestartNone}, nil, fail, false, 0},
		{"on-failure, exit 0", api.RestartPolicy{Condition: api.RestartOnFailure}, nil, ok, false, 0},
		{"on-failure, exit 1", api.RestartPolicy{Condition: api.RestartOnFailure, Delay: ms(200)}, nil, fail, true, 200 * time.Millisecond},
		{"on-failure, oom", api.RestartPolicy{Condition: api.RestartOnFailure, Delay: ms(200)}, nil, ExitStatus{OOMKilled: true}, true, 200 * time.Millisecond},
		{"any, exit 0", api.RestartPolicy{Condition: api.RestartAny, Delay: ms(200)}, nil, ok, true, 200 * time.Millisecond},
		{"empty condition means any", api.RestartPolicy{}, nil, ok, true, DefaultRestartDelay},
		{"backoff doubles", api.RestartPolicy{Delay: ms(100)}, []time.Time{ago(time.Minute), ago(time.Second)}, fail, true, 400 * time.Millisecond},
		{"backoff capped", api.RestartPolicy{Delay: ms(100), MaxDelay: ms(300)}, []time.Time{ago(3), ago(2), ago(1)}, fail, true, 300 * time.Millisecond},
		{"max attempts reached", api.RestartPolicy{Delay: ms(100), MaxAttempts: 2}, []time.Time{ago(2), ago(1)}, fail, false, 0},
		{"max attempts not reached", api.RestartPolicy{Delay: ms(100), MaxAttempts: 3}, []time.Time{ago(2), ago(1)}, fail, true, 400 * time.Millisecond},
		{"window forgets old restarts", api.RestartPolicy{Delay: ms(100), MaxAttempts: 2, Window: api.Duration(time.Minute)},
			[]time.Time{ago(time.Hour), ago(2 * time.Hour), ago(10 * time.Second)}, fail, true, 200 * time.Millisecond},
		{"window counts recent restarts", api.RestartPolicy{Delay: ms(100), MaxAttempts: 2, Window: api.Duration(time.Minute)},
			[]time.Time{ago(20 * time.Second), ago(10 * time.Second)}, fail, false, 0},
		{"max delay below delay", api.RestartPolicy{Delay: ms(500), MaxDelay: ms(100)}, []time.Time{ago(1)}, fail, true, 500 * time.Millisecond},
	} {
		d := NextRestart(c.p, RestartHistory{Restarts: c.h}, c.exit, now)
		if d.Restart != c.restart || d.Delay != c.delay {
			t.Errorf("%s: got %+v, want restart=%v delay=%v", c.name, d, c.restart, c.delay)
		}
		if !d.Restart && d.Reason == "" {
			t.Errorf("%s: no reason given for not restarting", c.name)
		}
	}
}

func TestProcessArgs(t *testing.T) {
	img := ImageConfig{Entrypoint: []string{"/app"}, Cmd: []string{"-serve"}}
	for _, c := range []struct {
		name       string
		cmd, args  []string
		img        ImageConfig
		want       []string
		wantErrSub string
	}{
		{"image defaults", nil, nil, img, []string{"/app", "-serve"}, ""},
		{"args replace cmd", nil, []string{"-x"}, img, []string{"/app", "-x"}, ""},
		{"command replaces entrypoint and drops cmd", []string{"/bin/sh"}, nil, img, []string{"/bin/sh"}, ""},
		{"command and args", []string{"/bin/sh"}, []string{"-c", "true"}, img, []string{"/bin/sh", "-c", "true"}, ""},
		{"cmd only image", nil, nil, ImageConfig{Cmd: []string{"/run"}}, []string{"/run"}, ""},
		{"nothing", nil, nil, ImageConfig{}, nil, "no command"},
	} {
		got, err := ProcessArgs(api.ContainerSpec{Command: c.cmd, Args: c.args}, c.img)
		if c.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
				t.Errorf("%s: err %v", c.name, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v %v, want %v", c.name, got, err, c.want)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"PATH=/x", "A=1", "B=2"}, []string{"B=3", "C=4"})
	if want := []string{"PATH=/x", "A=1", "B=3", "C=4"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	got = MergeEnv(nil, []string{"A=1"})
	if want := []string{DefaultPath, "A=1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestParseUser(t *testing.T) {
	for in, want := range map[string][3]any{
		"":           {uint32(0), uint32(0), true},
		"1000":       {uint32(1000), uint32(1000), true},
		"1000:50":    {uint32(1000), uint32(50), true},
		"nobody":     {uint32(0), uint32(0), false},
		"1000:staff": {uint32(0), uint32(0), false},
	} {
		u, g, ok := ParseUser(in)
		if u != want[0] || g != want[1] || ok != want[2] {
			t.Errorf("ParseUser(%q) = %d %d %v, want %v", in, u, g, ok, want)
		}
	}
}

func TestSpecFor(t *testing.T) {
	task := &api.Task{ID: "t1", Spec: api.TaskSpec{
		Container: api.ContainerSpec{
			Image: "x", Args: []string{"-v"}, Env: []string{"A=1"}, User: "7:8", ReadOnly: true,
			Mounts: []api.Mount{
				{Type: api.MountBind, Source: "/srv", Target: "/data", ReadOnly: true},
				{Type: api.MountTmpfs, Target: "/dev/shm", TmpfsSize: 1024},
				{Type: api.MountVolume, Source: "vol1", Target: "/vol"},
			},
		},
		Resources: api.ResourceReqs{Limits: api.Resources{NanoCPUs: 1_500_000_000, MemoryBytes: 1 << 30, Pids: 10}},
	}}
	s, err := SpecFor(task, ImageConfig{Entrypoint: []string{"/app"}, WorkingDir: "/w"}, SpecOptions{CgroupParent: "warren/n1", VolumeDir: "/var/lib/warren/volumes"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Process.Args, []string{"/app", "-v"}) || s.Process.Cwd != "/w" ||
		s.Process.User.UID != 7 || s.Process.User.GID != 8 || s.Hostname != "t1" || !s.Root.Readonly {
		t.Fatalf("process/root: %+v %+v host %q", s.Process, s.Root, s.Hostname)
	}
	if *s.Linux.Resources.CPU.Quota != 150000 || *s.Linux.Resources.Memory.Limit != 1<<30 || *s.Linux.Resources.Pids.Limit != 10 {
		t.Fatalf("resources %+v", s.Linux.Resources)
	}
	if s.Linux.CgroupsPath != "/warren/n1/t1" {
		t.Fatalf("cgroups path %q", s.Linux.CgroupsPath)
	}
	var shm, vol int
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			shm++
			if m.Source != "tmpfs" {
				t.Fatalf("task tmpfs did not replace default /dev/shm: %+v", m)
			}
		}
		if m.Destination == "/vol" {
			vol++
			if m.Source != "/var/lib/warren/volumes/vol1" {
				t.Fatalf("volume %+v", m)
			}
		}
	}
	if shm != 1 || vol != 1 {
		t.Fatalf("mounts %+v", s.Mounts)
	}
	for _, bad := range []api.Mount{
		{Type: api.MountBind, Source: "rel", Target: "/x"},
		{Type: api.MountBind, Source: "/x", Target: "rel"},
		{Type: api.MountVolume, Source: "../etc", Target: "/x"},
		{Type: "nfs", Target: "/x"},
	} {
		tk := *task
		tk.Spec.Container.Mounts = []api.Mount{bad}
		if _, err := SpecFor(&tk, ImageConfig{Entrypoint: []string{"/app"}}, SpecOptions{VolumeDir: "/v"}); err == nil {
			t.Errorf("mount %+v accepted", bad)
		}
	}
}

func TestLabelsFor(t *testing.T) {
	task := &api.Task{ID: "t1", ServiceID: "s1", ServiceName: "web", NodeID: "n1", Slot: 2, Version: "v2",
		Spec: api.TaskSpec{Container: api.ContainerSpec{Labels: map[string]string{"a": "b", LabelTaskID: "spoof"},
			StopSignal: "SIGINT", StopGrace: api.Duration(5 * time.Second)}}}
	l := LabelsFor(task)
	want := map[string]string{"a": "b", LabelTaskID: "t1", LabelServiceID: "s1", LabelServiceName: "web",
		LabelNodeID: "n1", LabelSlot: "2", LabelVersion: "v2", LabelStopSignal: "SIGINT", LabelStopGrace: "5s"}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("got %v want %v", l, want)
	}
}

func TestHealthTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type obs struct {
		sec  int
		ok   bool
		want api.HealthState
	}
	for _, c := range []struct {
		name  string
		check api.HealthCheck
		seq   []obs
	}{
		{"start period hides failures", api.HealthCheck{Retries: 1, StartPeriod: api.Duration(10 * time.Second)}, []obs{
			{1, false, api.HealthStarting}, {5, false, api.HealthStarting}, {11, false, api.HealthUnhealthy}}},
		{"success in start period ends it", api.HealthCheck{Retries: 2, StartPeriod: api.Duration(10 * time.Second)}, []obs{
			{1, true, api.HealthHealthy}, {2, false, api.HealthHealthy}, {3, false, api.HealthUnhealthy}}},
		{"retries consecutive", api.HealthCheck{Retries: 3}, []obs{
			{1, false, api.HealthStarting}, {2, false, api.HealthStarting}, {3, true, api.HealthHealthy},
			{4, false, api.HealthHealthy}, {5, false, api.HealthHealthy}, {6, false, api.HealthUnhealthy}, {7, true, api.HealthHealthy}}},
		{"default retries 3", api.HealthCheck{}, []obs{
			{1, false, api.HealthStarting}, {2, false, api.HealthStarting}, {3, false, api.HealthUnhealthy}}},
	} {
		h := NewHealthTracker(c.check, t0)
		for i, o := range c.seq {
			if got := h.Observe(at(o.sec), o.ok); got != o.want {
				t.Errorf("%s: step %d: %s, want %s", c.name, i, got, o.want)
			}
		}
	}
}

func TestStopGrace(t *testing.T) {
	if got := StopGrace(api.ContainerSpec{}); got != DefaultStopGrace {
		t.Errorf("no grace: %s, want the default %s", got, DefaultStopGrace)
	}
	if got := StopGrace(api.ContainerSpec{StopGrace: api.Duration(3 * time.Second)}); got != 3*time.Second {
		t.Errorf("3s grace: %s", got)
	}
}

func TestHealthTrackerResume(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := api.HealthCheck{Retries: 2}
	tr := NewHealthTracker(c, t0)
	tr.Resume(api.HealthHealthy)
	if s := tr.Observe(t0.Add(time.Second), false); s != api.HealthHealthy {
		t.Fatalf("one failure after resuming healthy: %s, want still healthy (2 retries)", s)
	}
	if s := tr.Observe(t0.Add(2*time.Second), false); s != api.HealthUnhealthy {
		t.Fatalf("second failure: %s, want unhealthy", s)
	}
	tr = NewHealthTracker(c, t0)
	tr.Resume(api.HealthStarting)
	tr.Resume(api.HealthNone)
	if s := tr.State(); s != api.HealthStarting {
		t.Fatalf("resumed from a non-verdict: %s, want starting", s)
	}
}

func TestHostnameIsTheShortID(t *testing.T) {
	task := &api.Task{ID: "0123456789abcdef0123456789abcdef"}
	if got := Hostname(task); got != "0123456789ab" {
		t.Fatalf("hostname %q, want the 12-character short ID as in Swarm", got)
	}
	task.Spec.Container.Hostname = "web"
	if got := Hostname(task); got != "web" {
		t.Fatalf("hostname %q, want the spec's", got)
	}
}
