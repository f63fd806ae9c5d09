package registry

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestRefusals(t *testing.T) {
	r := &Refusals{Min: 5 * time.Second, Max: 20 * time.Second}
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	denied := fmt.Errorf("image x: %w", ErrUnauthorized)
	down := errors.New("connection refused")
	key := RefusalKey("r/x:1", map[string]api.RegistryCredential{"r": {Username: "u", Password: "bad"}})
	steps := []struct {
		now     float64
		record  error // recorded after the check, when set
		refused bool
	}{
		{0, denied, false},  // first try: asked, refused → wait 5 s
		{1, nil, true},      // held
		{4.9, nil, true},    // held
		{5, denied, false},  // asked again, refused → wait 10 s
		{14, nil, true},     // held
		{15, denied, false}, // → 20 s
		{34, nil, true},     // held
		{35, denied, false}, // → capped at 20 s
		{54, nil, true},
		{55, down, false}, // a failure that may pass forgets the refusal
		{55.1, nil, false},
	}
	for _, s := range steps {
		err := r.Check(key, at(s.now))
		if (err != nil) != s.refused {
			t.Fatalf("t=%v: check %v, want refused=%v", s.now, err, s.refused)
		}
		if err != nil && !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("t=%v: a held refusal lost its cause: %v", s.now, err)
		}
		if s.record != nil {
			r.Record(key, s.record, at(s.now))
		}
	}
	// Other credentials are another pull, tried at once.
	r.Record(key, denied, at(60))
	other := RefusalKey("r/x:1", map[string]api.RegistryCredential{"r": {Username: "u", Password: "good"}})
	if err := r.Check(other, at(61)); err != nil {
		t.Fatalf("a new login is held by the old one's refusal: %v", err)
	}
	if err := r.Check(key, at(61)); err == nil {
		t.Fatal("the refused pull is not held")
	}
	r.Record(key, nil, at(62))
	if err := r.Check(key, at(62)); err != nil {
		t.Fatal("a success does not forget the refusal")
	}
}
