package raftnode

import (
	"net"
	"testing"
	"time"
)

func TestLeaderDeadDecision(t *testing.T) {
	const lease = 250 * time.Millisecond
	dead := leaderFacts{Following: true, Inbound: 0, Refused: true, SinceContact: lease}
	for _, tc := range []struct {
		name         string
		f            leaderFacts
		probe, early bool
	}{
		{"process gone, lease over", dead, true, true},
		{"process gone, silent for long", leaderFacts{Following: true, Refused: true, SinceContact: 10 * time.Second}, true, true},
		{"process gone, lease not over", leaderFacts{Following: true, Refused: true, SinceContact: lease - time.Millisecond}, true, false},
		{"port accepts (slow or restarted leader)", leaderFacts{Following: true, SinceContact: time.Minute}, true, false},
		{"a connection from the leader is open", leaderFacts{Following: true, Inbound: 1, Refused: true, SinceContact: time.Minute}, false, false},
		{"not following (candidate or leader)", leaderFacts{Refused: true, SinceContact: time.Minute}, false, false},
		// A partition: connections stay open (no reset arrives) and dials
		// time out, which is not a refusal.
		{"partition", leaderFacts{Following: true, Inbound: 2, SinceContact: time.Minute}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shouldProbe(tc.f); got != tc.probe {
				t.Errorf("shouldProbe(%+v) = %v, want %v", tc.f, got, tc.probe)
			}
			if got := leaderDead(tc.f, lease); got != tc.early {
				t.Errorf("leaderDead(%+v, %v) = %v, want %v", tc.f, lease, got, tc.early)
			}
		})
	}
}

func TestStreamLayerSeesInboundAndRefusals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewStreamLayer(ln, nil, nil).(*streamLayer)
	defer s.Close()

	if n := s.inboundFrom("m1"); n != 0 {
		t.Fatalf("inbound before any connection = %d, want 0", n)
	}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// Plain TCP names no peer, so the connection may be the leader's.
	if n := s.inboundFrom("m1"); n != 1 {
		t.Fatalf("inbound with an unidentified connection open = %d, want 1", n)
	}
	_ = server.Close()
	_ = server.Close() // raft may close twice; the count must not go negative
	if n := s.inboundFrom("m1"); n != 0 {
		t.Fatalf("inbound after close = %d, want 0", n)
	}

	// A port with a listener is not a refusal, even one that never answers.
	if s.dialRefused(ln.Addr().String(), time.Second) {
		t.Fatal("dial to a listening port reported refused")
	}
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := gone.Addr().String()
	_ = gone.Close()
	if !s.dialRefused(addr, time.Second) {
		t.Fatal("dial to a closed port not reported refused")
	}
}
