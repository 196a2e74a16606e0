package plugin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

const startHeight = 500

var testStart = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type testEngine struct {
	*Engine
	store    *fakeStore
	resolver *fakeResolver
	blocks   *fakeBlocks
	clock    *clock.TestClock
	observer *recordingObserver
	links    *fakeLinks
}

func newTestEngine(t *testing.T, mutate func(*Policy)) *testEngine {
	t.Helper()
	return newTestEngineWith(t, newFakeStore(), mutate)
}

func newTestEngineWith(t *testing.T, st *fakeStore,
	mutate func(*Policy), configure ...func(*Config)) *testEngine {

	t.Helper()
	p := DefaultPolicy()
	if mutate != nil {
		mutate(&p)
	}
	te := &testEngine{
		store:    st,
		resolver: newFakeResolver(),
		blocks:   newFakeBlocks(startHeight),
		clock:    clock.NewTestClock(testStart),
		observer: &recordingObserver{},
		links:    newFakeLinks(),
	}
	logger := logrus.New()
	logger.SetLevel(logrus.WarnLevel)
	cfg := Config{
		Policy:       p,
		Store:        te.store,
		Resolver:     te.resolver,
		Peers:        fakePeers{},
		Blocks:       te.blocks,
		Links:        te.links,
		Clock:        te.clock,
		Observer:     te.observer,
		Logger:       logger,
		TickInterval: time.Second,
	}
	for _, f := range configure {
		f(&cfg)
	}
	e, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, e.Stop()) })
	te.Engine = e
	return te
}

func key(chanID, htlcID uint64) CircuitKey {
	return CircuitKey{ChanID: chanID, HtlcID: htlcID}
}

func hashOf(b byte) lntypes.Hash {
	var h lntypes.Hash
	for i := range h {
		h[i] = b
	}
	return h
}

// flagged is an HTLC that asks for a hold, with lnd's auto-fail height 100
// blocks above the start height.
func flagged(k CircuitKey, hash lntypes.Hash, amt uint64) HTLC {
	return HTLC{
		Key:             k,
		PaymentHash:     hash,
		IncomingAmtMsat: amt,
		OutgoingAmtMsat: amt - 1000,
		IncomingExpiry:  startHeight + 119,
		OutgoingExpiry:  startHeight + 39,
		OutgoingChanID:  77,
		AutoFailHeight:  startHeight + 100,
		CustomRecords:   map[uint64][]byte{DefaultHoldType: {}},
	}
}

// setHeight delivers a block and waits until the engine has processed it.
func (te *testEngine) setHeight(t *testing.T, h int32) {
	t.Helper()
	te.blocks.ch <- h
	require.Eventually(t, func() bool { return te.Height() == h },
		5*time.Second, time.Millisecond)
}

func TestPassThroughIsNotStored(t *testing.T) {
	te := newTestEngine(t, nil)
	tests := []struct {
		name    string
		records map[uint64][]byte
	}{
		{"no records", nil},
		{"other custom record", map[uint64][]byte{65537: {1}}},
		{"neighbouring type", map[uint64][]byte{DefaultHoldType + 1: {}}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := flagged(key(1, uint64(i)), hashOf(1), 10_000)
			h.CustomRecords = tc.records
			d := te.Intercept(context.Background(), h)
			require.Equal(t, Decision{Action: ActionResume}, d)
		})
	}
	require.Zero(t, te.store.writeCount())
	require.Equal(t, uint64(3), te.Stats().Decisions["pass"])
	require.Zero(t, te.Stats().HeldCount)
}

