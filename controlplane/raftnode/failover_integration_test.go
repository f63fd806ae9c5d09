package raftnode_test

import (
	"net"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/raftnode/raftnodetest"
)

// slowTimeouts makes the configured timeouts long enough that an election
// they start would come well after one started early, so which of the two
// happened shows in the counters rather than in a clock.
func slowTimeouts(c *raftnode.Config) {
	c.HeartbeatTimeout = 2 * time.Second
	c.ElectionTimeout = 2 * time.Second
	c.LeaderLeaseTimeout = 250 * time.Millisecond
}

func survivors(c *raftnodetest.Cluster) []*raftnodetest.Member {
	var out []*raftnodetest.Member
	for _, m := range c.Members {
		if m.Node != nil {
			out = append(out, m)
		}
	}
	return out
}

func earlyCampaigns(ms []*raftnodetest.Member) uint64 {
	var n uint64
	for _, m := range ms {
		n += m.Node.EarlyCampaigns()
	}
	return n
}

func indexOf(c *raftnodetest.Cluster, m *raftnodetest.Member) int {
	for i, x := range c.Members {
		if x == m {
			return i
		}
	}
	panic("not a member")
}

func TestKilledLeaderIsReplacedByAnEarlyCampaign(t *testing.T) {
	c := raftnodetest.NewCluster(t, 3, slowTimeouts)
	c.Form()
	old := c.Leader(30 * time.Second)
	oldID := old.ID
	rest := []*raftnodetest.Member{}
	for _, m := range c.Members {
		if m != old {
			rest = append(rest, m)
		}
	}
	if n := earlyCampaigns(rest); n != 0 {
		t.Fatalf("%d early campaigns while the leader was up", n)
	}
	// Stop closes the leader's listener and its connections, as the
	// kernel does when a manager's process dies: its port now refuses.
	c.Stop(indexOf(c, old))
	lead := c.Leader(30 * time.Second)
	if lead.ID == oldID {
		t.Fatalf("the stopped leader %s still leads", oldID)
	}
	// The early campaign must have started the election that elected the
	// new leader: Leader returned as soon as one was agreed on, and the
	// counter is raised before raft is asked to campaign.
	if n := earlyCampaigns(survivors(c)); n == 0 {
		t.Fatal("a new leader was elected without an early campaign: the survivors waited out the heartbeat timeout")
	}
	// Once a leader is known again every survivor runs with the configured
	// timeouts.
	for _, m := range survivors(c) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			hb, et := m.Node.RaftTimeouts()
			if hb == 2*time.Second && et == 2*time.Second {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s kept the shortened timeouts %v / %v after %s was elected", m.ID, hb, et, lead.ID)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	idx := c.ApplyAnywhere(raftnodetest.PutTask("after-failover"), 30*time.Second)
	c.WaitAll(idx, 10*time.Second)
}

// A leader whose port still accepts connections (here a listener that
// never answers, as a wedged or partitioned-but-reachable host would) is
// replaced only by the configured timeouts.
func TestLeaderWhosePortAcceptsIsNotCampaignedAgainstEarly(t *testing.T) {
	c := raftnodetest.NewCluster(t, 3, func(c *raftnode.Config) {
		c.HeartbeatTimeout = 500 * time.Millisecond
		c.ElectionTimeout = 500 * time.Millisecond
		c.LeaderLeaseTimeout = 250 * time.Millisecond
	})
	c.Form()
	old := c.Leader(30 * time.Second)
	addr := old.Addr
	c.Stop(indexOf(c, old))
	var hold net.Listener
	var err error
	for try := 0; try < 50; try++ { // the old socket may take a moment to release the port
		if hold, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("hold %s: %v", addr, err)
	}
	held := make(chan net.Conn, 64)
	defer func() {
		hold.Close()
		for len(held) > 0 {
			(<-held).Close()
		}
	}()
	go func() {
		for {
			conn, err := hold.Accept()
			if err != nil {
				return
			}
			select {
			case held <- conn:
			default:
				conn.Close()
			}
		}
	}()
	lead := c.Leader(30 * time.Second)
	if lead.ID == old.ID {
		t.Fatalf("the stopped leader %s still leads", old.ID)
	}
	if n := earlyCampaigns(survivors(c)); n != 0 {
		t.Fatalf("%d early campaigns against a leader whose port accepts connections", n)
	}
}
