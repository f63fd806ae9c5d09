package dataplane

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Plan computes the map operations that turn cur into the tables cfg needs.
// It does not modify cur. The order is what keeps the kernel consistent
// after every single operation (see Tables.Check):
//
//  1. names and backends that are new,
//  2. slot tables under a new revision for every service whose table changed,
//  3. frontends (pointing at the new revision and count) and removal of
//     frontends no longer wanted,
//  4. clean-up: slots of old revisions, then backends and names nobody uses.
//
// Connections already established are not touched: the kernel only consults
// the tables at connect() time. A nil cfg is the empty table.
func Plan(cur *Tables, cfg *Config) ([]Op, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &Config{}
	}
	svcIDs := invert(cur.ServiceNames)
	beIDs := invert(cur.BackendNames)
	usedSvc := map[uint32]bool{}
	usedBe := map[uint32]bool{}
	var names, backends, slots, fronts, cleanup []Op

	services := slices.Clone(cfg.Services)
	slices.SortFunc(services, func(a, b Service) int { return cmp.Compare(a.ID, b.ID) })

	nextSvc, nextBe := uint32(1), uint32(1)
	allocSvc := func() uint32 {
		for ; ; nextSvc++ {
			if _, taken := cur.ServiceNames[nextSvc]; !taken {
				nextSvc++
				return nextSvc - 1
			}
		}
	}
	allocBe := func() uint32 {
		for ; ; nextBe++ {
			if _, taken := cur.BackendNames[nextBe]; !taken {
				nextBe++
				return nextBe - 1
			}
		}
	}

	// Current revision of each service, from its frontends.
	// A crash between writing frontends can leave a service's frontends on
	// different revisions; the next revision is above all of them.
	curRev := map[uint32]FrontendVal{}
	maxRev := map[uint32]uint32{}
	for _, fk := range sortedFrontends(cur.Frontends) {
		fv := cur.Frontends[fk]
		curRev[fv.Service] = fv
		maxRev[fv.Service] = max(maxRev[fv.Service], fv.Rev)
	}

	want := map[FrontendKey]FrontendVal{}
	for _, s := range services {
		if len(s.Ports) == 0 {
			continue // nothing can reach it; keep no slots
		}
		sid, ok := svcIDs[s.ID]
		if !ok {
			sid = allocSvc()
			svcIDs[s.ID] = sid
			names = append(names, Op{Map: MapServiceNames, ID: sid, Name: s.ID})
		}
		usedSvc[sid] = true

		table := SlotTable(s.Groups)
		ids := make([]uint32, len(table))
		for i, b := range table {
			key := BackendKey(b)
			bid, ok := beIDs[key]
			if !ok {
				bid = allocBe()
				beIDs[key] = bid
				names = append(names, Op{Map: MapBackendNames, ID: bid, Name: key})
			}
			if !usedBe[bid] {
				usedBe[bid] = true
				if a, ok := cur.Backends[bid]; !ok || a != b.Addr {
					backends = append(backends, Op{Map: MapBackends, ID: bid, Addr: b.Addr})
				}
			}
			ids[i] = bid
		}

		rev := uint32(0)
		prev, had := curRev[sid]
		if had {
			rev = prev.Rev
		}
		if !had || !sameSlots(cur, sid, prev, ids) {
			rev = maxRev[sid] + 1
			for i, bid := range ids {
				slots = append(slots, Op{Map: MapSlots, Slot: SlotKey{sid, rev, uint32(i)}, Backend: bid})
			}
		}
		for _, p := range s.Ports {
			v := FrontendVal{Service: sid, Rev: rev, Count: uint32(len(ids)), TargetPort: p.TargetPort}
			want[FrontendKey{s.VIP, p.Port, p.Proto}] = v
			if p.Published != 0 {
				want[FrontendKey{netip.IPv4Unspecified(), p.Published, p.Proto}] = v
			}
		}
	}

	for _, fk := range sortedFrontends(want) {
		if v, ok := cur.Frontends[fk]; !ok || v != want[fk] {
			fronts = append(fronts, Op{Map: MapFrontends, Frontend: fk, FrontVal: want[fk]})
		}
	}
	for _, fk := range sortedFrontends(cur.Frontends) {
		if _, ok := want[fk]; !ok {
			fronts = append(fronts, Op{Delete: true, Map: MapFrontends, Frontend: fk})
		}
	}

	// A slot survives only if a wanted frontend uses its revision and index.
	live := map[uint32]FrontendVal{}
	for _, v := range want {
		live[v.Service] = v
	}
	slotKeys := make([]SlotKey, 0, len(cur.Slots))
	for k := range cur.Slots {
		slotKeys = append(slotKeys, k)
	}
	slices.SortFunc(slotKeys, func(a, b SlotKey) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Rev, b.Rev), cmp.Compare(a.Slot, b.Slot))
	})
	for _, k := range slotKeys {
		if v, ok := live[k.Service]; ok && k.Rev == v.Rev && k.Slot < v.Count {
			continue
		}
		cleanup = append(cleanup, Op{Delete: true, Map: MapSlots, Slot: k})
	}
	for _, id := range sortedKeys(cur.Backends) {
		if !usedBe[id] {
			cleanup = append(cleanup, Op{Delete: true, Map: MapBackends, ID: id})
		}
	}
	for _, id := range sortedKeys(cur.BackendNames) {
		if !usedBe[id] {
			cleanup = append(cleanup, Op{Delete: true, Map: MapBackendNames, ID: id})
		}
	}
	for _, id := range sortedKeys(cur.ServiceNames) {
		if !usedSvc[id] {
			cleanup = append(cleanup, Op{Delete: true, Map: MapServiceNames, ID: id})
		}
	}
	return slices.Concat(names, backends, slots, fronts, cleanup), nil
}

// sameSlots reports whether the service's current revision already holds
// exactly ids.
func sameSlots(cur *Tables, sid uint32, fv FrontendVal, ids []uint32) bool {
	if int(fv.Count) != len(ids) {
		return false
	}
	for i, id := range ids {
		if b, ok := cur.Slots[SlotKey{sid, fv.Rev, uint32(i)}]; !ok || b != id {
			return false
		}
	}
	return true
}

func invert(m map[uint32]string) map[string]uint32 {
	out := make(map[string]uint32, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

func sortedFrontends(m map[FrontendKey]FrontendVal) []FrontendKey {
	keys := make([]FrontendKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b FrontendKey) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return keys
}

// ApplyPlan writes ops in order and stops at the first failure; the next Set
// re-plans from what the kernel holds, so a partial apply is repaired.
func ApplyPlan(w MapWriter, ops []Op) error {
	for _, o := range ops {
		if err := w.Apply(o); err != nil {
			return fmt.Errorf("%v: %w", o, err)
		}
	}
	return nil
}
