package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/warrenhq/warren/controlplane/api"
)

// RegistryLoginRequest stores the credential of a registry host; the API
// seals it before it enters raft and never returns it.
type RegistryLoginRequest struct {
	Host     string `json:"host"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// RegistryLoginInfo is a login as listed: its host, never its values.
type RegistryLoginInfo struct {
	Host string   `json:"host"`
	ID   string   `json:"id"`
	Meta api.Meta `json:"meta"`
}

// RegistryLogin stores or replaces the login of req.Host.
func (c *Client) RegistryLogin(ctx context.Context, req RegistryLoginRequest) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/registry/logins", nil, req, &out)
}

// RegistryLogins lists the hosts with a login.
func (c *Client) RegistryLogins(ctx context.Context) ([]RegistryLoginInfo, error) {
	var out []RegistryLoginInfo
	return out, c.call(ctx, http.MethodGet, "/v1/registry/logins", nil, nil, &out)
}

// RegistryLogout removes the login of host.
func (c *Client) RegistryLogout(ctx context.Context, host string) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodDelete, "/v1/registry/logins/"+esc(host), nil, nil, &out)
}

// RegistryConfig is the cluster's registry settings.
func (c *Client) RegistryConfig(ctx context.Context) (*api.RegistryConfig, error) {
	var out api.RegistryConfig
	return &out, c.call(ctx, http.MethodGet, "/v1/cluster/registry", nil, nil, &out)
}

// SetRegistryConfig replaces the cluster's registry settings.
func (c *Client) SetRegistryConfig(ctx context.Context, cfg api.RegistryConfig) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/cluster/registry", nil, cfg, &out)
}

// ServiceWriteOptions are the parts of a service write that are not spec.
type ServiceWriteOptions struct {
	// RegistryAuth is the caller's own credential for the image's registry
	// (--with-registry-auth); the API keeps it sealed for the service.
	RegistryAuth *api.RegistryCredential
	// NoResolveImage leaves the image unpinned (--no-resolve-image).
	NoResolveImage bool
}

func (o ServiceWriteOptions) request(method, path string, spec api.ServiceSpec) (request, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return request{}, fmt.Errorf("encode request: %w", err)
	}
	r := request{method: method, path: path, body: b, contentType: "application/json"}
	if o.NoResolveImage {
		r.query = url.Values{"resolve_image": {"never"}}
	}
	if o.RegistryAuth != nil {
		a, err := json.Marshal(o.RegistryAuth)
		if err != nil {
			return request{}, err
		}
		r.header = http.Header{"X-Registry-Auth": {base64.StdEncoding.EncodeToString(a)}}
		clear(a)
	}
	return r, nil
}

// CreateServiceWith is CreateService with registry options.
func (c *Client) CreateServiceWith(ctx context.Context, spec api.ServiceSpec, o ServiceWriteOptions) (*WriteResult, error) {
	return c.serviceWrite(ctx, http.MethodPost, "/v1/services", spec, o)
}

// UpdateServiceWith is UpdateService with registry options.
func (c *Client) UpdateServiceWith(ctx context.Context, ref string, spec api.ServiceSpec, o ServiceWriteOptions) (*WriteResult, error) {
	return c.serviceWrite(ctx, http.MethodPost, "/v1/services/"+esc(ref)+"/update", spec, o)
}

func (c *Client) serviceWrite(ctx context.Context, method, path string, spec api.ServiceSpec, o ServiceWriteOptions) (*WriteResult, error) {
	r, err := o.request(method, path, spec)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out WriteResult
	return &out, decode(resp, &out)
}
