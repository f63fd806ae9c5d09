package raftnode

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

func TestSealedLogs(t *testing.T) {
	inner := raft.NewInmemStore()
	s, err := newSealedLogs(inner, testKey)
	if err != nil {
		t.Fatal(err)
	}
	// An entry from before encryption was on stays readable.
	if err := inner.StoreLog(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte("\x01{\"old\":true}")}); err != nil {
		t.Fatal(err)
	}
	in := []*raft.Log{
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("\x01{\"name\":\"plain-marker\"}")},
		{Index: 3, Term: 1, Type: raft.LogNoop},
	}
	if err := s.StoreLogs(in); err != nil {
		t.Fatal(err)
	}
	if string(in[0].Data) != "\x01{\"name\":\"plain-marker\"}" {
		t.Fatal("StoreLogs changed the caller's entry")
	}
	var raw raft.Log
	if err := inner.GetLog(2, &raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Data, []byte("plain-marker")) || !bytes.HasPrefix(raw.Data, sealedEntryMagic) {
		t.Fatalf("stored entry is not sealed: %q", raw.Data)
	}
	for i, want := range map[uint64]string{1: "\x01{\"old\":true}", 2: "\x01{\"name\":\"plain-marker\"}", 3: ""} {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil || string(l.Data) != want {
			t.Fatalf("entry %d = %q, %v; want %q", i, l.Data, err, want)
		}
	}
	// A sealed entry moved to another index does not open.
	moved := raw
	moved.Index = 4
	if err := inner.StoreLog(&moved); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(4, &l); err == nil {
		t.Fatal("an entry copied to another index opened")
	}
	other, _ := newSealedLogs(inner, bytes.Repeat([]byte{1}, 32))
	if err := other.GetLog(2, &l); err == nil {
		t.Fatal("another key opened the entry")
	}
}

func TestSealedSnapshots(t *testing.T) {
	dir := t.TempDir()
	files, err := raft.NewFileSnapshotStore(dir, 10, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSealedSnapshots(files, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range []int{0, 1, snapChunk - 1, snapChunk, snapChunk + 1, 3*snapChunk + 17} {
		plain := bytes.Repeat([]byte("snapshot-marker "), size/16+1)[:size]
		sink, err := s.Create(raft.SnapshotVersionMax, uint64(10+i), 1, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Written in odd pieces, as raft's io.Copy may.
		for p := plain; len(p) > 0; {
			k := min(len(p), 7777)
			if n, err := sink.Write(p[:k]); err != nil || n != k {
				t.Fatalf("write: %d, %v", n, err)
			}
			p = p[k:]
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "snapshots", sink.ID(), "state.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 && bytes.Contains(raw, []byte("snapshot-marker")) {
			t.Fatalf("size %d: the snapshot file holds the state in clear", size)
		}
		meta, rc, err := s.Open(sink.ID())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: read back %d bytes, %v", size, len(got), err)
		}
		if meta.Size != int64(size) {
			t.Fatalf("size %d: meta.Size %d (raft sends exactly Size bytes to a follower)", size, meta.Size)
		}
	}
	// A snapshot from before encryption was on opens as it is.
	sink, _ := files.Create(raft.SnapshotVersionMax, 99, 1, raft.Configuration{}, 1, nil)
	sink.Write([]byte("old plain state"))
	sink.Close()
	meta, rc, err := s.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "old plain state" || meta.Size != 15 {
		t.Fatalf("old snapshot = %q size %d", got, meta.Size)
	}
}

// A sealed stream cut after a chunk boundary is refused, not taken for a
// smaller state.
func TestSealedSnapshotTruncated(t *testing.T) {
	var buf bytes.Buffer
	aead, _ := newGCM(testKey)
	w := &sealedSink{SnapshotSink: nopSink{&buf}, aead: aead, prefix: []byte{1, 2, 3, 4}}
	w.Write(bytes.Repeat([]byte{7}, 2*snapChunk+5))
	w.flush(true)
	whole := buf.Bytes()
	cut := whole[:4+snapChunk+16] // the first chunk only
	r := &snapReader{r: bytes.NewReader(cut), aead: aead, prefix: []byte{1, 2, 3, 4}}
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("a truncated snapshot read without error")
	}
	r = &snapReader{r: bytes.NewReader(whole), aead: aead, prefix: []byte{1, 2, 3, 4}}
	if got, err := io.ReadAll(r); err != nil || len(got) != 2*snapChunk+5 {
		t.Fatalf("whole stream: %d bytes, %v", len(got), err)
	}
}

type nopSink struct{ io.Writer }

func (nopSink) ID() string    { return "x" }
func (nopSink) Cancel() error { return nil }
func (nopSink) Close() error  { return nil }
