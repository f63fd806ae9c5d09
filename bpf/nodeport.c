// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The routing mesh: published ports reachable from other hosts.
//
// warren_np_ingress (TCX ingress on the node's uplink) matches packets to
// <node address>:<published port>, picks a backend from the same per-service
// slot tables the socket load balancer uses (bpf/sock_lb.c; the loader hands
// this object sock_lb's maps, so there is one table per node), remembers the
// choice in an LRU connection-tracking map and DNATs the packet to
// backend:targetPort.
//
//   - A backend on this node (inside the node's task subnet) is reached by
//     the kernel's own routing over the bridge; the source is left alone, so
//     the task sees the client's real address. warren_np_egress (TCX egress
//     on the uplink) turns the replies' source back into node:published.
//   - A backend on another node is SNATed to the node's mesh address and a
//     port from NP_SNAT_LO..NP_SNAT_HI and redirected into the mesh
//     (WireGuard) interface, so its replies come back through this node;
//     warren_np_mesh (TCX ingress on the mesh interface) reverses both
//     translations and redirects the reply out of the uplink. That task sees
//     the node's mesh address, not the client's.
//
// Addresses and ports are in network byte order throughout. Layouts of the
// shared maps must match bpf/sock_lb.c; the others match dataplane/ebpf/nodeport_linux.go.

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_tables.h"

// SNAT ports live above the default ephemeral range (32768-60999) so they
// do not collide with the node's own sockets on the mesh address.
#define NP_SNAT_LO 61000
#define NP_SNAT_HI 65535
#define NP_SNAT_TRIES 16

// TCX verdicts (linux/bpf.h from 6.6; Debian 12's headers predate them).
#define TCX_NEXT -1
#define TCX_PASS 0
#define TCX_DROP 2

// The service tables (lb_tables.h) are sock_lb.c's, handed over by the
// loader. What follows is the routing mesh's own state.

struct np_config {
	__u32 subnet;         // node's task subnet; backends inside it are local
	__u32 mask;           // its netmask; 0 = every backend is local
	__u32 snat_addr;      // source of flows to remote backends
	__u32 mesh_ifindex;   // 0 = no mesh: every backend is treated as local
	__u32 uplink_ifindex; // where replies from the mesh leave
	__u32 seed;           // hash seed, so clients cannot aim at a backend
	__u32 mesh_l2;        // the mesh interface has an Ethernet header (WireGuard has none)
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} np_config SEC(".maps");

// Node addresses on which published ports answer from other hosts.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} np_addrs SEC(".maps");

#define CT_FWD 0
#define CT_REV 1

// A flow as seen on the wire: the client's packets (CT_FWD, as they arrive
// on the uplink) or the backend's replies (CT_REV, as they leave the bridge
// towards the client, or arrive from the mesh addressed to the SNAT port).
struct ct_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 dir;
	__u16 pad;
};

// CT_FWD: new destination (backend) and, when snat_addr != 0, new source.
// CT_REV: new source (node:published) and, for SNATed flows, new
// destination (the client).
struct ct_val {
	__u32 addr;
	__u16 port;
	__u16 pad;
	__u32 nat_addr;
	__u16 nat_port;
	__u16 pad2;
	__u32 service;
	__u32 backend;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, struct ct_key);
	__type(value, struct ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} np_ct SEC(".maps");

struct tuple {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u32 l4off;
};

static __always_inline void count(void *map, const void *key)
{
	__u64 *v = bpf_map_lookup_elem(map, key);
	if (v) {
		*v += 1; // per-CPU value: no other CPU writes it
		return;
	}
	__u64 one = 1;
	bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
}

