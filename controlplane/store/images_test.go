package store

import (
	"errors"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// An image holder update is conditional on the image's version, which
// the FSM sets to the raft index of its last change; such a batch is
// tagged CmdImageBatch so a manager that does not know the kind stops on
// it rather than refusing what its peers apply.
func TestImageVersionExpectation(t *testing.T) {
	s := New()
	apply := func(idx uint64, b *Batch) error {
		data, err := Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		return s.Apply(idx, data)
	}
	if err := apply(1, &Batch{PutImages: []api.Image{{Name: "web", Digest: "sha256:aa", Holders: []string{"m1"}}}}); err != nil {
		t.Fatal(err)
	}
	img, _ := s.View().Image("web")
	if img.Version != 1 {
		t.Fatalf("image version %d, want the raft index 1", img.Version)
	}
	hold := func(idx, version uint64, holders ...string) error {
		next := img
		next.Holders = holders
		return apply(idx, &Batch{Expect: []Expectation{{Kind: KindImage, ID: "web", Version: version}}, PutImages: []api.Image{next}})
	}
	if err := hold(2, 1, "m1", "m2"); err != nil {
		t.Fatal(err)
	}
	// A second writer that read version 1 too is refused.
	if err := hold(3, 1, "m1", "m3"); !errors.Is(err, ErrConflict) {
		t.Fatalf("a stale holder update: %v, want a conflict", err)
	}
	if got, _ := s.View().Image("web"); got.Version != 2 || len(got.Holders) != 2 || got.Holders[1] != "m2" {
		t.Fatalf("image after the refused write: %+v", got)
	}
	data, _ := Encode(&Batch{Expect: []Expectation{{Kind: KindImage, ID: "web", Version: 2}}})
	if CommandType(data[0]) != CmdImageBatch || CmdImageBatch&IgnorableCommandFlag != 0 {
		t.Fatalf("an image expectation is encoded as type %d, want the essential CmdImageBatch", data[0])
	}
	if data, _ := Encode(&Batch{PutImages: []api.Image{img}}); CommandType(data[0]) != CmdBatch {
		t.Fatalf("a plain image put is type %d, want CmdBatch (older managers apply it)", data[0])
	}
}
