package ebpf

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/warrenhq/warren/dataplane"
)

// TaskCounters counts each task's packets and bytes with the TCX programs
// of bpf/task_counters.c on the host end of the task's veth. The counters,
// the slot → task table and the links are pinned under the pin directory,
// so Close (an agent restart) loses no count and detaches nothing; the next
// NewTaskCounters on the same directory carries on.
//
// TaskCounters is a prometheus.Collector; its methods are safe for
// concurrent use.
type TaskCounters struct {
	mu       sync.Mutex
	pinDir   string
	objs     TaskCountersObjects
	tasks    map[string]*taskAttach // by task ID
	reported map[string]string      // task ID → missing interface already reported
}

// taskAttach is one task's slot and, while its interface exists, its links.
type taskAttach struct {
	slot    uint32
	ifindex int         // 0 while not attached
	links   []link.Link // ingress, egress; handles of pinned links
}

// Bounds of task slots; the programs' maps hold maxTaskSlots entries.
const (
	maxTaskSlots  = 1 << 16
	maxTaskIDLen  = 127 // task_name.id, NUL-terminated
	taskPinPrefix = "task_"
)

// NewTaskCounters loads the counting programs and their maps pinned under
// pinDir (created if missing; it must be on bpffs) and adopts the tasks an
// earlier agent left there. Their links stay attached; the next Set swaps in
// the programs just loaded. A host without bpffs, BPF or TCX yields an
// error wrapping ErrNotSupported.
func NewTaskCounters(pinDir string) (*TaskCounters, error) {
	if pinDir == "" {
		return nil, errors.New("task counters: pin dir is required")
	}
	if err := requireFS(nearestExisting(pinDir), unix.BPF_FS_MAGIC); err != nil {
		return nil, &dataplane.NotSupportedError{What: "bpffs for " + pinDir, Err: err}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, &dataplane.NotSupportedError{What: "bpf memlock", Err: err}
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("pin dir: %w", err)
	}
	c := &TaskCounters{pinDir: pinDir, tasks: map[string]*taskAttach{}, reported: map[string]string{}}
	err := LoadTaskCountersObjects(&c.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, &dataplane.NotSupportedError{What: "task counter programs", Err: err}
		}
		return nil, fmt.Errorf("load task counters: %w", err)
	}
	if err := c.adopt(); err != nil {
		c.objs.Close()
		return nil, fmt.Errorf("adopt pinned task counters: %w", err)
	}
	return c, nil
}

// nearestExisting returns path or its nearest existing ancestor: a pin dir
// that does not exist yet must be created on bpffs.
func nearestExisting(path string) string {
	for {
		if _, err := os.Stat(path); err == nil || path == "/" || path == "." {
			return path
		}
		path = filepath.Dir(path)
	}
}

// adopt reads the slots an earlier agent pinned and unpins links whose slot
// has no task (an agent that died between attaching and naming).
func (c *TaskCounters) adopt() error {
	var slot uint32
	var name TaskCountersTaskName
	it := c.objs.TaskNames.Iterate()
	for it.Next(&slot, &name) {
		c.tasks[taskIDString(name)] = &taskAttach{slot: slot}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("task_names: %w", err)
	}
	owned := map[uint32]bool{}
	for _, a := range c.tasks {
		owned[a.slot] = true
		if err := c.ensureCounts(a.slot); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(c.pinDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if s, _, ok := parseTaskPin(e.Name()); ok && !owned[s] {
			unpinLink(filepath.Join(c.pinDir, e.Name()))
		}
	}
	return nil
}

// ensureCounts creates a slot's counters if they are missing (the programs
// never create them).
func (c *TaskCounters) ensureCounts(slot uint32) error {
	err := c.objs.TaskCounts.Update(slot, zeroCounts(), ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("task_counts: %w", err)
	}
	return nil
}

func zeroCounts() []TaskCountersTaskCount {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		n = runtime.NumCPU()
	}
	return make([]TaskCountersTaskCount, n)
}

