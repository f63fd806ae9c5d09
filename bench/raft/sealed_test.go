package raftbench

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/raftnode/raftnodetest"
)

// BenchmarkSealedRaft measures what sealing the log at rest costs: 64
// writers and 100-placement entries on a cluster whose members seal their
// logs, against the same load on a plain cluster in the same run.
func BenchmarkSealedRaft(b *testing.B) {
	start := func(sealed bool) *raftnode.Node {
		c := raftnodetest.NewCluster(b, 3, func(cfg *raftnode.Config) {
			if sealed {
				k := sha256.Sum256([]byte(cfg.NodeID))
				cfg.EncryptionKey = k[:]
			}
		})
		c.Form()
		return c.Leader(10 * time.Second).Node
	}
	plain, sealed := start(false), start(true)
	applyN(b, plain, "warm-p", 20, 1, 1)
	applyN(b, sealed, "warm-s", 20, 1, 1)
	b.ResetTimer()
	var pPar, sPar, pBat, sBat float64
	for i := 0; i < b.N; i++ {
		pPar += applyN(b, plain, fmt.Sprintf("pp%d", i), 2000, 64, 1)
		sPar += applyN(b, sealed, fmt.Sprintf("sp%d", i), 2000, 64, 1)
		pBat += applyN(b, plain, fmt.Sprintf("pb%d", i), 60, 1, 100)
		sBat += applyN(b, sealed, fmt.Sprintf("sb%d", i), 60, 1, 100)
	}
	n := float64(b.N)
	b.ReportMetric(sPar/n, "sealed-w64-entries/s")
	b.ReportMetric(sPar/pPar, "sealed-vs-plain-w64")
	b.ReportMetric(sBat*100/n, "sealed-batch100-tasks/s")
	b.ReportMetric(sBat/pBat, "sealed-vs-plain-batch100")
}
