package dataplane

import "sort"

// MaxSlots bounds a service's slot table. Weights that divide evenly get the
// smallest exact table (90/10 over one backend each is 10 slots); others are
// apportioned over MaxSlots slots, so a weight is honoured to within 0.1%.
const MaxSlots = 1000

// Usable reports whether a backend may receive new connections. Terminating
// and unhealthy backends keep their open connections but get no slots.
func (b Backend) Usable() bool { return b.Health == Active }

// SlotTable turns weights × health into the slot table of a service: each
// entry is a backend, and picking an entry uniformly at random splits new
// connections by the groups' weights, evenly among a group's usable
// backends. A group with weight 0 or without usable backends gets nothing;
// its share goes to the other groups (a canary with every task unhealthy
// sends all traffic to the stable version rather than failing a tenth of it).
// An empty table means the service has no backend and connects must fail.
//
// The result depends only on its input, so every implementation and every
// restart computes the same table.
func SlotTable(groups []Group) []Backend {
	type member struct {
		b      Backend
		weight uint64 // group weight
		n      uint64 // usable backends in the group
	}
	var ms []member
	var total uint64
	lcm := uint64(1)
	for _, g := range groups {
		if g.Weight == 0 {
			continue
		}
		var usable []Backend
		for _, b := range g.Backends {
			if b.Usable() {
				usable = append(usable, b)
			}
		}
		if len(usable) == 0 {
			continue
		}
		total += uint64(g.Weight)
		n := uint64(len(usable))
		if lcm <= MaxSlots {
			lcm = lcm / gcd(lcm, n) * n
		}
		for _, b := range usable {
			ms = append(ms, member{b, uint64(g.Weight), n})
		}
	}
	if len(ms) == 0 {
		return nil
	}
	counts := make([]uint64, len(ms))
	exact := lcm <= MaxSlots
	if exact {
		// Per-backend weight is W_g/n_g; scale by lcm(n_g) to make it whole,
		// then divide by the common factor.
		var g, sum uint64
		for i, m := range ms {
			counts[i] = m.weight * lcm / m.n
			g = gcd(g, counts[i])
		}
		for i := range counts {
			counts[i] /= g
			sum += counts[i]
		}
		exact = sum <= MaxSlots
	}
	if !exact {
		// Largest remainder apportionment of MaxSlots; ties go to the
		// earlier backend so the result is deterministic.
		type rem struct {
			i    int
			frac uint64
		}
		rems := make([]rem, len(ms))
		var given uint64
		for i, m := range ms {
			num := uint64(MaxSlots) * m.weight
			den := total * m.n
			counts[i] = num / den
			given += counts[i]
			// Scale the remainder to a common denominator for comparison.
			rems[i] = rem{i, (num % den) * (1 << 20) / den}
		}
		sort.SliceStable(rems, func(a, b int) bool { return rems[a].frac > rems[b].frac })
		for k := 0; given < MaxSlots; k++ {
			counts[rems[k%len(rems)].i]++
			given++
		}
	}
	var out []Backend
	for i, m := range ms {
		for range counts[i] {
			out = append(out, m.b)
		}
	}
	return out
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