// Set makes the counted tasks exactly tasks (task ID → host interface
// name): new tasks get a slot and are attached, tasks no longer listed are
// detached and their counters dropped, and a task whose interface changed
// is moved. Calling it again with the same map changes nothing.
//
// A task whose interface does not exist (yet) keeps its slot and counters
// and is attached by a later Set once the interface is there; the error
// names it the first time only, so a caller that logs every failed Set does
// not repeat itself. Such tasks and attach failures do not stop the others.
func (c *TaskCounters) Set(tasks map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	keep, drop := diffTaskSet(c.tasks, tasks)
	for _, id := range drop {
		if err := c.forget(id); err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", id, err))
		}
		delete(c.reported, id)
	}
	// One link dump for all tasks: net.InterfaceByName dumps every link
	// on the host for each name, which made each Set (every few seconds)
	// quadratic in the node's tasks — at 50 tasks most of the daemon's
	// allocations.
	ifindex, err := interfaceIndexes()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, id := range keep {
		if err := c.apply(id, tasks[id], ifindex[tasks[id]]); err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", id, err))
		}
	}
	if err := c.syncIfaces(); err != nil {
		errs = append(errs, fmt.Errorf("task_ifaces: %w", err))
	}
	return errors.Join(errs...)
}

// interfaceIndexes maps the name of every link on the host to its index.
func interfaceIndexes() (map[string]int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make(map[string]int, len(ifs))
	for _, ifc := range ifs {
		out[ifc.Name] = ifc.Index
	}
	return out, nil
}

// errNoInterface is a task interface missing from the host's links.
var errNoInterface = errors.New("no such network interface")

// apply gives task id a slot and attaches it to iface (index ifindex, 0
// when the host has no such link) if that exists.
func (c *TaskCounters) apply(id, iface string, ifindex int) error {
	a := c.tasks[id]
	if a == nil {
		if len(id) > maxTaskIDLen || id == "" {
			return fmt.Errorf("task ID must be 1 to %d bytes", maxTaskIDLen)
		}
		slot, ok := freeTaskSlot(c.tasks, maxTaskSlots)
		if !ok {
			return fmt.Errorf("all %d task slots in use", maxTaskSlots)
		}
		// Counters first: a slot's counters exist whenever anything names it.
		if err := c.objs.TaskCounts.Put(slot, zeroCounts()); err != nil {
			return fmt.Errorf("task_counts: %w", err)
		}
		if err := c.objs.TaskNames.Put(slot, taskIDName(id)); err != nil {
			c.objs.TaskCounts.Delete(slot)
			return fmt.Errorf("task_names: %w", err)
		}
		a = &taskAttach{slot: slot}
		c.tasks[id] = a
	}
	if ifindex == 0 {
		// Gone or not there yet: a link on a deleted interface is defunct.
		c.detach(a)
		if c.reported[id] == iface {
			return nil
		}
		c.reported[id] = iface
		return fmt.Errorf("interface %s: %w", iface, errNoInterface)
	}
	delete(c.reported, id)
	if a.ifindex == ifindex && linkOn(a.links, ifindex) {
		return nil
	}
	a.closeLinks()
	// Map the interface before attaching so the first packets count.
	if err := c.objs.TaskIfaces.Put(uint32(ifindex), a.slot); err != nil {
		return fmt.Errorf("task_ifaces: %w", err)
	}
	for _, p := range c.progs() {
		l, err := attachTCXPinned(c.pin(a.slot, p.dir), ifindex, p.prog, p.at)
		if err != nil {
			c.detach(a)
			return fmt.Errorf("%s %s: %w", iface, p.dir, err)
		}
		a.links = append(a.links, l)
	}
	a.ifindex = ifindex
	return nil
}

type taskProg struct {
	dir  string // pin suffix
	prog *ebpf.Program
	at   ebpf.AttachType
}

