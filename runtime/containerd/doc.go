// Package containerd runs Warren tasks on containerd: it implements
// runtime.Executor and runtime.Controller with the containerd/v2 client,
// and manages images (import, export, list, remove, ensure).
//
// Every node uses its own containerd namespace and cgroup parent, so several
// nodes can share one machine (and even one containerd) without meeting.
// Containers are labelled with their task (runtime.Label*), which is how a
// restarted agent adopts them.
//
// It may import containerd, the runtime package and controlplane/api. It
// must not import cni or dataplane: networking is the runtime.Network hook.
package containerd