static __always_inline __u64 fmix64(__u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

// hash_tuple is deterministic per flow: a flow whose conntrack entry was
// evicted lands on the same backend while the slot table is unchanged.
static __always_inline __u32 hash_tuple(const struct tuple *t, __u32 seed)
{
	__u64 x = fmix64(((__u64)t->saddr << 32) | t->daddr);
	x ^= ((__u64)t->sport << 40) | ((__u64)t->dport << 24) | ((__u64)t->proto << 16) | seed;
	return (__u32)fmix64(x);
}

// parse reads the IPv4 5-tuple at l3off. Non-first fragments and anything
// that is not TCP or UDP are left to the kernel.
static __always_inline int parse(struct __sk_buff *skb, __u32 l3off, struct tuple *t)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return -1;
	struct iphdr ip;
	if (bpf_skb_load_bytes(skb, l3off, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl < 5)
		return -1;
	if (ip.frag_off & bpf_htons(0x1fff | 0x2000))
		return -1;
	if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
		return -1;
	__u16 ports[2];
	t->l4off = l3off + ip.ihl * 4;
	if (bpf_skb_load_bytes(skb, t->l4off, ports, sizeof(ports)) < 0)
		return -1;
	t->saddr = ip.saddr;
	t->daddr = ip.daddr;
	t->sport = ports[0];
	t->dport = ports[1];
	t->proto = ip.protocol;
	return 0;
}

// is_syn reports whether the packet opens a TCP connection (SYN without
// ACK). Retransmitted SYNs count too: they belong to no established flow.
static __always_inline int is_syn(struct __sk_buff *skb, const struct tuple *t)
{
	if (t->proto != IPPROTO_TCP)
		return 0;
	__u8 flags;
	if (bpf_skb_load_bytes(skb, t->l4off + 13, &flags, 1) < 0)
		return 0;
	return (flags & 0x12) == 0x02;
}

// rewrite replaces the source (src != 0) or destination address and port,
// keeping the IPv4 and L4 checksums valid (also for CHECKSUM_PARTIAL skbs:
// the L4 change to the address is flagged as pseudo-header).
static __always_inline int rewrite(struct __sk_buff *skb, __u32 l3off, const struct tuple *t, int src,
				   __u32 old_addr, __u32 new_addr, __u16 old_port, __u16 new_port)
{
	__u32 csum_off = t->l4off + (t->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
							      : offsetof(struct udphdr, check));
	// A UDP checksum of 0 means "none" and must stay 0.
	__u64 mangled = t->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 addr_off = l3off + (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));
	__u32 port_off = t->l4off + (src ? 0 : 2);

	if (old_addr != new_addr) {
		if (bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr, BPF_F_PSEUDO_HDR | mangled | 4) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, l3off + offsetof(struct iphdr, check), old_addr, new_addr, 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &new_addr, 4, 0) < 0)
			return -1;
	}
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | 2) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &new_port, 2, 0) < 0)
			return -1;
	}
	return 0;
}

static __always_inline struct np_config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&np_config, &zero);
}

static __always_inline void rev_key(struct ct_key *rk, const struct tuple *t, const struct ct_val *fv)
{
	rk->saddr = fv->addr;
	rk->sport = fv->port;
	rk->daddr = fv->nat_addr ? fv->nat_addr : t->saddr;
	rk->dport = fv->nat_addr ? fv->nat_port : t->sport;
	rk->proto = t->proto;
	rk->dir = CT_REV;
	rk->pad = 0;
}

// new_flow balances a flow conntrack does not know. It returns 0 with fv
// filled, 1 to leave the packet alone, -1 to drop it.
static __always_inline int new_flow(const struct tuple *t, struct np_config *cfg, struct ct_val *fv)
{
	struct frontend_key fk = { .addr = 0, .port = t->dport, .proto = t->proto };
	struct frontend_val *fe = bpf_map_lookup_elem(&frontends, &fk);
	if (!fe)
		return 1;
	__u32 service = fe->service;
	__u32 n = fe->count;
	if (n == 0) {
		count(&no_backend_drops, &service);
		return -1;
	}
	__u32 h = hash_tuple(t, cfg->seed);
	struct slot_key sk = { .service = service, .rev = fe->rev, .slot = h % n };
	__u16 target = fe->target_port;
	__u32 *bid = bpf_map_lookup_elem(&slots, &sk);
	if (!bid) {
		count(&no_backend_drops, &service);
		return -1;
	}
	__u32 backend = *bid;
	struct backend_val *be = bpf_map_lookup_elem(&backends, &backend);
	if (!be) {
		count(&no_backend_drops, &service);
		return -1;
	}
	fv->addr = be->addr;
	fv->port = target;
	fv->service = service;
	fv->backend = backend;
	fv->nat_addr = 0;
	fv->nat_port = 0;

	struct ct_val rv = { .addr = t->daddr, .port = t->dport, .service = service, .backend = backend };
	struct ct_key rk = {};
	int remote = cfg->mesh_ifindex && (be->addr & cfg->mask) != cfg->subnet;
	if (!remote) {
		rev_key(&rk, t, fv);
		bpf_map_update_elem(&np_ct, &rk, &rv, BPF_ANY);
	} else {
		// Claim a free SNAT port: the reverse entry is the reservation.
		rv.nat_addr = t->saddr;
		rv.nat_port = t->sport;
		fv->nat_addr = cfg->snat_addr;
		int ok = 0;
		for (__u32 i = 0; i < NP_SNAT_TRIES; i++) {
			__u32 p = NP_SNAT_LO + (h + i * 2654435761u) % (NP_SNAT_HI - NP_SNAT_LO + 1);
			fv->nat_port = bpf_htons((__u16)p);
			rev_key(&rk, t, fv);
			if (bpf_map_update_elem(&np_ct, &rk, &rv, BPF_NOEXIST) == 0) {
				ok = 1;
				break;
			}
		}
		if (!ok) {
			count(&no_backend_drops, &service);
			return -1;
		}
	}
	struct backend_counter_key bk = { .service = service, .backend = backend };
	count(&service_conns, &service);
	count(&backend_conns, &bk);
	return 0;
}

