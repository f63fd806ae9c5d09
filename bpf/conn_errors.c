// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// How balanced TCP connections end, per backend: the error rates canary
// analysis compares between versions.
//
// sock_lb.c records, at connect(), the backend each TCP socket was sent to
// (conn_backends, by socket cookie). This program runs on the
// sock:inet_sock_set_state tracepoint (BTF-typed, so it gets the socket
// itself and its cookie) and, when a recorded socket reaches TCP_CLOSE,
// counts how it got there:
//   - from SYN_SENT: the connect failed (refused, timed out, or abandoned
//     by the client while the backend did not answer);
//   - from any other state with sk_err == ECONNRESET: the peer reset an
//     established connection. A client's own abort (close with unread data,
//     SO_LINGER 0) also goes ESTABLISHED → CLOSE but leaves sk_err alone, so
//     it is not blamed on the backend.
// The tracepoint fires for every TCP socket of the host; the program does a
// hash lookup only on transitions to TCP_CLOSE, and only sockets in
// conn_backends count.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "conn_errors.h"

#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define ECONNRESET 104

// Only the field read here; CO-RE finds its offset in the running kernel's
// BTF (the ___warren suffix is dropped when matching).
struct sock___warren {
	int sk_err;
} __attribute__((preserve_access_index));

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(warren_tcp_state, struct sock___warren *sk, int oldstate, int newstate)
{
	if (newstate != TCP_CLOSE)
		return 0;
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct conn_backend *bk = bpf_map_lookup_elem(&conn_backends, &cookie);
	if (!bk)
		return 0;
	struct conn_backend key = *bk;
	bpf_map_delete_elem(&conn_backends, &cookie);

	int failed = oldstate == TCP_SYN_SENT;
	int reset = !failed && sk->sk_err == ECONNRESET;
	if (!failed && !reset)
		return 0;
	struct backend_errors_val *v = bpf_map_lookup_elem(&backend_errors, &key);
	if (!v) {
		struct backend_errors_val zero = {};
		bpf_map_update_elem(&backend_errors, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&backend_errors, &key);
		if (!v)
			return 0;
	}
	// Per-CPU value: no other CPU writes it.
	if (failed)
		v->connect_failures += 1;
	else
		v->resets += 1;
	return 0;
}

char __license[] SEC("license") = "Dual BSD/GPL";
