package api

import (
	"encoding/hex"
	"fmt"
	"io"
)

// NewID makes the ID of a cluster, node, service or task: 128 random bits
// in hex. Every object gets its ID from here, so they all look alike.
func NewID(rnd io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
