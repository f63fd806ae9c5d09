package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Every method below maps to one route of the apiserver's table; docs/api.md
// lists them.

func esc(s string) string { return url.PathEscape(s) }

// Info returns the cluster's identity, network and managers.
func (c *Client) Info(ctx context.Context) (*ClusterInfo, error) {
	var out ClusterInfo
	return &out, c.call(ctx, http.MethodGet, "/v1/cluster", nil, nil, &out)
}

// Join exchanges a join token and a CSR for a certificate. It is the one call
// made without a client certificate.
func (c *Client) Join(ctx context.Context, req JoinRequest) (*JoinResponse, error) {
	var out JoinResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/join", nil, req, &out)
}

// ManagerReady tells the leader this joining manager has caught up, so it is
// promoted from nonvoter to voter.
func (c *Client) ManagerReady(ctx context.Context, req ManagerReadyRequest) error {
	return c.call(ctx, http.MethodPost, "/v1/agent/manager-ready", nil, req, nil)
}

// JoinTokens describes both join tokens (without their secrets).
func (c *Client) JoinTokens(ctx context.Context) ([]TokenInfo, error) {
	var out []TokenInfo
	return out, c.call(ctx, http.MethodGet, "/v1/join-tokens", nil, nil, &out)
}

// RotateJoinToken replaces the worker or manager token and returns the new secret.
func (c *Client) RotateJoinToken(ctx context.Context, role string, ttl time.Duration) (*TokenInfo, error) {
	var out TokenInfo
	return &out, c.call(ctx, http.MethodPost, "/v1/join-tokens/"+esc(role)+"/rotate", nil, RotateTokenRequest{TTL: api.Duration(ttl)}, &out)
}

// Nodes lists every node.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	var out []api.Node
	return out, c.call(ctx, http.MethodGet, "/v1/nodes", nil, nil, &out)
}

// Node returns one node by ID or hostname.
func (c *Client) Node(ctx context.Context, ref string) (*api.Node, error) {
	var out api.Node
	return &out, c.call(ctx, http.MethodGet, "/v1/nodes/"+esc(ref), nil, nil, &out)
}

// UpdateNode changes availability and labels.
func (c *Client) UpdateNode(ctx context.Context, ref string, u NodeUpdate) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/nodes/"+esc(ref)+"/update", nil, u, &out)
}

// RemoveNode removes a node; without force only a node that is down.
func (c *Client) RemoveNode(ctx context.Context, ref string, force bool) (*WriteResult, error) {
	var out WriteResult
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return &out, c.call(ctx, http.MethodDelete, "/v1/nodes/"+esc(ref), q, nil, &out)
}

// PromoteNode records that a worker should become a manager.
func (c *Client) PromoteNode(ctx context.Context, ref string) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/nodes/"+esc(ref)+"/promote", nil, nil, &out)
}

// DemoteNode turns a manager into a worker, removing its raft vote first.
func (c *Client) DemoteNode(ctx context.Context, ref string) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/nodes/"+esc(ref)+"/demote", nil, nil, &out)
}

// CreateService validates and records a new service.
func (c *Client) CreateService(ctx context.Context, spec api.ServiceSpec) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/services", nil, spec, &out)
}

// Services lists every service.
func (c *Client) Services(ctx context.Context) ([]api.Service, error) {
	var out []api.Service
	return out, c.call(ctx, http.MethodGet, "/v1/services", nil, nil, &out)
}

// Service returns one service by ID or name.
func (c *Client) Service(ctx context.Context, ref string) (*api.Service, error) {
	var out api.Service
	return &out, c.call(ctx, http.MethodGet, "/v1/services/"+esc(ref), nil, nil, &out)
}

// UpdateService replaces a service's spec; the old one is kept for rollback.
func (c *Client) UpdateService(ctx context.Context, ref string, spec api.ServiceSpec) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/services/"+esc(ref)+"/update", nil, spec, &out)
}

// ScaleService sets a replicated service's replica count.
func (c *Client) ScaleService(ctx context.Context, ref string, replicas uint64) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/services/"+esc(ref)+"/scale", nil, ScaleRequest{Replicas: replicas}, &out)
}

// RemoveService deletes a service; its tasks are stopped.
func (c *Client) RemoveService(ctx context.Context, ref string) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodDelete, "/v1/services/"+esc(ref), nil, nil, &out)
}

// PromoteService finishes a canary or blue/green rollout in favour of the new version.
func (c *Client) PromoteService(ctx context.Context, ref string) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/services/"+esc(ref)+"/promote", nil, nil, &out)
}

// RollbackService returns a service to its previous spec.
func (c *Client) RollbackService(ctx context.Context, ref string) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodPost, "/v1/services/"+esc(ref)+"/rollback", nil, nil, &out)
}

// TaskFilter narrows Tasks; empty fields match everything.
type TaskFilter struct {
	Service string // ID or name
	Node    string // ID or hostname
}