func (c *TaskCounters) progs() []taskProg {
	return []taskProg{
		{"ingress", c.objs.WarrenTaskIn, ebpf.AttachTCXIngress},
		{"egress", c.objs.WarrenTaskOut, ebpf.AttachTCXEgress},
	}
}

func (c *TaskCounters) pin(slot uint32, dir string) string {
	return filepath.Join(c.pinDir, taskPinName(slot, dir))
}

// detach unpins (and so detaches) a task's links.
func (c *TaskCounters) detach(a *taskAttach) {
	a.closeLinks()
	for _, p := range c.progs() {
		unpinLink(c.pin(a.slot, p.dir))
	}
	a.ifindex = 0
}

func (a *taskAttach) closeLinks() {
	for _, l := range a.links {
		l.Close()
	}
	a.links = nil
}

// forget detaches a task and drops its slot; the slot's next task starts
// from zero. The interface is unmapped before the counters go, so the
// programs never see a mapped slot without counters.
func (c *TaskCounters) forget(id string) error {
	a := c.tasks[id]
	ifindex := a.ifindex
	c.detach(a)
	delete(c.tasks, id)
	var errs []error
	if ifindex != 0 {
		errs = append(errs, deleteKey(c.objs.TaskIfaces, uint32(ifindex)))
	}
	errs = append(errs, deleteKey(c.objs.TaskCounts, a.slot), deleteKey(c.objs.TaskNames, a.slot))
	return errors.Join(errs...)
}

func deleteKey(m *ebpf.Map, k uint32) error {
	if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// syncIfaces makes task_ifaces map exactly the attached tasks' interfaces.
func (c *TaskCounters) syncIfaces() error {
	want := map[uint32]uint32{}
	for _, a := range c.tasks {
		if a.ifindex != 0 {
			want[uint32(a.ifindex)] = a.slot
		}
	}
	var k, v uint32
	var stale []uint32
	it := c.objs.TaskIfaces.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	var errs []error
	for _, k := range stale {
		errs = append(errs, deleteKey(c.objs.TaskIfaces, k))
	}
	for k, v := range want {
		errs = append(errs, c.objs.TaskIfaces.Put(k, v))
	}
	return errors.Join(errs...)
}

// linkOn reports whether the links are live TCX links on ifindex (a link
// whose interface was deleted reports ifindex 0).
func linkOn(links []link.Link, ifindex int) bool {
	if len(links) == 0 {
		return false
	}
	for _, l := range links {
		info, err := l.Info()
		if err != nil || info.TCX() == nil || int(info.TCX().Ifindex) != ifindex {
			return false
		}
	}
	return true
}

// Counts reads every task's counters, summed over CPUs.
func (c *TaskCounters) Counts() (map[string]TaskTraffic, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]TaskTraffic, len(c.tasks))
	var errs []error
	var vals []TaskCountersTaskCount
	for id, a := range c.tasks {
		if err := c.objs.TaskCounts.Lookup(a.slot, &vals); err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", id, err))
			continue
		}
		var t TaskTraffic
		for _, v := range vals {
			t.RxPackets += v.RxPackets
			t.RxBytes += v.RxBytes
			t.TxPackets += v.TxPackets
			t.TxBytes += v.TxBytes
		}
		out[id] = t
	}
	return out, errors.Join(errs...)
}

// Describe implements prometheus.Collector.
func (c *TaskCounters) Describe(ch chan<- *prometheus.Desc) { describeTaskTraffic(ch) }

// Collect implements prometheus.Collector: the counters are read at scrape
// time.
func (c *TaskCounters) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.Counts()
	collectTaskTraffic(ch, counts, err)
}

// Close drops this process's handles. Pins keep the links attached and the
// counters counting; use Set(nil) first to detach everything.
func (c *TaskCounters) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.tasks {
		a.closeLinks()
	}
	return c.objs.Close()
}

