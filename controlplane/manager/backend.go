package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"path/filepath"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/apiserver"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/store"
)

// backend adapts the manager to what the API server consumes.
type backend struct{ m *Manager }

var _ apiserver.Backend = (*backend)(nil)

func (b *backend) View() *store.View { return b.m.st.View() }
func (b *backend) WaitIndex(ctx context.Context, after uint64) (uint64, error) {
	return b.m.st.WaitIndex(ctx, after)
}
func (b *backend) Apply(ctx context.Context, batch *store.Batch) (uint64, error) {
	if batch.Now.IsZero() {
		batch.Now = time.Now()
	}
	return b.m.raft.Apply(ctx, batch)
}
func (b *backend) IsLeader() bool           { return b.m.raft.IsLeader() }
func (b *backend) Leader() (string, string) { return b.m.raft.Leader() }
func (b *backend) AwaitLeader(ctx context.Context) (string, string, error) {
	return b.m.raft.AwaitLeader(ctx)
}
func (b *backend) VerifyLeader(ctx context.Context) error { return b.m.raft.VerifyLeader(ctx) }
func (b *backend) ReadLease() time.Duration               { return b.m.raft.ReadLease() }
func (b *backend) WaitCaughtUp(ctx context.Context) error { return b.m.raft.WaitCaughtUp(ctx) }
func (b *backend) AddNonvoter(id, addr string) error      { return b.m.raft.AddNonvoter(id, addr) }
func (b *backend) AddVoter(id, addr string) error         { return b.m.raft.AddVoter(id, addr) }
func (b *backend) RemoveServer(id string) error           { return b.m.raft.RemoveServer(id) }
func (b *backend) DemoteVoter(id string) error            { return b.m.raft.DemoteVoter(id) }
func (b *backend) Members() ([]apiserver.Member, error) {
	ms, err := b.m.raft.Members()
	if err != nil {
		return nil, err
	}
	out := make([]apiserver.Member, len(ms))
	for i, x := range ms {
		out[i] = apiserver.Member{ID: x.ID, Addr: x.Addr, Voter: x.Voter, Leader: x.Leader}
	}
	return out, nil
}
func (b *backend) NodeID() string { return b.m.ident.NodeID }
func (b *backend) RecordHeartbeat(nodeID string, at time.Time) {
	b.m.RecordHeartbeat(nodeID, at)
}
func (b *backend) RecordTableAck(nodeID string, index uint64, at time.Time) {
	b.m.RecordTableAck(nodeID, index, at)
}
func (b *backend) TableAcks() map[string]api.TableAck { return b.m.TableAcks() }
func (b *backend) KEK() []byte                        { return append([]byte(nil), b.m.kek...) }
func (b *backend) BlobDir() string                    { return filepath.Join(b.m.cfg.DataDir, BlobsDir) }
func (b *backend) ForwardTLS() *tls.Config {
	return ca.ClientConfig(b.m.caCert, b.m.certs, ca.ManagerServerName)
}

// Signer loads the CA key lazily; until raft has replicated it, signing
// fails with a clear error instead of the API refusing to start.
func (b *backend) Signer() apiserver.Signer { return lazySigner{b.m} }

type lazySigner struct{ m *Manager }

func (s lazySigner) Sign(csrPEM []byte, id ca.Identity, ttl time.Duration, now time.Time, rnd io.Reader) ([]byte, error) {
	c, err := s.m.Signer()
	if err != nil {
		return nil, err
	}
	if !c.CanSign() {
		return nil, errors.New("this manager cannot sign: CA key unavailable")
	}
	return c.Sign(csrPEM, id, ttl, now, rnd)
}
func (s lazySigner) CertPEM() []byte { return s.m.caCert.CertPEM() }
func (s lazySigner) Digest() string  { return s.m.caCert.Digest() }
