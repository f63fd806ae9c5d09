package ca

import (
	"crypto/ecdsa"
	"io"
)

// KeyRequest is a node key generated here and a CSR for it: what a node
// sends to join, renew or change role. The key never leaves the node;
// Complete pairs it with the certificate that comes back.
type KeyRequest struct {
	CSR []byte // PEM
	key *ecdsa.PrivateKey
}

// NewKeyRequest makes a fresh key and a CSR naming nodeID (the CA decides
// the certificate's subject anyway).
func NewKeyRequest(nodeID string, rnd io.Reader) (*KeyRequest, error) {
	key, err := NewNodeKey(rnd)
	if err != nil {
		return nil, err
	}
	csr, err := NewCSR(key, nodeID, rnd)
	if err != nil {
		return nil, err
	}
	return &KeyRequest{CSR: csr, key: key}, nil
}

// Complete returns a CertStore holding the key and the issued certificate.
func (r *KeyRequest) Complete(certPEM []byte) (*CertStore, error) {
	keyPEM, err := MarshalKeyPEM(r.key)
	if err != nil {
		return nil, err
	}
	return NewCertStore(certPEM, keyPEM)
}
