package raftnode

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// Encryption at rest of the raft log and snapshots (Config.EncryptionKey).
// Each manager seals its own files under its own key; entries travel
// between managers in clear inside mTLS, and a snapshot sent to a follower
// is opened here and sealed again there. Entries and snapshots written
// before encryption was turned on stay readable: sealed ones carry a magic
// prefix that no entry Warren writes starts with (command bytes are small,
// configuration entries are msgpack maps).

var (
	sealedEntryMagic = []byte{0xff, 'W', 'E', '1'}
	sealedSnapMagic  = []byte("WRNSNAP1")
)

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("raft encryption key: %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// sealedLogs seals every entry's Data before it reaches the log store. The
// entry's index is the additional data, so entries cannot be swapped.
type sealedLogs struct {
	raft.LogStore
	aead cipher.AEAD
}

func newSealedLogs(inner raft.LogStore, key []byte) (*sealedLogs, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &sealedLogs{LogStore: inner, aead: aead}, nil
}

func indexAAD(i uint64) []byte { return binary.BigEndian.AppendUint64([]byte("warren/raft-entry/"), i) }

func (s *sealedLogs) seal(l *raft.Log) (*raft.Log, error) {
	if len(l.Data) == 0 {
		return l, nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, err
	}
	out := append(append(bytes.Clone(sealedEntryMagic), nonce...), s.aead.Seal(nil, nonce, l.Data, indexAAD(l.Index))...)
	c := *l
	c.Data = out
	return &c, nil
}

func (s *sealedLogs) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *sealedLogs) StoreLogs(ls []*raft.Log) error {
	out := make([]*raft.Log, len(ls))
	for i, l := range ls {
		c, err := s.seal(l)
		if err != nil {
			return fmt.Errorf("seal raft entry %d: %w", l.Index, err)
		}
		out[i] = c
	}
	return s.LogStore.StoreLogs(out)
}

func (s *sealedLogs) GetLog(index uint64, l *raft.Log) error {
	if err := s.LogStore.GetLog(index, l); err != nil {
		return err
	}
	rest, ok := bytes.CutPrefix(l.Data, sealedEntryMagic)
	if !ok {
		return nil // written before encryption was on
	}
	n := s.aead.NonceSize()
	if len(rest) < n {
		return fmt.Errorf("raft entry %d: sealed data too short", index)
	}
	pt, err := s.aead.Open(nil, rest[:n], rest[n:], indexAAD(l.Index))
	if err != nil {
		return fmt.Errorf("raft entry %d: cannot open it with this manager's raft key: %w", index, err)
	}
	l.Data = pt
	return nil
}

// sealedSnapshots seals snapshot streams in chunks: a header (magic, a
// random nonce prefix), then chunks of up to snapChunk bytes, each with a
// 4-byte length whose top bit marks the last one, sealed with a counter
// nonce. A truncated or reordered stream fails to open.
type sealedSnapshots struct {
	raft.SnapshotStore
	aead cipher.AEAD
}

const snapChunk = 64 << 10

const (
	snapHeaderLen = 8 + 4
	chunkOverhead = 4 + 16
	finalBit      = 1 << 31
)

func newSealedSnapshots(inner raft.SnapshotStore, key []byte) (*sealedSnapshots, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &sealedSnapshots{SnapshotStore: inner, aead: aead}, nil
}

func chunkNonce(prefix []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(prefix), n)
}

func chunkAAD(final bool) []byte {
	if final {
		return []byte("warren/raft-snapshot/last")
	}
	return []byte("warren/raft-snapshot/chunk")
}

func (s *sealedSnapshots) Create(version raft.SnapshotVersion, index, term uint64, conf raft.Configuration, confIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, conf, confIndex, trans)
	if err != nil {
		return nil, err
	}
	prefix := make([]byte, 4)
	if _, err := io.ReadFull(rand.Reader, prefix); err != nil {
		_ = sink.Cancel()
		return nil, err
	}
	if _, err := sink.Write(append(bytes.Clone(sealedSnapMagic), prefix...)); err != nil {
		_ = sink.Cancel()
		return nil, err
	}
	return &sealedSink{SnapshotSink: sink, aead: s.aead, prefix: prefix}, nil
}

type sealedSink struct {
	raft.SnapshotSink
	aead   cipher.AEAD
	prefix []byte
	n      uint64
	buf    []byte
}

func (w *sealedSink) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		// A full chunk is written only once more data follows, so the last
		// chunk always holds 1..snapChunk bytes (0 only for an empty stream).
		if len(w.buf) == snapChunk {
			if err := w.flush(false); err != nil {
				return 0, err
			}
		}
		k := min(snapChunk-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
	}
	return total, nil
}

func (w *sealedSink) flush(final bool) error {
	ct := w.aead.Seal(nil, chunkNonce(w.prefix, w.n), w.buf, chunkAAD(final))
	w.n++
	size := uint32(len(ct))
	if final {
		size |= finalBit
	}
	if _, err := w.SnapshotSink.Write(binary.BigEndian.AppendUint32(nil, size)); err != nil {
		return err
	}
	if _, err := w.SnapshotSink.Write(ct); err != nil {
		return err
	}
	clear(w.buf)
	w.buf = w.buf[:0]
	return nil
}

func (w *sealedSink) Close() error {
	if err := w.flush(true); err != nil {
		_ = w.SnapshotSink.Cancel()
		return err
	}
	return w.SnapshotSink.Close()
}

// plainSize is the length of the stream a sealed file of size total holds:
// every chunk but the last is full.
func plainSize(total int64) int64 {
	t := total - snapHeaderLen
	if t <= chunkOverhead {
		return 0
	}
	full := (t - chunkOverhead - 1) / (snapChunk + chunkOverhead)
	return t - chunkOverhead*(full+1)
}

func (s *sealedSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(rc, snapChunk+chunkOverhead)
	head, err := br.Peek(snapHeaderLen)
	if err != nil || !bytes.Equal(head[:8], sealedSnapMagic) {
		// Written before encryption was on (or too short to be sealed).
		return meta, readCloser{br, rc}, nil
	}
	prefix := bytes.Clone(head[8:])
	_, _ = br.Discard(snapHeaderLen)
	m := *meta
	m.Size = plainSize(meta.Size)
	return &m, readCloser{&snapReader{r: br, aead: s.aead, prefix: prefix}, rc}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

type snapReader struct {
	r      io.Reader
	aead   cipher.AEAD
	prefix []byte
	n      uint64
	buf    []byte
	done   bool
}

func (r *snapReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		var hdr [4]byte
		if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
			return 0, fmt.Errorf("sealed snapshot: truncated before its last chunk: %w", err)
		}
		size := binary.BigEndian.Uint32(hdr[:])
		final := size&finalBit != 0
		size &^= finalBit
		if size > snapChunk+16 {
			return 0, errors.New("sealed snapshot: chunk too large")
		}
		ct := make([]byte, size)
		if _, err := io.ReadFull(r.r, ct); err != nil {
			return 0, fmt.Errorf("sealed snapshot: truncated chunk: %w", err)
		}
		pt, err := r.aead.Open(nil, chunkNonce(r.prefix, r.n), ct, chunkAAD(final))
		if err != nil {
			return 0, fmt.Errorf("sealed snapshot: chunk %d does not open with this manager's raft key: %w", r.n, err)
		}
		r.n++
		r.buf, r.done = pt, final
	}
	k := copy(p, r.buf)
	r.buf = r.buf[k:]
	return k, nil
}
