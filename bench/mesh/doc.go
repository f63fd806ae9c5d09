// Package meshbench measures the WireGuard mesh's throughput with iperf3
// between two network namespaces, against the bare veth underlay measured in
// the same run: unshaped, and with the underlay shaped to 1 Gbit/s by tbf.
//
// Run as root:
//
//	go test ./bench/mesh -run XXX -bench . -benchtime 1x -v
//
// WARREN_BENCH_SMOKE=1 shortens every iperf3 run for a quick (< 60 s) check.
package meshbench