// Tasks lists tasks; `service ps` shows TaskStatus.Message for pending ones.
func (c *Client) Tasks(ctx context.Context, f TaskFilter) ([]api.Task, error) {
	q := url.Values{}
	if f.Service != "" {
		q.Set("service", f.Service)
	}
	if f.Node != "" {
		q.Set("node", f.Node)
	}
	var out []api.Task
	return out, c.call(ctx, http.MethodGet, "/v1/tasks", q, nil, &out)
}

// Tables returns which service table every node applied, as the leader
// heard it.
func (c *Client) Tables(ctx context.Context) (*api.Tables, error) {
	var out api.Tables
	return &out, c.call(ctx, http.MethodGet, "/v1/tables", nil, nil, &out)
}

// Register records the calling node's description and serves as its
// heartbeat. Concurrent heartbeats go on connections of their own
// (Client.beat).
func (c *Client) Register(ctx context.Context, reg api.NodeRegistration) error {
	return c.send(ctx, request{method: http.MethodPost, path: "/v1/agent/register", beat: true}, reg, nil)
}

// Assignments is a blocking query: it returns once the store moved past
// index with the current assignments. When wait runs out with the store
// still at index (index > 0), the answer holds only Index: the caller has
// the rest already, and a full answer per node per wait was most of an
// idle cluster's traffic.
func (c *Client) Assignments(ctx context.Context, index uint64, wait time.Duration) (*api.Assignments, error) {
	return c.AssignmentsFrom(ctx, index, "", wait)
}

// AssignmentsFrom is Assignments for a caller holding the table whose
// digest is base (the Table of the assignments it holds): a manager that
// still knows that table answers with Delta, the change since, in place of
// Services and Peers; one that does not, or that predates deltas, with
// the full table. An empty base asks for the full table.
func (c *Client) AssignmentsFrom(ctx context.Context, index uint64, base string, wait time.Duration) (*api.Assignments, error) {
	q := url.Values{}
	q.Set("index", strconv.FormatUint(index, 10))
	q.Set("unchanged", "empty")
	if base != "" {
		q.Set("base", base)
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out api.Assignments
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/agent/assignments", query: q, noTimeout: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return &out, decode(resp, &out)
}

// ReportStatus sends task status changes of the calling node.
func (c *Client) ReportStatus(ctx context.Context, rep api.StatusReport) error {
	return c.call(ctx, http.MethodPost, "/v1/agent/status", nil, rep, nil)
}

// UploadImage stores an image archive in the cluster under name. The archive
// is re-read from the start if the call fails over to another manager.
func (c *Client) UploadImage(ctx context.Context, name string, archive io.ReadSeeker) (*api.Image, error) {
	q := url.Values{}
	q.Set("name", name)
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/images", query: q, stream: archive,
		contentType: "application/x-tar", noTimeout: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out api.Image
	return &out, decode(resp, &out)
}

// Images lists the images loaded into the cluster.
func (c *Client) Images(ctx context.Context) ([]api.Image, error) {
	var out []api.Image
	return out, c.call(ctx, http.MethodGet, "/v1/images", nil, nil, &out)
}

// RemoveImage forgets an image and deletes its archive when unused.
func (c *Client) RemoveImage(ctx context.Context, name string) (*WriteResult, error) {
	var out WriteResult
	return &out, c.call(ctx, http.MethodDelete, "/v1/images/"+name, nil, nil, &out)
}

// DownloadImage streams an image archive; the caller closes it.
func (c *Client) DownloadImage(ctx context.Context, name string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/image-blobs/" + name, noTimeout: true})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("download image %q: %w", name, readError(resp))
	}
	return resp.Body, nil
}

// RenewCert exchanges a CSR for a fresh certificate with the caller's identity.
func (c *Client) RenewCert(ctx context.Context, csrPEM string) (*RenewResponse, error) {
	var out RenewResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/certs/renew", nil, RenewRequest{CSRPEM: csrPEM}, &out)
}

// LogOptions select what ServiceLogs streams.
type LogOptions struct {
	Follow     bool
	Tail       int // lines per task; 0 = all; negative = none (docker's --tail 0)
	Timestamps bool
}

// ServiceLogs streams the logs of a service's tasks, gathered from the
// nodes that run them; each line is prefixed with the task's name.
func (c *Client) ServiceLogs(ctx context.Context, ref string, o LogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if o.Follow {
		q.Set("follow", "true")
	}
	if o.Tail != 0 {
		q.Set("tail", strconv.Itoa(o.Tail))
	}
	if o.Timestamps {
		q.Set("timestamps", "true")
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/services/" + esc(ref) + "/logs", query: q, noTimeout: true})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("logs of %q: %w", ref, readError(resp))
	}
	return resp.Body, nil
}

// ChangeRole asks for a certificate matching the role the operators gave
// this node (see RoleChangeRequest).
func (c *Client) ChangeRole(ctx context.Context, req RoleChangeRequest) (*RoleChangeResponse, error) {
	var out RoleChangeResponse
	err := c.call(ctx, http.MethodPost, "/v1/agent/role", nil, req, &out)
	return &out, err
}