func TestHoldThenReleaseResumes(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(5, 1)
	h := flagged(k, hashOf(7), 25_000)

	d := te.Intercept(ctx, h)
	require.Equal(t, Decision{Action: ActionHold}, d)

	rec, ok := te.store.get(k)
	require.True(t, ok)
	require.Equal(t, StateHeld, rec.State)
	require.Equal(t, hashOf(7), rec.PaymentHash)
	require.Equal(t, uint64(25_000), rec.IncomingAmtMsat)
	require.Equal(t, uint64(24_000), rec.OutgoingAmtMsat)
	require.Equal(t, int32(startHeight+100), rec.AutoFailHeight)
	require.Equal(t, int32(startHeight+100-12), rec.FailbackHeight)
	require.Equal(t, byte(5), rec.IncomingPeer[1])
	require.Equal(t, testStart, rec.HeldAt)
	require.Empty(t, te.resolver.resolutions())

	stats := te.Stats()
	require.Equal(t, 1, stats.HeldCount)
	require.Equal(t, uint64(25_000), stats.HeldMsat)

	out, err := te.Release(ctx, k, hashOf(7), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)
	require.Equal(t, []resolution{{k, ActionResume}},
		te.resolver.resolutions())

	rec, _ = te.store.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Equal(t, "onion", rec.ReleaseSource)
	require.Zero(t, te.Stats().HeldCount)
	require.Equal(t, []EventKind{EventHeld, EventReleased, EventResumed},
		te.observer.kinds())

	// A second release of the same HTLC changes nothing.
	out, err = te.Release(ctx, k, hashOf(7), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseDuplicate, out)
	require.Len(t, te.resolver.resolutions(), 1)
}

func TestReleaseWhileNotOfferedResumesOnReplay(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(5, 2)
	h := flagged(k, hashOf(2), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)

	// The stream dropped: lnd does not offer the key right now.
	te.resolver.setOffered(k, false)
	out, err := te.Release(ctx, k, hashOf(2), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)
	rec, _ := te.store.get(k)
	require.Equal(t, StateReleased, rec.State)
	require.Empty(t, te.resolver.resolutions())

	// A duplicate while still released is idempotent.
	out, err = te.Release(ctx, k, hashOf(2), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseDuplicate, out)

	// lnd replays the HTLC on the new stream: the engine resumes it and
	// persists that first.
	te.resolver.setOffered(k, true)
	d := te.Intercept(ctx, h)
	require.Equal(t, Decision{Action: ActionResume}, d)
	rec, _ = te.store.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Zero(t, te.Stats().HeldCount)
}

func TestReplayOfHeldKeepsHolding(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(9, 0)
	h := flagged(k, hashOf(9), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)
	writes := te.store.writeCount()

	for range 3 {
		require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)
	}
	require.Equal(t, writes, te.store.writeCount())
	require.Equal(t, 1, te.Stats().HeldCount)
	require.Equal(t, uint64(3), te.Stats().Decisions["hold_replayed"])
}

func TestReplayOfFinalStateRepeatsAnswer(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()

	resumed := flagged(key(3, 1), hashOf(3), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, resumed).Action)
	_, err := te.Release(ctx, resumed.Key, hashOf(3), "onion")
	require.NoError(t, err)

	failed := flagged(key(3, 2), hashOf(4), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, failed).Action)
	require.NoError(t, te.Fail(ctx, failed.Key))

	require.Equal(t, Decision{Action: ActionResume},
		te.Intercept(ctx, resumed))
	require.Equal(t, Decision{Action: ActionFail, Reason: FailManual},
		te.Intercept(ctx, failed))
}

func TestEarlyReleaseAppliesWhenHTLCArrives(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(4, 4)

	out, err := te.Release(ctx, k, hashOf(4), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseEarly, out)

	// An HTLC with the same key but another hash does not take it.
	other := flagged(key(4, 5), hashOf(4), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, other).Action)

	d := te.Intercept(ctx, flagged(k, hashOf(4), 10_000))
	require.Equal(t, Decision{Action: ActionResume}, d)
	rec, _ := te.store.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Equal(t, "onion", rec.ReleaseSource)
	require.Equal(t, 1, te.Stats().HeldCount)
}

