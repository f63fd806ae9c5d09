package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestDisconnectFlags(t *testing.T) {
	g := func(d time.Duration) *api.Grace { x := api.Grace(d); return &x }
	forever := api.GraceForever
	for _, tc := range []struct {
		args []string
		want *api.DisconnectPolicy
		err  string
	}{
		{args: nil, want: nil},
		{args: []string{"--disconnect-grace", "30m"}, want: &api.DisconnectPolicy{Grace: g(30 * time.Minute)}},
		{args: []string{"--disconnect-grace", "0"}, want: &api.DisconnectPolicy{Grace: g(0)}},
		{args: []string{"--disconnect-grace", "inf"}, want: &api.DisconnectPolicy{Grace: &forever}},
		{args: []string{"--disconnect-stop-after", "2h", "--reconcile", "keep-replacement"},
			want: &api.DisconnectPolicy{StopAfter: api.Duration(2 * time.Hour), Reconcile: api.ReconcileKeepReplacement}},
		{args: []string{"--reconcile", "longest-running"}, want: &api.DisconnectPolicy{Reconcile: api.ReconcileLongestRunning}},
		{args: []string{"--disconnect-grace", "soon"}, err: "--disconnect-grace"},
		{args: []string{"--disconnect-grace", "-1s"}, err: "--disconnect-grace"},
		{args: []string{"--disconnect-stop-after", "-1s"}, err: "--disconnect-stop-after"},
		{args: []string{"--reconcile", "newest"}, err: "--reconcile"},
	} {
		spec, err := parseCreate(t, append([]string{"--image", "x"}, tc.args...)...)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err = %v, want mention of %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(spec.Disconnect, tc.want) {
			t.Errorf("%v: disconnect %+v, want %+v", tc.args, spec.Disconnect, tc.want)
		}
	}
}

// An update that sets one disconnect flag keeps the others.
func TestDisconnectFlagsUpdateKeepsTheRest(t *testing.T) {
	base, err := parseCreate(t, "--image", "a:1", "--disconnect-grace", "inf", "--reconcile", "healthiest")
	if err != nil {
		t.Fatal(err)
	}
	f := &serviceFlags{}
	fs := pflag.NewFlagSet("update", pflag.ContinueOnError)
	addServiceFlags(fs, f)
	if err := fs.Parse([]string{"--disconnect-stop-after", "1h"}); err != nil {
		t.Fatal(err)
	}
	got, err := applyFlags(base, f, flagSet(fs))
	if err != nil {
		t.Fatal(err)
	}
	forever := api.GraceForever
	want := &api.DisconnectPolicy{Grace: &forever, StopAfter: api.Duration(time.Hour), Reconcile: api.ReconcileHealthiest}
	if !reflect.DeepEqual(got.Disconnect, want) {
		t.Errorf("disconnect %+v, want %+v", got.Disconnect, want)
	}
}
