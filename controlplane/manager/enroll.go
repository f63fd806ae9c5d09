package manager

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
)

// Enroll joins a cluster with a token, for a worker or a manager alike: it
// pins the CA by the token's digest before anything is sent, sends a CSR for
// a key made here, and saves the certificate and the CA certificate in
// dataDir (and the KEK, for a manager). req carries the joiner's
// description; Token and CSRPEM are filled in here.
func Enroll(ctx context.Context, dataDir, addr, token string, req client.JoinRequest) (*client.JoinResponse, *ca.CertStore, *ca.CA, error) {
	tok, err := ca.ParseToken(token)
	if err != nil {
		return nil, nil, nil, err
	}
	verifier, err := ca.FetchCA(ctx, addr, tok.CADigest)
	if err != nil {
		return nil, nil, nil, err
	}
	kr, err := ca.NewKeyRequest("joining", rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	anon, err := client.New(client.Config{Addrs: []string{addr}, TLS: ca.ClientConfig(verifier, nil, ca.ManagerServerName)})
	if err != nil {
		return nil, nil, nil, err
	}
	req.Token, req.CSRPEM = token, string(kr.CSR)
	resp, err := anon.Join(ctx, req)
	if err != nil {
		return nil, nil, nil, err
	}
	certs, err := kr.Complete([]byte(resp.CertPEM))
	if err != nil {
		return nil, nil, nil, err
	}
	err = SaveCerts(dataDir, certs, []byte(resp.CACertPEM))
	if err == nil && len(resp.KEK) > 0 {
		// Under autolock the KEK never touches this disk in clear.
		var unlock []byte
		if len(resp.UnlockKey) > 0 {
			if unlock, err = secretbox.Open(resp.KEK, resp.UnlockKey, secretbox.AADUnlockKey); err != nil {
				err = fmt.Errorf("open the cluster's unlock key: %w", err)
			}
		}
		if err == nil {
			err = saveKEK(dataDir, resp.KEK, unlock)
		}
	}
	if err != nil {
		ForgetEnrolment(dataDir)
		return nil, nil, nil, fmt.Errorf("save the join's credentials in %s: %w", dataDir, err)
	}
	return resp, certs, verifier, nil
}

// ForgetEnrolment removes what Enroll saved, for a join that cannot be
// completed: a data dir with credentials but no node.json is half a node,
// which neither resumes nor looks fresh to the operator.
func ForgetEnrolment(dataDir string) {
	_ = os.RemoveAll(filepath.Join(dataDir, CertsDir))
	_ = os.Remove(filepath.Join(dataDir, ca.KEKFile))
	_ = os.Remove(filepath.Join(dataDir, LockedKEKFile))
}

// SaveCerts writes the node's key pair and the cluster CA certificate to
// <dataDir>/certs, where resume and the CLI read them.
func SaveCerts(dataDir string, certs *ca.CertStore, caPEM []byte) error {
	dir := filepath.Join(dataDir, CertsDir)
	if err := certs.Save(dir); err != nil {
		return err
	}
	if caPEM == nil {
		return nil
	}
	return writePrivate(filepath.Join(dir, CAFile), caPEM)
}