func TestEarlyReleaseExpires(t *testing.T) {
	te := newTestEngine(t, func(p *Policy) {
		p.PendingReleaseTTL = time.Minute
	})
	ctx := context.Background()
	k := key(4, 6)
	out, err := te.Release(ctx, k, hashOf(6), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseEarly, out)

	te.clock.SetTime(testStart.Add(2 * time.Minute))
	require.Equal(t, ActionHold,
		te.Intercept(ctx, flagged(k, hashOf(6), 10_000)).Action)
}

func TestReleaseWithWrongHash(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(5, 5)
	require.Equal(t, ActionHold,
		te.Intercept(ctx, flagged(k, hashOf(5), 10_000)).Action)
	out, err := te.Release(ctx, k, hashOf(6), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMismatch, out)
	rec, _ := te.store.get(k)
	require.Equal(t, StateHeld, rec.State)
	require.Empty(t, te.resolver.resolutions())
}

func TestFailBackAtMarginBeforeAutoFail(t *testing.T) {
	te := newTestEngine(t, func(p *Policy) { p.FailbackMargin = 10 })
	ctx := context.Background()
	k := key(6, 1)
	h := flagged(k, hashOf(1), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)

	// One block before the fail-back height nothing happens.
	te.setHeight(t, startHeight+89)
	require.Empty(t, te.resolver.resolutions())

	te.setHeight(t, startHeight+90)
	require.Eventually(t, func() bool {
		return len(te.resolver.resolutions()) == 1
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, []resolution{{k, ActionFail}},
		te.resolver.resolutions())
	rec, _ := te.store.get(k)
	require.Equal(t, StateFailed, rec.State)
	require.Equal(t, string(FailExpiry), rec.FailReason)
	require.Less(t, te.Height(), h.AutoFailHeight)

	// A release that comes after the fail-back changes nothing.
	out, err := te.Release(ctx, k, hashOf(1), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseTooLate, out)
	require.Len(t, te.resolver.resolutions(), 1)
}

func TestFailBackOfUnofferedHTLCOnReplay(t *testing.T) {
	te := newTestEngine(t, func(p *Policy) { p.FailbackMargin = 10 })
	ctx := context.Background()
	k := key(6, 2)
	h := flagged(k, hashOf(2), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)

	te.resolver.setOffered(k, false)
	te.setHeight(t, startHeight+95)
	require.Eventually(t, func() bool {
		rec, _ := te.store.get(k)
		return rec.State == StateFailed
	}, 5*time.Second, time.Millisecond)
	require.Empty(t, te.resolver.resolutions())

	te.resolver.setOffered(k, true)
	require.Equal(t, Decision{Action: ActionFail, Reason: FailExpiry},
		te.Intercept(ctx, h))
}

func TestInterceptTooCloseToExpiryFailsAtOnce(t *testing.T) {
	te := newTestEngine(t, func(p *Policy) { p.FailbackMargin = 10 })
	ctx := context.Background()
	tests := []struct {
		name     string
		autoFail int32
		want     Action
	}{
		{"fail-back height equals height", startHeight + 10, ActionFail},
		{"below height", startHeight + 3, ActionFail},
		{"one block of room", startHeight + 11, ActionHold},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := flagged(key(8, uint64(i)), hashOf(8), 10_000)
			h.AutoFailHeight = tc.autoFail
			d := te.Intercept(ctx, h)
			require.Equal(t, tc.want, d.Action)
			_, stored := te.store.get(h.Key)
			require.Equal(t, tc.want == ActionHold, stored)
			if tc.want == ActionFail {
				require.Equal(t, FailExpiryMargin, d.Reason)
			}
		})
	}
}

