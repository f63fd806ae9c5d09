//go:build linux

package reliability

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestSettleUnknown needs no root: settleUnknown is the one transformation
// between the recorded history and porcupine, so it must keep every
// verdict, and it must actually tighten what it claims to.
func TestSettleUnknown(t *testing.T) {
	const never = math.MaxInt64
	put := func(c int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: regOp{write: true, key: "k", value: v}, Call: call, Return: ret}
	}
	get := func(c int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: regOp{key: "k"}, Output: v, Call: call, Return: ret}
	}
	for _, tc := range []struct {
		name string
		hist []porcupine.Operation
		want porcupine.CheckResult
		// kept is how many operations settleUnknown keeps; ret, when not
		// 0, is the return it gives the unknown write of value "b".
		kept int
		ret  int64
	}{
		{"an unknown write no read saw is left out",
			[]porcupine.Operation{put(0, "a", 0, 10), put(0, "b", 20, never), get(1, "a", 30, 40)},
			porcupine.Ok, 2, 0},
		{"an unknown write a read saw returns by that read",
			[]porcupine.Operation{put(0, "a", 0, 10), put(0, "b", 20, never), get(1, "b", 30, 40), get(2, "b", 35, 60), get(1, "b", 50, 55)},
			porcupine.Ok, 5, 40},
		{"a read after the settled return cannot see the older value",
			[]porcupine.Operation{put(0, "a", 0, 10), put(0, "b", 20, never), get(1, "b", 30, 40), get(2, "a", 50, 60)},
			porcupine.Illegal, 4, 40},
		{"a read that saw a value before it was written stays illegal",
			[]porcupine.Operation{get(1, "b", 0, 5), put(0, "b", 20, never)},
			porcupine.Illegal, 2, 21},
		{"a stale read after an acknowledged write stays illegal",
			[]porcupine.Operation{put(0, "a", 0, 10), put(0, "b", 20, 30), get(1, "a", 40, 50), put(0, "c", 60, never)},
			porcupine.Illegal, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(registerModel, tc.hist); got != (tc.want == porcupine.Ok) {
				t.Fatalf("the case itself is wrong: the raw history is linearizable=%v, want %s", got, tc.want)
			}
			settled := settleUnknown(tc.hist)
			if got := porcupine.CheckOperations(registerModel, settled); got != (tc.want == porcupine.Ok) {
				t.Errorf("settled history linearizable=%v, want %s", got, tc.want)
			}
			if len(settled) != tc.kept {
				t.Errorf("kept %d operations, want %d", len(settled), tc.kept)
			}
			for _, op := range settled {
				if in := op.Input.(regOp); in.write && in.value == "b" && tc.ret != 0 && op.Return != tc.ret {
					t.Errorf("unknown write of b returns at %d, want %d", op.Return, tc.ret)
				}
			}
		})
	}
}
