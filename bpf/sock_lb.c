// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Socket-level service load balancing for Warren.
//
// cgroup/connect4 and cgroup/sendmsg4 rewrite the destination of a socket
// that targets a service frontend (VIP:port, or a published port on a local
// address) to a backend picked from the service's slot table. No packet is
// ever translated: the socket is connected to the backend from the start.
// cgroup/recvmsg4 and cgroup/getpeername4 translate the backend address back
// to the frontend so applications see the address they asked for.
//
// The userspace side (dataplane/plan.go) writes backends, then slots under a
// new revision, then frontends, so a frontend never names more slots than
// exist. Layouts must match dataplane/ebpf/ebpf_linux.go.

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_tables.h"
#include "conn_errors.h"

#define SYS_REJECT 0
#define SYS_PROCEED 1

// Reverse translation is per socket: a backend address seen by one socket
// maps back to the frontend that socket asked for.
struct revnat_key {
	__u64 cookie;
	__u32 addr;
	__u16 port;
	__u16 pad;
};

struct revnat_val {
	__u32 addr;
	__u16 port;
	__u16 pad;
};

struct name_val {
	char name[128];
};

// Node-local addresses besides 127.0.0.0/8 on which published ports answer.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} local_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, struct revnat_key);
	__type(value, struct revnat_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} revnat SEC(".maps");

// Ids → strings of the Config, so a restarted agent recovers its ids. Only
// userspace reads these.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct name_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} service_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct name_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_names SEC(".maps");

static __always_inline void count(void *map, const void *key)
{
	__u64 *v = bpf_map_lookup_elem(map, key);
	if (v) {
		// Per-CPU value: no other CPU writes it.
		*v += 1;
		return;
	}
	__u64 one = 1;
	bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
}

static __always_inline int is_local(__u32 addr)
{
	if ((bpf_ntohl(addr) >> 24) == 127)
		return 1;
	return bpf_map_lookup_elem(&local_addrs, &addr) != NULL;
}

// Mixes a socket cookie so consecutive cookies spread over the slots.
static __always_inline __u32 mix(__u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (__u32)x;
}

static __always_inline struct frontend_val *lookup_frontend(__u32 addr, __u16 port, __u8 proto)
{
	struct frontend_key k = { .addr = addr, .port = port, .proto = proto };
	struct frontend_val *fe = bpf_map_lookup_elem(&frontends, &k);
	if (fe || !is_local(addr))
		return fe;
	k.addr = 0;
	return bpf_map_lookup_elem(&frontends, &k);
}

// balance rewrites ctx to a backend of the frontend it targets. Sockets
// that do not target a frontend proceed untouched; a frontend without
// backends rejects the call so the application fails at once.
static __always_inline int balance(struct bpf_sock_addr *ctx, __u8 proto, int per_socket)
{
	__u32 addr = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;
	struct frontend_val *fe = lookup_frontend(addr, port, proto);
	if (!fe)
		return SYS_PROCEED;

	__u32 service = fe->service;
	__u32 n = fe->count;
	if (n == 0) {
		count(&no_backend_drops, &service);
		return SYS_REJECT;
	}
	__u64 cookie = bpf_get_socket_cookie(ctx);
	// An unconnected UDP socket sends each datagram through here; hashing
	// its cookie keeps one socket on one backend while the table is unchanged.
	__u32 r = per_socket ? mix(cookie) : bpf_get_prandom_u32();
	struct slot_key sk = { .service = service, .rev = fe->rev, .slot = r % n };
	__u16 target = fe->target_port;
	__u32 *backend = bpf_map_lookup_elem(&slots, &sk);
	if (!backend) {
		count(&no_backend_drops, &service);
		return SYS_REJECT;
	}
	__u32 bid = *backend;
	struct backend_val *be = bpf_map_lookup_elem(&backends, &bid);
	if (!be) {
		count(&no_backend_drops, &service);
		return SYS_REJECT;
	}

	// Connected sockets pass here once per connect; an unconnected UDP
	// socket once per datagram, and counts only when it starts a new flow.
	struct revnat_key rk = { .cookie = cookie, .addr = be->addr, .port = target };
	struct revnat_val rv = { .addr = addr, .port = port };
	struct revnat_val *old = bpf_map_lookup_elem(&revnat, &rk);
	int fresh = !old || old->addr != addr || old->port != port;
	if (fresh)
		bpf_map_update_elem(&revnat, &rk, &rv, BPF_ANY);
	if (fresh || !per_socket) {
		struct backend_counter_key bk = { .service = service, .backend = bid };
		count(&service_conns, &service);
		count(&backend_conns, &bk);
		// conn_errors.c learns from this how the connection ends.
		if (proto == IPPROTO_TCP) {
			struct conn_backend cb = { .service = service, .backend = bid };
			bpf_map_update_elem(&conn_backends, &cookie, &cb, BPF_ANY);
		}
	}

	ctx->user_ip4 = be->addr;
	ctx->user_port = target;
	return SYS_PROCEED;
}

static __always_inline void reverse(struct bpf_sock_addr *ctx)
{
	struct revnat_key rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = ctx->user_ip4,
		.port = (__u16)ctx->user_port,
	};
	struct revnat_val *rv = bpf_map_lookup_elem(&revnat, &rk);
	if (!rv)
		return;
	ctx->user_ip4 = rv->addr;
	ctx->user_port = rv->port;
}

SEC("cgroup/connect4")
int warren_connect4(struct bpf_sock_addr *ctx)
{
	__u8 proto = ctx->protocol == IPPROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return SYS_PROCEED;
	return balance(ctx, proto, 0);
}

SEC("cgroup/sendmsg4")
int warren_sendmsg4(struct bpf_sock_addr *ctx)
{
	return balance(ctx, IPPROTO_UDP, 1);
}

SEC("cgroup/recvmsg4")
int warren_recvmsg4(struct bpf_sock_addr *ctx)
{
	reverse(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int warren_getpeername4(struct bpf_sock_addr *ctx)
{
	reverse(ctx);
	return SYS_PROCEED;
}

char __license[] SEC("license") = "Dual BSD/GPL";