func TestCaps(t *testing.T) {
	tests := []struct {
		name   string
		policy func(*Policy)
		// htlcs are (chan, amount); all on distinct htlc ids.
		htlcs []struct {
			chanID uint64
			amt    uint64
		}
		want []FailReason // "" = held
	}{
		{
			name:   "per-peer count",
			policy: func(p *Policy) { p.MaxHeldPerPeer = 2 },
			htlcs: []struct {
				chanID uint64
				amt    uint64
			}{{1, 1000}, {1, 1000}, {1, 1000}, {2, 1000}},
			want: []FailReason{"", "", FailCapPeerCount, ""},
		},
		{
			name: "per-peer msat",
			policy: func(p *Policy) {
				p.MaxHeldMsatPerPeer = 5000
			},
			htlcs: []struct {
				chanID uint64
				amt    uint64
			}{{1, 3000}, {1, 2000}, {1, 1}, {2, 5000}},
			want: []FailReason{"", "", FailCapPeerMsat, ""},
		},
		{
			name:   "total count",
			policy: func(p *Policy) { p.MaxHeldTotal = 3 },
			htlcs: []struct {
				chanID uint64
				amt    uint64
			}{{1, 1000}, {2, 1000}, {3, 1000}, {4, 1000}},
			want: []FailReason{"", "", "", FailCapTotal},
		},
		{
			name: "total msat",
			policy: func(p *Policy) {
				p.MaxHeldMsatTotal = 10_000
			},
			htlcs: []struct {
				chanID uint64
				amt    uint64
			}{{1, 6000}, {2, 4000}, {3, 1}},
			want: []FailReason{"", "", FailCapTotalMsat},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEngine(t, tc.policy)
			for i, h := range tc.htlcs {
				htlc := flagged(key(h.chanID, uint64(i)),
					hashOf(byte(i)), h.amt+1000)
				htlc.IncomingAmtMsat = h.amt
				d := te.Intercept(context.Background(), htlc)
				if tc.want[i] == "" {
					require.Equal(t, ActionHold, d.Action, i)
				} else {
					require.Equal(t, Decision{ActionFail,
						tc.want[i]}, d, i)
				}
			}
		})
	}
}

func TestCapFreedByRelease(t *testing.T) {
	te := newTestEngine(t, func(p *Policy) { p.MaxHeldTotal = 1 })
	ctx := context.Background()
	first := flagged(key(1, 1), hashOf(1), 10_000)
	second := flagged(key(1, 2), hashOf(2), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, first).Action)
	require.Equal(t, FailCapTotal, te.Intercept(ctx, second).Reason)

	_, err := te.Release(ctx, first.Key, hashOf(1), "onion")
	require.NoError(t, err)
	third := flagged(key(1, 3), hashOf(3), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, third).Action)
}

func TestMaxHoldTime(t *testing.T) {
	te := newTestEngine(t, func(p *Policy) {
		p.MaxHoldTime = 30 * time.Second
	})
	ctx := context.Background()
	k := key(2, 2)
	require.Equal(t, ActionHold,
		te.Intercept(ctx, flagged(k, hashOf(2), 10_000)).Action)
	rec, _ := te.store.get(k)
	require.Equal(t, testStart.Add(30*time.Second), rec.HoldDeadline)

	te.clock.SetTime(testStart.Add(29 * time.Second))
	require.Never(t, func() bool {
		return len(te.resolver.resolutions()) > 0
	}, 50*time.Millisecond, 5*time.Millisecond)

	te.clock.SetTime(testStart.Add(30 * time.Second))
	require.Eventually(t, func() bool {
		return len(te.resolver.resolutions()) == 1
	}, 5*time.Second, time.Millisecond)
	rec, _ = te.store.get(k)
	require.Equal(t, StateFailed, rec.State)
	require.Equal(t, string(FailMaxHoldTime), rec.FailReason)
}

func TestStoreErrorFailsBackWithoutHolding(t *testing.T) {
	te := newTestEngine(t, nil)
	te.store.failNext = errors.New("disk full")
	h := flagged(key(1, 1), hashOf(1), 10_000)
	d := te.Intercept(context.Background(), h)
	require.Equal(t, Decision{Action: ActionFail, Reason: FailStore}, d)
	require.Zero(t, te.Stats().HeldCount)
	_, ok := te.store.get(h.Key)
	require.False(t, ok)
}

