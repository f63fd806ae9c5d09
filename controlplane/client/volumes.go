package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/warrenhq/warren/controlplane/api"
)

// CreateVolume creates a named volume; the server fills the defaults
// (driver local, scope from the driver) and returns the stored volume.
func (c *Client) CreateVolume(ctx context.Context, spec api.VolumeSpec) (*api.Volume, error) {
	var out api.Volume
	return &out, c.call(ctx, http.MethodPost, "/v1/volumes", nil, spec, &out)
}

// Volumes lists every volume.
func (c *Client) Volumes(ctx context.Context) ([]api.Volume, error) {
	var out []api.Volume
	return out, c.call(ctx, http.MethodGet, "/v1/volumes", nil, nil, &out)
}

// Volume returns one volume by name.
func (c *Client) Volume(ctx context.Context, name string) (*api.Volume, error) {
	var out api.Volume
	return &out, c.call(ctx, http.MethodGet, "/v1/volumes/"+esc(name), nil, nil, &out)
}

// RemoveVolume forgets a volume; force removes one that services still mount.
func (c *Client) RemoveVolume(ctx context.Context, name string, force bool) (*WriteResult, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var out WriteResult
	return &out, c.call(ctx, http.MethodDelete, "/v1/volumes/"+esc(name), q, nil, &out)
}
