package plugin

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDueHeapMatchesScan adds and removes entries at random and checks
// after every step that the heaps find exactly the entries a walk over all
// of them finds, and keep every entry's position right.
func TestDueHeapMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	byFailback, byDeadline := newFailbackHeap(), newDeadlineHeap()
	var live []*entry

	ids := func(ents []*entry) []uint64 {
		out := make([]uint64, 0, len(ents))
		for _, e := range ents {
			out = append(out, e.key.HtlcID)
		}
		slices.Sort(out)
		return out
	}
	check := func() {
		t.Helper()
		for i, e := range byFailback.items {
			require.Equal(t, i, e.failbackPos)
		}
		for i, e := range byDeadline.items {
			require.Equal(t, i, e.deadlinePos)
		}
		require.Len(t, byFailback.items, len(live))

		height := int32(rng.IntN(60))
		now := testStart.Add(time.Duration(rng.IntN(60)) * time.Second)
		var wantH, wantD []*entry
		for _, e := range live {
			if e.failbackHeight <= height {
				wantH = append(wantH, e)
			}
			if !e.deadline.IsZero() && !now.Before(e.deadline) {
				wantD = append(wantD, e)
			}
		}
		require.Equal(t, ids(wantH), ids(byFailback.due(
			func(e *entry) bool { return e.failbackHeight <= height })))
		require.Equal(t, ids(wantD), ids(byDeadline.due(
			func(e *entry) bool { return !now.Before(e.deadline) })))
	}

	check()
	for id := range uint64(2000) {
		if len(live) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(live))
			e := live[i]
			live = slices.Delete(live, i, i+1)
			byFailback.remove(e)
			byDeadline.remove(e)
			require.Equal(t, -1, e.failbackPos)
			require.Equal(t, -1, e.deadlinePos)
			// Removing twice changes nothing.
			byFailback.remove(e)
		} else {
			rec := HeldHTLC{
				Key:            key(1, id),
				FailbackHeight: int32(rng.IntN(60)),
			}
			if rng.IntN(2) == 0 {
				rec.HoldDeadline = testStart.Add(
					time.Duration(rng.IntN(60)) * time.Second)
			}
			e := newEntry(rec)
			live = append(live, e)
			byFailback.add(e)
			if !e.deadline.IsZero() {
				byDeadline.add(e)
			}
		}
		if id%50 == 0 {
			check()
		}
	}
	check()
}