// TaskTraffic is one task's cumulative traffic, seen from the task: Rx is
// what it received, Tx what it sent. A GSO packet counts as its segments;
// its bytes count its headers once.
type TaskTraffic struct {
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
}

// ---- pure helpers ----

var (
	descTaskPackets = prometheus.NewDesc("warren_task_network_packets_total",
		"Packets on a task's network interface; rx: received by the task, tx: sent by it.",
		[]string{"task", "direction"}, nil)
	descTaskBytes = prometheus.NewDesc("warren_task_network_bytes_total",
		"Bytes (Ethernet frames) on a task's network interface; rx: received by the task, tx: sent by it.",
		[]string{"task", "direction"}, nil)
	descTaskReadFailed = prometheus.NewDesc("warren_task_network_counters_read_failed",
		"1 if reading the task network counters failed during this scrape.", nil, nil)
)

func describeTaskTraffic(ch chan<- *prometheus.Desc) {
	ch <- descTaskPackets
	ch <- descTaskBytes
	ch <- descTaskReadFailed
}

// collectTaskTraffic turns counts read at scrape time into metrics; err
// (some tasks unreadable) is reported as a gauge next to the tasks read.
func collectTaskTraffic(ch chan<- prometheus.Metric, counts map[string]TaskTraffic, err error) {
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descTaskReadFailed, prometheus.GaugeValue, failed)
	for id, t := range counts {
		ch <- prometheus.MustNewConstMetric(descTaskPackets, prometheus.CounterValue, float64(t.RxPackets), id, "rx")
		ch <- prometheus.MustNewConstMetric(descTaskPackets, prometheus.CounterValue, float64(t.TxPackets), id, "tx")
		ch <- prometheus.MustNewConstMetric(descTaskBytes, prometheus.CounterValue, float64(t.RxBytes), id, "rx")
		ch <- prometheus.MustNewConstMetric(descTaskBytes, prometheus.CounterValue, float64(t.TxBytes), id, "tx")
	}
}

// diffTaskSet splits the wanted tasks (sorted, for a deterministic slot
// order) from the held tasks to drop (sorted).
func diffTaskSet(have map[string]*taskAttach, want map[string]string) (keep, drop []string) {
	for id := range have {
		if _, ok := want[id]; !ok {
			drop = append(drop, id)
		}
	}
	for id := range want {
		keep = append(keep, id)
	}
	sort.Strings(drop)
	sort.Strings(keep)
	return keep, drop
}

// freeTaskSlot returns the lowest slot no task holds.
func freeTaskSlot(have map[string]*taskAttach, limit uint32) (uint32, bool) {
	used := make(map[uint32]bool, len(have))
	for _, a := range have {
		used[a.slot] = true
	}
	for s := uint32(0); s < limit; s++ {
		if !used[s] {
			return s, true
		}
	}
	return 0, false
}

func taskPinName(slot uint32, dir string) string {
	return taskPinPrefix + strconv.FormatUint(uint64(slot), 10) + "_" + dir
}

// parseTaskPin is the inverse of taskPinName.
func parseTaskPin(name string) (slot uint32, dir string, ok bool) {
	rest, found := strings.CutPrefix(name, taskPinPrefix)
	if !found {
		return 0, "", false
	}
	num, dir, found := strings.Cut(rest, "_")
	if !found || (dir != "ingress" && dir != "egress") {
		return 0, "", false
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != num {
		return 0, "", false
	}
	return uint32(n), dir, true
}

func taskIDName(id string) TaskCountersTaskName {
	var v TaskCountersTaskName
	for i := 0; i < len(id) && i < len(v.Id)-1; i++ {
		v.Id[i] = int8(id[i])
	}
	return v
}

func taskIDString(v TaskCountersTaskName) string {
	b := make([]byte, 0, len(v.Id))
	for _, c := range v.Id {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
