package choose_test

import (
	"errors"
	"testing"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/choose"
	"github.com/warrenhq/warren/dataplane/proxy"
)

// unsupported are options eBPF refuses with ErrNotSupported on any host,
// root or not: the cgroup path and pin dir are a plain directory, neither
// cgroup v2 nor bpffs.
func unsupported(t *testing.T, mode string) choose.Options {
	dir := t.TempDir()
	return choose.Options{Mode: mode, CgroupPath: dir, PinDir: dir + "/pins"}
}

func TestChoose(t *testing.T) {
	for _, c := range []struct {
		mode      string
		wantProxy bool
		wantErr   error // nil: no error
	}{
		{mode: choose.ModeAuto, wantProxy: true},
		{mode: "", wantProxy: true},
		{mode: choose.ModeProxy, wantProxy: true},
		{mode: choose.ModeEBPF, wantErr: dataplane.ErrNotSupported},
	} {
		d, err := choose.New(unsupported(t, c.mode))
		if c.wantErr != nil {
			if !errors.Is(err, c.wantErr) {
				t.Errorf("mode %q: err %v, want %v", c.mode, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("mode %q: %v", c.mode, err)
			continue
		}
		if _, ok := d.(*proxy.Dataplane); ok != c.wantProxy {
			t.Errorf("mode %q: got %T, want the proxy: %v", c.mode, d, c.wantProxy)
		}
		d.Close()
	}
}

func TestChooseUnknownMode(t *testing.T) {
	if d, err := choose.New(choose.Options{Mode: "xdp"}); err == nil {
		d.Close()
		t.Fatal("mode xdp accepted")
	}
}
