package client

import (
	"context"
	"net/http"
)

// ClusterUpdate changes cluster-wide settings; nil fields are left alone.
type ClusterUpdate struct {
	Autolock *bool `json:"autolock,omitempty"`
}

// ClusterUpdateResult carries the unlock key when autolock was just turned
// on: it is shown this once.
type ClusterUpdateResult struct {
	Index     uint64 `json:"index"`
	UnlockKey string `json:"unlock_key,omitempty"`
}

// UnlockKeyInfo is the current unlock key (WRNKEY-1-…).
type UnlockKeyInfo struct {
	UnlockKey string `json:"unlock_key"`
}

// UnlockRequest unlocks a manager restarted under autolock.
type UnlockRequest struct {
	Key string `json:"key"`
}

// UpdateCluster changes cluster-wide settings (autolock).
func (c *Client) UpdateCluster(ctx context.Context, u ClusterUpdate) (*ClusterUpdateResult, error) {
	var out ClusterUpdateResult
	return &out, c.call(ctx, http.MethodPost, "/v1/cluster/update", nil, u, &out)
}

// UnlockKey returns the current unlock key.
func (c *Client) UnlockKey(ctx context.Context) (*UnlockKeyInfo, error) {
	var out UnlockKeyInfo
	return &out, c.call(ctx, http.MethodGet, "/v1/cluster/unlock-key", nil, nil, &out)
}

// RotateUnlockKey replaces the unlock key; every manager re-wraps its KEK.
func (c *Client) RotateUnlockKey(ctx context.Context) (*UnlockKeyInfo, error) {
	var out UnlockKeyInfo
	return &out, c.call(ctx, http.MethodPost, "/v1/cluster/unlock-key/rotate", nil, nil, &out)
}

// Unlock gives a locked manager its unlock key.
func (c *Client) Unlock(ctx context.Context, key string) error {
	return c.call(ctx, http.MethodPost, "/v1/cluster/unlock", nil, UnlockRequest{Key: key}, nil)
}

// Headers of the audit trail.
const (
	// HeaderRequestID names one request in the audit log; a follower passes
	// it on when it forwards, and every answer to an audited route has it.
	HeaderRequestID = "Warren-Request-Id"
	// HeaderForwardedSource is the caller's address as the forwarding
	// follower saw it. Only trusted from managers.
	HeaderForwardedSource = "Warren-Forwarded-Source"
)
