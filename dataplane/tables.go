package dataplane

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Tables models the contents of the eBPF maps of one node. The eBPF
// implementation reads it back from pinned maps on start, so an agent
// restart diffs against what the kernel really holds, not against memory.
//
// Layout: a frontend (VIP:port/proto, or 0.0.0.0:published/proto) points at
// a service id, the revision of its slot table, the number of slots and the
// backend port. Slots are keyed by (service, revision, index) and name a
// backend id; a backend id names an address. Names map ids back to the
// strings of the Config so ids survive restarts.
type Tables struct {
	Frontends    map[FrontendKey]FrontendVal
	Slots        map[SlotKey]uint32
	Backends     map[uint32]netip.Addr
	ServiceNames map[uint32]string // service id → Service.ID
	BackendNames map[uint32]string // backend id → BackendKey
}

// FrontendKey is what a connect() is matched on. Addr 0.0.0.0 stands for a
// published port on any local address.
type FrontendKey struct {
	Addr  netip.Addr
	Port  uint16
	Proto Protocol
}

// FrontendVal says where a frontend's traffic goes.
type FrontendVal struct {
	Service    uint32
	Rev        uint32
	Count      uint32
	TargetPort uint16
}

// SlotKey addresses one slot of one revision of a service's slot table.
type SlotKey struct {
	Service, Rev, Slot uint32
}

// NewTables returns empty tables.
func NewTables() *Tables {
	return &Tables{
		Frontends:    map[FrontendKey]FrontendVal{},
		Slots:        map[SlotKey]uint32{},
		Backends:     map[uint32]netip.Addr{},
		ServiceNames: map[uint32]string{},
		BackendNames: map[uint32]string{},
	}
}

// Clone returns a deep copy.
func (t *Tables) Clone() *Tables {
	return &Tables{
		Frontends:    maps.Clone(t.Frontends),
		Slots:        maps.Clone(t.Slots),
		Backends:     maps.Clone(t.Backends),
		ServiceNames: maps.Clone(t.ServiceNames),
		BackendNames: maps.Clone(t.BackendNames),
	}
}

// BackendKey identifies a backend across services: the task id and its
// address (a task that is re-created with another address is a new backend).
func BackendKey(b Backend) string { return b.ID + "@" + b.Addr.String() }

// MapWriter applies single map operations. The eBPF implementation writes
// to kernel maps; Tables itself is a MapWriter so plans can be simulated.
type MapWriter interface {
	Apply(Op) error
}

// Map names a map of the layout.
type Map uint8

const (
	MapServiceNames Map = iota + 1
	MapBackendNames
	MapBackends
	MapSlots
	MapFrontends
)

func (m Map) String() string {
	return [...]string{"?", "service_names", "backend_names", "backends", "slots", "frontends"}[m]
}

// Op is one map update or delete.
type Op struct {
	Delete   bool
	Map      Map
	ID       uint32 // names, backends
	Name     string
	Addr     netip.Addr
	Slot     SlotKey
	Backend  uint32 // slot value
	Frontend FrontendKey
	FrontVal FrontendVal
}

func (o Op) String() string {
	verb := "put"
	if o.Delete {
		verb = "del"
	}
	var k, v string
	switch o.Map {
	case MapServiceNames, MapBackendNames:
		k, v = fmt.Sprint(o.ID), o.Name
	case MapBackends:
		k, v = fmt.Sprint(o.ID), o.Addr.String()
	case MapSlots:
		k, v = fmt.Sprintf("svc=%d rev=%d slot=%d", o.Slot.Service, o.Slot.Rev, o.Slot.Slot), fmt.Sprintf("backend=%d", o.Backend)
	case MapFrontends:
		k = fmt.Sprintf("%v:%d/%v", o.Frontend.Addr, o.Frontend.Port, o.Frontend.Proto)
		v = fmt.Sprintf("svc=%d rev=%d count=%d target=%d", o.FrontVal.Service, o.FrontVal.Rev, o.FrontVal.Count, o.FrontVal.TargetPort)
	}
	if o.Delete {
		return fmt.Sprintf("%s %s %s", verb, o.Map, k)
	}
	return fmt.Sprintf("%s %s %s = %s", verb, o.Map, k, v)
}

// Apply makes Tables a MapWriter.
func (t *Tables) Apply(o Op) error {
	switch o.Map {
	case MapServiceNames:
		setOrDelete(t.ServiceNames, o.ID, o.Name, o.Delete)
	case MapBackendNames:
		setOrDelete(t.BackendNames, o.ID, o.Name, o.Delete)
	case MapBackends:
		setOrDelete(t.Backends, o.ID, o.Addr, o.Delete)
	case MapSlots:
		setOrDelete(t.Slots, o.Slot, o.Backend, o.Delete)
	case MapFrontends:
		setOrDelete(t.Frontends, o.Frontend, o.FrontVal, o.Delete)
	default:
		return fmt.Errorf("apply %v: unknown map", o)
	}
	return nil
}

func setOrDelete[K comparable, V any](m map[K]V, k K, v V, del bool) {
	if del {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// Check verifies the invariant the kernel relies on: every frontend's slots
// 0..count-1 exist under its revision and name an existing backend. Plans
// keep it true after every single operation.
func (t *Tables) Check() error {
	for fk, fv := range t.Frontends {
		for i := range fv.Count {
			b, ok := t.Slots[SlotKey{fv.Service, fv.Rev, i}]
			if !ok {
				return fmt.Errorf("frontend %v:%d/%v: slot %d of rev %d missing", fk.Addr, fk.Port, fk.Proto, i, fv.Rev)
			}
			if _, ok := t.Backends[b]; !ok {
				return fmt.Errorf("frontend %v:%d/%v: slot %d names missing backend %d", fk.Addr, fk.Port, fk.Proto, i, b)
			}
		}
	}
	return nil
}

// String renders the tables sorted, for golden files and debugging.
func (t *Tables) String() string {
	var lines []string
	for k, v := range t.Frontends {
		lines = append(lines, Op{Map: MapFrontends, Frontend: k, FrontVal: v}.String())
	}
	for k, v := range t.Slots {
		lines = append(lines, Op{Map: MapSlots, Slot: k, Backend: v}.String())
	}
	for k, v := range t.Backends {
		lines = append(lines, Op{Map: MapBackends, ID: k, Addr: v}.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
