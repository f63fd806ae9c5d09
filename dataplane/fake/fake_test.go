package fake_test

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/conformance"
	"github.com/warrenhq/warren/dataplane/fake"
)

// TestConformance runs the shared table against the fake: backends are real
// loopback listeners, and a probe resolves the frontend in the fake before
// dialing the backend, reporting the frontend as the peer as the kernel
// would make getpeername and recvmsg do.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	nodes := map[string]*fake.Node{}
	node := func(t *testing.T) *fake.Node {
		mu.Lock()
		defer mu.Unlock()
		if nodes[t.Name()] == nil {
			nodes[t.Name()] = fake.NewNode(rand.New(rand.NewPCG(1, uint64(len(nodes)))))
		}
		return nodes[t.Name()]
	}
	conformance.Run(t, conformance.Harness{
		New:     func(t *testing.T) dataplane.Dataplane { return node(t).New() },
		Backend: conformance.ListenBackend,
		Probe: func(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, n int) []conformance.Reply {
			out := make([]conformance.Reply, n)
			for i := range out {
				to, err := node(t).Resolve(proto, addr)
				if err != nil {
					out[i].Err = err
					continue
				}
				out[i] = conformance.Dial(proto, to, 1)[0]
				if out[i].Err == nil && out[i].Peer == to {
					out[i].Peer = addr
				}
			}
			return out
		},
		VIP:         func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 43, 0, byte(10 + i)}) },
		BackendAddr: func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + i)}) },
		Port:        conformance.FreePort,
		Persistent:  true,
	})
}
