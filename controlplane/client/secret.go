package client

import (
	"context"
	"net/http"

	"github.com/warrenhq/warren/controlplane/api"
)

// SecretCreateRequest creates a secret or config. Data is the value (JSON
// base64); the API seals it before it enters raft.
type SecretCreateRequest struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Data   []byte            `json:"data"`
}

// SecretUpdateRequest replaces the value (when Data is set) and the labels
// (when Labels is set). A new value is rewritten in place inside running
// tasks, or rolls the services that mount it with restart=true.
type SecretUpdateRequest struct {
	Data   []byte            `json:"data,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// SecretInfo is a secret or config as the API shows it: never the sealed
// value, and Data only for configs.
type SecretInfo struct {
	ID     string         `json:"id"`
	Kind   api.SecretKind `json:"kind"`
	Spec   api.SecretSpec `json:"spec"`
	Size   int            `json:"size"`
	Meta   api.Meta       `json:"meta"`
	Data   []byte         `json:"data,omitempty"`
	UsedBy []string       `json:"used_by,omitempty"`
}

func secretPath(kind api.SecretKind) string { return "/v1/" + string(kind) + "s" }

// CreateSecret stores a new secret or config.
func (c *Client) CreateSecret(ctx context.Context, kind api.SecretKind, req SecretCreateRequest) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, secretPath(kind), nil, req, &out)
}

// Secrets lists the secrets or configs, without values.
func (c *Client) Secrets(ctx context.Context, kind api.SecretKind) ([]SecretInfo, error) {
	var out []SecretInfo
	return out, c.call(ctx, http.MethodGet, secretPath(kind), nil, nil, &out)
}

// Secret returns one secret or config by ID or name.
func (c *Client) Secret(ctx context.Context, kind api.SecretKind, ref string) (*SecretInfo, error) {
	var out SecretInfo
	return &out, c.call(ctx, http.MethodGet, secretPath(kind)+"/"+esc(ref), nil, nil, &out)
}

// UpdateSecret replaces a secret's or config's value or labels.
func (c *Client) UpdateSecret(ctx context.Context, kind api.SecretKind, ref string, req SecretUpdateRequest) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, secretPath(kind)+"/"+esc(ref)+"/update", nil, req, &out)
}

// RemoveSecret deletes a secret or config no service mounts.
func (c *Client) RemoveSecret(ctx context.Context, kind api.SecretKind, ref string) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodDelete, secretPath(kind)+"/"+esc(ref), nil, nil, &out)
}