func TestRestartLoadsActiveHTLCs(t *testing.T) {
	st := newFakeStore()
	ctx := context.Background()

	first := newTestEngineWith(t, st, nil)
	held := flagged(key(7, 1), hashOf(1), 11_000)
	released := flagged(key(7, 2), hashOf(2), 12_000)
	require.Equal(t, ActionHold, first.Intercept(ctx, held).Action)
	require.Equal(t, ActionHold, first.Intercept(ctx, released).Action)
	first.resolver.setOffered(released.Key, false)
	_, err := first.Release(ctx, released.Key, hashOf(2), "onion")
	require.NoError(t, err)

	second := newTestEngineWith(t, st, nil)
	stats := second.Stats()
	require.Equal(t, 2, stats.HeldCount)
	require.Equal(t, uint64(23_000), stats.HeldMsat)

	require.Equal(t, ActionHold, second.Intercept(ctx, held).Action)
	require.Equal(t, ActionResume, second.Intercept(ctx, released).Action)
	out, err := second.Release(ctx, held.Key, hashOf(1), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)
	require.Equal(t, []resolution{{held.Key, ActionResume}},
		second.resolver.resolutions())
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Policy)
		ok     bool
	}{
		{"default", func(*Policy) {}, true},
		{"no types", func(p *Policy) { p.HoldTypes = nil }, false},
		{"type below custom range", func(p *Policy) {
			p.HoldTypes = []uint64{2}
		}, false},
		{"zero margin", func(p *Policy) { p.FailbackMargin = 0 }, false},
		{"two-block margin", func(p *Policy) { p.FailbackMargin = 2 }, false},
		{"three-block margin", func(p *Policy) { p.FailbackMargin = 3 }, true},
		{"negative hold time", func(p *Policy) {
			p.MaxHoldTime = -time.Second
		}, false},
		{"zero pending TTL", func(p *Policy) {
			p.PendingReleaseTTL = 0
		}, false},
		{"ten-year hold time", func(p *Policy) {
			p.MaxHoldTime = MaxPolicyDuration
		}, true},
		{"hold time past what the store can write", func(p *Policy) {
			p.MaxHoldTime = 250 * 365 * 24 * time.Hour
		}, false},
		{"pending TTL past the bound", func(p *Policy) {
			p.PendingReleaseTTL = MaxPolicyDuration + time.Second
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			tc.mutate(&p)
			err := p.Validate()
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrInvalidPolicy)
			}
		})
	}
}

func TestStartFailsBackWhatExpiredWhileDown(t *testing.T) {
	st := newFakeStore()
	ctx := context.Background()
	first := newTestEngineWith(t, st, func(p *Policy) {
		p.FailbackMargin = 10
	})
	expired := flagged(key(9, 1), hashOf(1), 10_000)
	expired.AutoFailHeight = startHeight + 20
	alive := flagged(key(9, 2), hashOf(2), 10_000)
	require.Equal(t, ActionHold, first.Intercept(ctx, expired).Action)
	require.Equal(t, ActionHold, first.Intercept(ctx, alive).Action)

	// holdd comes back 15 blocks later: the first HTLC's fail-back
	// height (start+10) has passed.
	second := &testEngine{
		store:    st,
		resolver: newFakeResolver(),
		blocks:   newFakeBlocks(startHeight + 15),
		clock:    clock.NewTestClock(testStart),
		observer: &recordingObserver{},
	}
	second.resolver.setOffered(expired.Key, false)
	e, err := New(Config{Policy: first.Policy(), Store: st,
		Resolver: second.resolver, Blocks: second.blocks,
		Peers: fakePeers{}, Clock: second.clock, Logger: logrus.New()})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer func() { require.NoError(t, e.Stop()) }()

	require.Eventually(t, func() bool {
		rec, _ := st.get(expired.Key)
		return rec.State == StateFailed
	}, 5*time.Second, time.Millisecond)
	rec, _ := st.get(alive.Key)
	require.Equal(t, StateHeld, rec.State)
	require.Equal(t, 1, e.Stats().HeldCount)

	// lnd replays the expired one: it gets the stored failure.
	second.resolver.setOffered(expired.Key, true)
	require.Equal(t, Decision{Action: ActionFail, Reason: FailExpiry},
		e.Intercept(ctx, expired))
}