// Client → node:published, on the uplink.
SEC("tcx/ingress")
int warren_np_ingress(struct __sk_buff *skb)
{
	struct tuple t = {};
	if (parse(skb, ETH_HLEN, &t) < 0)
		return TCX_NEXT;
	if (!bpf_map_lookup_elem(&np_addrs, &t.daddr))
		return TCX_NEXT;
	struct np_config *cfg = config();
	if (!cfg)
		return TCX_NEXT;

	struct ct_key fk = { .saddr = t.saddr, .daddr = t.daddr, .sport = t.sport, .dport = t.dport,
			     .proto = t.proto, .dir = CT_FWD };
	struct ct_val fv = {};
	struct ct_val *hit = bpf_map_lookup_elem(&np_ct, &fk);
	if (hit && is_syn(skb, &t)) {
		// A new connection on the 5-tuple of an old one (clients reuse
		// source ports within minutes, and entries only leave this LRU
		// under pressure): balance it afresh. The old entry may name a
		// backend that has since stopped, whose address now times out.
		hit = 0;
	}
	if (hit) {
		fv = *hit;
		// The two entries of a flow are evicted independently; a live
		// flow gets its reply entry back.
		struct ct_key rk = {};
		rev_key(&rk, &t, &fv);
		if (!bpf_map_lookup_elem(&np_ct, &rk)) {
			struct ct_val rv = { .addr = t.daddr, .port = t.dport, .service = fv.service,
					     .backend = fv.backend };
			if (fv.nat_addr) {
				rv.nat_addr = t.saddr;
				rv.nat_port = t.sport;
			}
			bpf_map_update_elem(&np_ct, &rk, &rv, BPF_ANY);
		}
	} else {
		int r = new_flow(&t, cfg, &fv);
		if (r > 0)
			return TCX_NEXT;
		if (r < 0)
			return TCX_DROP;
		bpf_map_update_elem(&np_ct, &fk, &fv, BPF_ANY);
	}

	if (rewrite(skb, ETH_HLEN, &t, 0, t.daddr, fv.addr, t.dport, fv.port) < 0)
		return TCX_DROP;
	if (!fv.nat_addr)
		return TCX_PASS; // the kernel routes it to the local bridge
	if (rewrite(skb, ETH_HLEN, &t, 1, t.saddr, fv.nat_addr, t.sport, fv.nat_port) < 0)
		return TCX_DROP;
	// The new source is a local address: the input route would call it a
	// martian, so the packet goes straight into the mesh.
	return bpf_redirect(cfg->mesh_ifindex, 0);
}

// Local backend → client, leaving through the uplink.
SEC("tcx/egress")
int warren_np_egress(struct __sk_buff *skb)
{
	struct tuple t = {};
	if (parse(skb, ETH_HLEN, &t) < 0)
		return TCX_NEXT;
	struct ct_key rk = { .saddr = t.saddr, .daddr = t.daddr, .sport = t.sport, .dport = t.dport,
			     .proto = t.proto, .dir = CT_REV };
	struct ct_val *rv = bpf_map_lookup_elem(&np_ct, &rk);
	if (!rv || rv->nat_addr)
		return TCX_NEXT;
	if (rewrite(skb, ETH_HLEN, &t, 1, t.saddr, rv->addr, t.sport, rv->port) < 0)
		return TCX_DROP;
	return TCX_NEXT;
}

// Remote backend → node's SNAT address, arriving from the mesh (usually
// an L3 device such as WireGuard: no Ethernet header).
SEC("tcx/ingress")
int warren_np_mesh(struct __sk_buff *skb)
{
	struct np_config *cfg = config();
	if (!cfg)
		return TCX_NEXT;
	__u32 l3off = cfg->mesh_l2 ? ETH_HLEN : 0;
	struct tuple t = {};
	if (parse(skb, l3off, &t) < 0)
		return TCX_NEXT;
	struct ct_key rk = { .saddr = t.saddr, .daddr = t.daddr, .sport = t.sport, .dport = t.dport,
			     .proto = t.proto, .dir = CT_REV };
	struct ct_val *hit = bpf_map_lookup_elem(&np_ct, &rk);
	if (!hit || !hit->nat_addr)
		return TCX_NEXT;
	struct ct_val rv = *hit;
	if (rewrite(skb, l3off, &t, 0, t.daddr, rv.nat_addr, t.dport, rv.nat_port) < 0)
		return TCX_DROP;
	if (rewrite(skb, l3off, &t, 1, t.saddr, rv.addr, t.sport, rv.port) < 0)
		return TCX_DROP;
	// The new source is the node's own address. The kernel routes the
	// reply to the client as forwarded traffic; the Go side sets
	// accept_local on the mesh interface so that source is not a martian.
	// (bpf_redirect_neigh from an L3 device such as a TUN did not deliver.)
	return TCX_NEXT;
}

char __license[] SEC("license") = "Dual BSD/GPL";
