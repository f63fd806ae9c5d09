package manager

import (
	"context"
	"crypto/rand"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/ca"
)

// runRenewal renews this manager's own certificate at a random point
// between 50% and 80% of its life, signing it locally: a manager holds the
// CA key, and asking another manager would fail exactly when quorum is
// lost — when the certificate matters most.
func (m *Manager) runRenewal(ctx context.Context) {
	r := &ca.Renewer{
		Store: m.certs,
		Dir:   m.cfg.DataDir + "/" + CertsDir,
		Renew: func(ctx context.Context, csrPEM []byte) ([]byte, error) {
			s, err := m.Signer()
			if err != nil {
				return nil, err
			}
			id, err := m.certs.Identity()
			if err != nil {
				return nil, err
			}
			ttl := ca.DefaultNodeCertTTL
			if c := m.st.View().Cluster(); c != nil && c.NodeCertTTL > 0 {
				ttl = c.NodeCertTTL.D()
			}
			return s.Sign(csrPEM, id, ttl, time.Now(), rand.Reader)
		},
		Clock: ca.SystemClock{},
		Rand:  rand.Reader,
		Log:   m.log.With(zap.String("component", "cert-renewal")),
	}
	if err := r.Run(ctx); err != nil && ctx.Err() == nil {
		m.log.Error("certificate renewal stopped", zap.Error(err))
	}
}