func TestOnChainOfferIsNeverAnswered(t *testing.T) {
	te := newTestEngine(t, func(p *Policy) { p.MaxHeldTotal = 1 })
	ctx := context.Background()
	h := flagged(key(3, 3), hashOf(3), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)

	// lnd re-offers it after the incoming channel was force-closed:
	// auto_fail_height is then the incoming expiry.
	onChain := h
	onChain.OnChain = true
	onChain.AutoFailHeight = int32(h.IncomingExpiry)
	require.Equal(t, Decision{Action: ActionHold},
		te.Intercept(ctx, onChain))
	rec, _ := te.store.get(h.Key)
	require.Equal(t, StateGone, rec.State)
	require.Zero(t, te.Stats().HeldCount)
	require.Empty(t, te.resolver.resolutions())

	// The cap it used is free again, and a release changes nothing.
	next := flagged(key(3, 4), hashOf(4), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, next).Action)
	out, err := te.Release(ctx, h.Key, hashOf(3), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseDuplicate, out)
	require.Empty(t, te.resolver.resolutions())

	// An on-chain pass-through HTLC is not resumed either.
	plain := flagged(key(3, 5), hashOf(5), 10_000)
	plain.CustomRecords, plain.OnChain = nil, true
	require.Equal(t, ActionHold, te.Intercept(ctx, plain).Action)
}

func TestHoldTypeChangeKeepsHeldHTLCsHeld(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	h := flagged(key(4, 1), hashOf(1), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)
	failed := flagged(key(4, 2), hashOf(2), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, failed).Action)
	require.NoError(t, te.Fail(ctx, failed.Key))

	p := te.Policy()
	p.HoldTypes = []uint64{65541}
	require.NoError(t, te.SetPolicy(p))

	// Replays still carry 75537, which no longer asks for a hold.
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)
	require.Equal(t, Decision{Action: ActionFail, Reason: FailManual},
		te.Intercept(ctx, failed))
	rec, _ := te.store.get(h.Key)
	require.Equal(t, StateHeld, rec.State)

	// A new HTLC with the old type passes through.
	fresh := flagged(key(4, 3), hashOf(3), 10_000)
	require.Equal(t, ActionResume, te.Intercept(ctx, fresh).Action)
	_, stored := te.store.get(fresh.Key)
	require.False(t, stored)
}

// TestReleaseRacingFirstInterceptIsApplied: an HTLC intercepted while a
// release for it is being stored (after the release found no record,
// before its pending row was written) waits for the release, as every
// decision about one key is serialized, and then meets it as an early
// release: it is resumed exactly once and the pending release is consumed.
func TestReleaseRacingFirstInterceptIsApplied(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	h := flagged(key(5, 9), hashOf(9), 10_000)

	decided := make(chan Decision, 1)
	te.store.beforePut = func() {
		te.store.beforePut = nil
		go func() { decided <- te.Intercept(ctx, h) }()
	}
	out, err := te.Release(ctx, h.Key, hashOf(9), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseEarly, out)
	require.Equal(t, Decision{Action: ActionResume}, <-decided)
	require.Empty(t, te.resolver.resolutions())
	rec, _ := te.store.get(h.Key)
	require.Equal(t, StateResumed, rec.State)
	require.Zero(t, te.store.pendingCount())
}

func TestShutdownDuringHoldAnswersNothing(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	te.store.failNext = context.Canceled
	h := flagged(key(6, 6), hashOf(6), 10_000)
	require.Equal(t, Decision{Action: ActionHold}, te.Intercept(ctx, h))
	_, stored := te.store.get(h.Key)
	require.False(t, stored)
	require.Zero(t, te.Stats().HeldCount)
}
