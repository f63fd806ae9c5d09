// Package registry is how Warren reaches OCI registries: the cluster's
// registry settings (api.RegistryConfig: extra CA, plain-HTTP hosts,
// mirrors) and a task's credentials turned into containerd's remotes
// configuration, the manager's tag→digest resolution (Resolver, which the
// API server uses through an interface of its own), and task errors that
// say what the registry refused.
//
// The host planning (Hosts, CredentialFor) is pure and table-tested; the
// rest is thin glue over containerd's docker remotes. It is on the runtime
// side of the import rule: controlplane/ never imports it, cmd/warren wires
// it in.
package registry
