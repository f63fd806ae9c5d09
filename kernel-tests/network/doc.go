// Package networktest holds the root tests of Warren's container networking:
// warren-cni against real network namespaces, the WireGuard mesh between two
// namespaces, and the service DNS server queried with dig.
//
// The test binary is also the helper programs: TestMain dispatches on argv[0]
// (warren-cni, as libcni runs it) and on WARREN_NETTEST_HELPER (a mesh node
// running inside a namespace under nsenter).
package networktest
