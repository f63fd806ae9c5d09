package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	iradix "github.com/hashicorp/go-immutable-radix"

	"github.com/warrenhq/warren/controlplane/api"
)

// Snapshot format: newline-delimited JSON. A header line carries the format
// version and raft index, then one record per object in a fixed order
// (cluster, nodes, services, tasks, images, volumes, secrets, removed nodes, each sorted by key), then an end
// record with the object count so that a truncated file is detected rather
// than restored as a smaller cluster. Streaming keeps memory flat for large
// clusters; the fixed order makes snapshots of equal states byte-identical.
const snapshotFormat = 1

type snapshotHeader struct {
	Format int    `json:"format"`
	Index  uint64 `json:"index"`
}

type snapshotRecord struct {
	Cluster *api.Cluster `json:"cluster,omitempty"`
	Node    *api.Node    `json:"node,omitempty"`
	Service *api.Service `json:"service,omitempty"`
	Task    *api.Task    `json:"task,omitempty"`
	Image   *api.Image   `json:"image,omitempty"`
	Volume  *api.Volume  `json:"volume,omitempty"`
	Secret  *api.Secret  `json:"secret,omitempty"`
	Removed *RemovedNode `json:"removed_node,omitempty"`
	End     *snapshotEnd `json:"end,omitempty"`
}

type snapshotEnd struct {
	Count int `json:"count"`
}

// Snapshot writes the current state, including its index, to w.
func (s *Store) Snapshot(w io.Writer) error { return s.View().writeTo(w) }

func (v *View) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Index: v.st.index}); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	count := 0
	put := func(r snapshotRecord) error {
		count++
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write snapshot record: %w", err)
		}
		return nil
	}
	if v.st.cluster != nil {
		if err := put(snapshotRecord{Cluster: v.st.cluster}); err != nil {
			return err
		}
	}
	var err error
	walk := func(t *iradix.Tree, rec func(interface{}) snapshotRecord) {
		if err != nil {
			return
		}
		t.Root().Walk(func(_ []byte, x interface{}) bool {
			err = put(rec(x))
			return err != nil
		})
	}
	walk(v.st.nodes, func(x interface{}) snapshotRecord { return snapshotRecord{Node: x.(*api.Node)} })
	walk(v.st.services, func(x interface{}) snapshotRecord { return snapshotRecord{Service: x.(*api.Service)} })
	walk(v.st.tasks, func(x interface{}) snapshotRecord { return snapshotRecord{Task: x.(*api.Task)} })
	walk(v.st.images, func(x interface{}) snapshotRecord { return snapshotRecord{Image: x.(*api.Image)} })
	walk(v.st.volumes, func(x interface{}) snapshotRecord { return snapshotRecord{Volume: x.(*api.Volume)} })
	walk(v.st.secrets, func(x interface{}) snapshotRecord { return snapshotRecord{Secret: x.(*api.Secret)} })
	walk(v.st.removed, func(x interface{}) snapshotRecord { return snapshotRecord{Removed: x.(*RemovedNode)} })
	if err != nil {
		return err
	}
	if err := enc.Encode(snapshotRecord{End: &snapshotEnd{Count: count}}); err != nil {
		return fmt.Errorf("write snapshot end: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole state, index included, with a snapshot written
// by Snapshot. On error the store is left unchanged.
func (s *Store) Restore(r io.Reader) error {
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.publish(st)
	return nil
}

func readSnapshot(r io.Reader) (*state, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("read snapshot header: %w", err)
	}
	if h.Format != snapshotFormat {
		return nil, fmt.Errorf("read snapshot: unsupported format %d", h.Format)
	}
	base := emptyState()
	t := &txn{
		nodes: base.nodes.Txn(), services: base.services.Txn(), svcByName: base.svcByName.Txn(),
		tasks: base.tasks.Txn(), bySvc: base.bySvc.Txn(), byNode: base.byNode.Txn(), images: base.images.Txn(),
		volumes: base.volumes.Txn(),
		secrets: base.secrets.Txn(), secNames: base.secNames.Txn(),
		removed: base.removed.Txn(),
	}
	count := 0
	for {
		var rec snapshotRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read snapshot: truncated after %d records", count)
			}
			return nil, fmt.Errorf("read snapshot record %d: %w", count, err)
		}
		switch {
		case rec.End != nil:
			if rec.End.Count != count {
				return nil, fmt.Errorf("read snapshot: end record says %d objects, read %d", rec.End.Count, count)
			}
			// Every service with tasks changed at the snapshot's index, as
			// far as anyone can tell from here: what changed in the
			// entries it stands for is not in it.
			tasksAt := iradix.New().Txn()
			t.bySvc.Root().Walk(func(_ []byte, x interface{}) bool {
				id := x.(*api.Task).ServiceID
				if _, ok := t.services.Get([]byte(id)); ok {
					tasksAt.Insert([]byte(id), h.Index)
				}
				return false
			})
			return &state{
				index:     h.Index,
				tasksAt:   tasksAt.CommitOnly(),
				cluster:   t.cluster,
				nodes:     t.nodes.CommitOnly(),
				services:  t.services.CommitOnly(),
				svcByName: t.svcByName.CommitOnly(),
				tasks:     t.tasks.CommitOnly(),
				bySvc:     t.bySvc.CommitOnly(),
				byNode:    t.byNode.CommitOnly(),
				images:    t.images.CommitOnly(),
				volumes:   t.volumes.CommitOnly(),
				secrets:   t.secrets.CommitOnly(),
				secNames:  t.secNames.CommitOnly(),
				removed:   t.removed.CommitOnly(),
			}, nil
		case rec.Cluster != nil:
			t.cluster = rec.Cluster
		case rec.Node != nil:
			t.nodes.Insert([]byte(rec.Node.ID), rec.Node)
		case rec.Service != nil:
			t.services.Insert([]byte(rec.Service.ID), rec.Service)
			t.svcByName.Insert([]byte(rec.Service.Spec.Name), rec.Service)
		case rec.Task != nil:
			t.putTask(rec.Task, nil)
		case rec.Image != nil:
			t.images.Insert([]byte(rec.Image.Name), rec.Image)
		case rec.Volume != nil:
			t.volumes.Insert([]byte(rec.Volume.Name), rec.Volume)
		case rec.Secret != nil:
			t.putSecret(rec.Secret)
		case rec.Removed != nil:
			t.removed.Insert([]byte(rec.Removed.ID), rec.Removed)
		default:
			return nil, fmt.Errorf("read snapshot record %d: no known object", count)
		}
		count++
	}
}
