// Package dataplanebench measures the cost of reaching a service: new TCP
// connections with a small request/response to a backend directly, to a VIP
// through the eBPF dataplane, through the userspace proxy, and through an
// iptables DNAT rule set like kube-proxy's, at 10 and 10,000 services, and
// the time from Set to new weights taking effect. Root only; run with
//
//	go test -bench . -benchtime 1x ./bench/dataplane/        (full)
//	WARREN_BENCH_SMOKE=1 go test -bench . -benchtime 1x ./bench/dataplane/  (< 60 s)
package dataplanebench
