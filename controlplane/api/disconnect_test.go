package api

import (
	"encoding/json"
	"testing"
	"time"
)

func TestGraceText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Grace
		text string
	}{
		{"inf", GraceForever, "inf"},
		{"30m", Grace(30 * time.Minute), "30m0s"},
		{"0", 0, "0s"},
	} {
		var p DisconnectPolicy
		if err := json.Unmarshal([]byte(`{"grace":"`+tc.in+`"}`), &p); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if p.Grace == nil || *p.Grace != tc.want {
			t.Fatalf("%s: grace %v, want %v", tc.in, p.Grace, tc.want)
		}
		b, _ := json.Marshal(p)
		if want := `{"grace":"` + tc.text + `"}`; string(b) != want {
			t.Errorf("%s: encoded %s, want %s", tc.in, b, want)
		}
	}
	if _, err := ParseGrace("forever"); err == nil {
		t.Error("ParseGrace(forever) accepted")
	}
}

func TestDisconnectDefaults(t *testing.T) {
	rep := ServiceSpec{Mode: ModeReplicated}
	glob := ServiceSpec{Mode: ModeGlobal}
	if g := rep.DisconnectGrace(time.Minute); g != Grace(time.Minute) {
		t.Errorf("replicated default grace %v, want the node-down grace", g)
	}
	if g := glob.DisconnectGrace(time.Minute); !g.Forever() {
		t.Errorf("global default grace %v, want inf", g)
	}
	zero := Grace(0)
	glob.Disconnect = &DisconnectPolicy{Grace: &zero}
	if g := glob.DisconnectGrace(time.Minute); g != 0 {
		t.Errorf("global grace set to 0 reads %v", g)
	}
	if p := rep.ReconcilePolicy(); p != ReconcileKeepOriginal {
		t.Errorf("default reconcile %q", p)
	}
}
