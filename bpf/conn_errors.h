// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Per-backend TCP error counters, shared by sock_lb.c (which knows, at
// connect(), the backend a socket was sent to) and conn_errors.c (which
// sees how the socket ends). One definition so both objects agree on the
// layouts; the loader hands conn_errors.c the maps sock_lb.c pinned.
#ifndef WARREN_CONN_ERRORS_H
#define WARREN_CONN_ERRORS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Service and backend ids, as in lb_tables.h's backend_counter_key (the
// same values, so userspace names both with one table); a type of its own
// so that conn_errors.c does not carry every service table.
struct conn_backend {
	__u32 service;
	__u32 backend;
};

// The backend a balanced TCP socket was connected to, by socket cookie.
// LRU: a socket whose end is never seen (the tracepoint program not
// attached, or the node restarted) must not pin an entry for ever.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, __u64);
	__type(value, struct conn_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conn_backends SEC(".maps");

struct backend_errors_val {
	__u64 connect_failures; // SYN_SENT → CLOSE: refused, timed out, or given up
	__u64 resets;           // an established connection reset by its peer
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1 << 18);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct conn_backend);
	__type(value, struct backend_errors_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_errors SEC(".maps");

#endif
