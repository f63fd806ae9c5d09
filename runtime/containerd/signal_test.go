package containerd

import (
	"syscall"
	"testing"
)

func TestStopSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "int": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT, "usr1": syscall.SIGUSR1,
	} {
		got, err := stopSignal(in)
		if err != nil || got != want {
			t.Errorf("stopSignal(%q) = %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := stopSignal("SIGNOPE"); err == nil {
		t.Error("unknown signal accepted")
	}
}
