// Package runtimetest runs the runtime package against a real containerd
// (started per test with ktest.StartContainerd), runc and cgroups: tasks
// answer HTTP on their own address, restarts in place after kill -9, health
// checks, cgroup limits, log following, adoption by a new Worker and a spec
// round trip through containerd. Root only.
package runtimetest
