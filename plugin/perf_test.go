package plugin

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeWrites sums the calls that write to the store.
func storeWrites(calls map[string]int) int {
	return calls["InsertHeld"] + calls["Transition"] +
		calls["PutPendingRelease"] + calls["InsertReleased"]
}

// TestPassThroughCallsNoStore counts every store call pass-through makes,
// with HTLCs held at the same time: none at all for an HTLC without custom
// records (every forward but a few), and one read, no write, for one whose
// custom records do not ask for a hold.
func TestPassThroughCallsNoStore(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()

	// Something held, so the engine has state to consult.
	require.Equal(t, ActionHold,
		te.Intercept(ctx, flagged(key(1, 1), hashOf(1), 10_000)).Action)
	before := te.store.callCounts()
	require.Equal(t, 1, before["InsertHeld"])

	for i := range 50 {
		h := flagged(key(2, uint64(i)), hashOf(2), 10_000)
		h.CustomRecords = nil
		require.Equal(t, Decision{Action: ActionResume},
			te.Intercept(ctx, h))
	}
	require.Equal(t, before, te.store.callCounts(),
		"pass-through without custom records touched the store")

	for i := range 50 {
		h := flagged(key(3, uint64(i)), hashOf(3), 10_000)
		h.CustomRecords = map[uint64][]byte{DefaultHoldType + 2: {1}}
		require.Equal(t, Decision{Action: ActionResume},
			te.Intercept(ctx, h))
	}
	after := te.store.callCounts()
	require.Equal(t, storeWrites(before), storeWrites(after),
		"pass-through wrote to the store")
	require.Equal(t, before["LookupHTLC"]+50, after["LookupHTLC"])

	require.Equal(t, uint64(100), te.Stats().Decisions["pass"])
	require.Equal(t, 1, te.Stats().HeldCount)
}

// TestSlowStoreWriteBlocksOnlyItsHTLC holds one HTLC's store write and
// then its resume (the RPC to lnd) open, and checks that the engine keeps
// deciding, releasing and reporting for every other HTLC meanwhile: no lock
// shared between HTLCs is held across a store write or an RPC.
func TestSlowStoreWriteBlocksOnlyItsHTLC(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	slow := key(9, 9)

	// done runs f and fails the test unless it returns within a second;
	// f reports with assert, since it runs on another goroutine.
	done := func(what string, f func()) {
		t.Helper()
		ch := make(chan struct{})
		go func() {
			defer close(ch)
			f()
		}()
		select {
		case <-ch:
		case <-time.After(time.Second):
			t.Fatalf("%s blocked behind another HTLC's I/O", what)
		}
	}
	others := func(round int) {
		t.Helper()
		base := uint64(round * 10)
		done("pass-through", func() {
			h := flagged(key(1, base), hashOf(1), 10_000)
			h.CustomRecords = nil
			assert.Equal(t, ActionResume, te.Intercept(ctx, h).Action)
		})
		other := key(2, base)
		done("hold", func() {
			assert.Equal(t, ActionHold, te.Intercept(ctx,
				flagged(other, hashOf(2), 10_000)).Action)
		})
		done("release", func() {
			out, err := te.Release(ctx, other, hashOf(2), "onion")
			assert.NoError(t, err)
			assert.Equal(t, ReleaseMatched, out)
		})
		done("replay", func() {
			assert.Equal(t, ActionResume, te.Intercept(ctx,
				flagged(other, hashOf(2), 10_000)).Action)
		})
		done("stats", func() { te.Stats() })
		done("set policy", func() {
			assert.NoError(t, te.SetPolicy(te.Policy()))
		})
	}

	// The slow HTLC's insert waits until we let it go.
	entered := make(chan struct{})
	unblock := make(chan struct{})
	te.store.setBeforeWrite(func(method string, k CircuitKey) {
		if k == slow && method == "InsertHeld" {
			close(entered)
			<-unblock
		}
	})
	held := make(chan Decision, 1)
	go func() {
		held <- te.Intercept(ctx, flagged(slow, hashOf(9), 10_000))
	}()
	<-entered
	others(1)
	close(unblock)
	require.Equal(t, ActionHold, (<-held).Action)
	te.store.setBeforeWrite(nil)

	// Now its resume to lnd hangs.
	entered = make(chan struct{})
	unblock = make(chan struct{})
	te.resolver.setBeforeResolve(func(k CircuitKey) {
		if k == slow {
			close(entered)
			<-unblock
		}
	})
	released := make(chan ReleaseOutcome, 1)
	go func() {
		out, err := te.Release(ctx, slow, hashOf(9), "onion")
		assert.NoError(t, err)
		released <- out
	}()
	<-entered
	others(2)
	close(unblock)
	require.Equal(t, ReleaseMatched, <-released)

	rec, ok := te.store.get(slow)
	require.True(t, ok)
	require.Equal(t, StateResumed, rec.State)
	require.Zero(t, te.Stats().HeldCount)
}

// TestFailDueRunsFailBacksTogether takes many HTLCs to their fail-back
// height with one block and checks that their fail-backs run side by side,
// so that a store with group commit can share fsyncs between them, and
// that every one of them is failed exactly once.
func TestFailDueRunsFailBacksTogether(t *testing.T) {
	te := newTestEngine(t, func(p *Policy) {
		p.FailbackMargin = 10
		p.MaxHeldPerPeer = 0
	})
	ctx := context.Background()

	const n = 3 * failDueWorkers
	for i := range n {
		require.Equal(t, ActionHold, te.Intercept(ctx,
			flagged(key(4, uint64(i)), hashOf(4), 1_000)).Action)
	}

	// The first fail-backs' writes wait until two are in flight at once
	// (or give up after a while, which the test then reports).
	var (
		mu       sync.Mutex
		inFlight int
		most     int
		two      = make(chan struct{})
		twoOnce  sync.Once
	)
	te.store.setBeforeWrite(func(method string, _ CircuitKey) {
		if method != "Transition" {
			return
		}
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight >= 2 {
			twoOnce.Do(func() { close(two) })
		}
		mu.Unlock()
		select {
		case <-two:
		case <-time.After(2 * time.Second):
			// Alone: let everything through.
			twoOnce.Do(func() { close(two) })
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	})

	te.setHeight(t, startHeight+90)
	require.Eventually(t, func() bool {
		return len(te.resolver.resolutions()) == n
	}, 10*time.Second, time.Millisecond)

	mu.Lock()
	require.GreaterOrEqual(t, most, 2, "fail-backs ran one at a time")
	require.LessOrEqual(t, most, failDueWorkers)
	mu.Unlock()

	seen := make(map[CircuitKey]bool)
	for _, r := range te.resolver.resolutions() {
		require.Equal(t, ActionFail, r.action)
		require.False(t, seen[r.key], "%v failed twice", r.key)
		seen[r.key] = true
	}
	for i := range n {
		rec, ok := te.store.get(key(4, uint64(i)))
		require.True(t, ok)
		require.Equal(t, StateFailed, rec.State)
		require.Equal(t, string(FailExpiry), rec.FailReason)
	}
	require.Zero(t, te.Stats().HeldCount)
	require.Equal(t, uint64(n), te.Stats().Decisions["fail_expiry"])
}
