// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Per-task traffic counters.
//
// warren_task_in (TCX ingress) and warren_task_out (TCX egress) run on the
// host end of each task's veth. What the host end receives, the task sent
// (tx); what it transmits goes to the task (rx): directions are named from
// the task's point of view, like the counters of its own eth0.
//
// One program pair serves every task: task_ifaces maps the interface a
// packet is on to the task's slot, and task_counts holds the slot's
// counters. Userspace (dataplane/ebpf/taskcounters_linux.go) creates a slot's
// counters before it maps an interface to it and deletes them only after
// the interface is unmapped, so the programs never create entries: a
// packet still in flight when a task is forgotten cannot resurrect it.
//
// The programs only count: they always return TCX_NEXT.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// TCX verdicts (linux/bpf.h from 6.6; Debian 12's headers predate them).
#define TCX_NEXT -1

#define TASK_SLOTS 65536

struct task_count {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
};

struct task_name {
	char id[128];
};

// Host interface index → slot.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TASK_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} task_ifaces SEC(".maps");

// Slot → counters, one copy per CPU: no atomics on the packet path.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, TASK_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct task_count);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} task_counts SEC(".maps");

// Slot → task ID. Only userspace reads it: it is how the next agent learns
// which task a pinned slot belongs to.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TASK_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct task_name);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} task_names SEC(".maps");

static __always_inline struct task_count *counts(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	__u32 *slot = bpf_map_lookup_elem(&task_ifaces, &ifindex);
	if (!slot)
		return NULL;
	return bpf_map_lookup_elem(&task_counts, slot);
}

// segs counts a GSO packet as the packets it will be on the wire. Its bytes
// are skb->len: the payload once, with one set of headers.
static __always_inline __u64 segs(struct __sk_buff *skb)
{
	return skb->gso_segs > 1 ? skb->gso_segs : 1;
}

// Host end receives: the task sent it.
SEC("tcx/ingress")
int warren_task_in(struct __sk_buff *skb)
{
	struct task_count *c = counts(skb);
	if (c) {
		c->tx_packets += segs(skb); // per-CPU value: no other CPU writes it
		c->tx_bytes += skb->len;
	}
	return TCX_NEXT;
}

// Host end transmits: the task receives it.
SEC("tcx/egress")
int warren_task_out(struct __sk_buff *skb)
{
	struct task_count *c = counts(skb);
	if (c) {
		c->rx_packets += segs(skb);
		c->rx_bytes += skb->len;
	}
	return TCX_NEXT;
}

char __license[] SEC("license") = "Dual BSD/GPL";
