package raftnode

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestHCLogAdapter(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := newHCLog(zap.New(core)).Named("raft").With("peer", "m1")
	l.Debug("dropped below the zap level")
	l.Info("entering leader state", "term", 3, "odd")
	l.Named("net").Warn("failed to contact", "id", "m2")
	l.SetLevel(hclog.Error)
	l.Warn("dropped below the hclog level")

	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(entries), entries)
	}
	first := entries[0].ContextMap()
	if entries[0].LoggerName != "raft" || first["peer"] != "m1" || first["term"] != int64(3) || first["EXTRA_VALUE_AT_END"] != "odd" {
		t.Fatalf("first entry = %s %+v", entries[0].LoggerName, first)
	}
	if entries[1].LoggerName != "raft.net" || entries[1].Level != zapcore.WarnLevel {
		t.Fatalf("second entry = %s %v", entries[1].LoggerName, entries[1].Level)
	}
	if l.IsDebug() || !l.IsError() || len(l.ImpliedArgs()) != 2 {
		t.Fatal("level queries or implied args wrong")
	}
}
