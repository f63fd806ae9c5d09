package cni

// HostVethName is the name of the host end of the veth that ADD creates for
// (containerID, ifName), so that the agent can find a task's interface
// without asking the plugin (for example to attach per-task counters).
func HostVethName(containerID, ifName string) string { return hostVethName(containerID, ifName) }
