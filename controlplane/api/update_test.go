package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestUpdateStateWireValues pins the JSON form of every rollout state: they
// live in raft logs and snapshots and are read by CLIs of other versions, so
// renaming a constant must never change what is stored.
func TestUpdateStateWireValues(t *testing.T) {
	for state, wire := range map[UpdateState]string{
		UpdateUpdating:        "updating",
		UpdatePaused:          "paused",
		UpdateAwaitingPromote: "awaiting-promote",
		UpdateCompleted:       "completed",
		UpdateRolledBack:      "rolled-back",
	} {
		data, err := json.Marshal(UpdateStatus{State: state})
		if err != nil {
			t.Fatal(err)
		}
		if want := `"state":"` + wire + `"`; !strings.Contains(string(data), want) {
			t.Errorf("%s encodes as %s, want %s", wire, data, want)
		}
		var back UpdateStatus
		if err := json.Unmarshal([]byte(`{"state":"`+wire+`"}`), &back); err != nil || back.State != state {
			t.Errorf("%q decodes to %q (%v), want %q", wire, back.State, err, state)
		}
	}
}
