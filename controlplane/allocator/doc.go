// Package allocator hands out the cluster's addresses: a /24 of the pod range
// to each node and a virtual IP of the service range to each service.
//
// It is pure: functions take the api.Cluster read from a snapshot and return
// an updated copy (the input's maps are never modified), so the leader can
// propose the result with the cluster's Meta.Version as the expectation. The
// same inputs always give the same addresses — the lowest free one — which
// keeps allocation reproducible across leaders. It must not import the store,
// raft, or anything kernel-facing; programming routes for these ranges is the
// node agent's business.
package allocator
