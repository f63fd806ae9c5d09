// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The service tables: what the Go side writes (dataplane/tables.go) and
// both programs read — sock_lb.c at connect() time and nodeport.c for
// published ports arriving from other hosts. One definition, so the two
// objects agree on every layout; the loader hands nodeport.c the maps
// sock_lb.c pinned.
#ifndef WARREN_LB_TABLES_H
#define WARREN_LB_TABLES_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Addresses and ports are in network byte order throughout, as the kernel
// hands them to sock_addr programs.
struct frontend_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct frontend_val {
	__u32 service;
	__u32 rev;
	__u32 count;
	__u16 target_port;
	__u16 pad;
};

struct slot_key {
	__u32 service;
	__u32 rev;
	__u32 slot;
};

struct backend_val {
	__u32 addr;
};

struct backend_counter_key {
	__u32 service;
	__u32 backend;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct frontend_key);
	__type(value, struct frontend_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct slot_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct backend_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} service_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1 << 18);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct backend_counter_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} no_backend_drops SEC(".maps");

#endif
