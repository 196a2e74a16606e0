package plugin

import (
	"context"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/stretchr/testify/require"
)

func TestPathExpiryFormula(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 250_000_000, time.UTC)
	// Rounded down to the second, plus one.
	at := func(d time.Duration) time.Time {
		return now.Add(d).Truncate(time.Second).Add(time.Second)
	}
	day := 24 * time.Hour
	tests := []struct {
		name     string
		height   int32
		failback int32
		interval time.Duration
		maxLife  time.Duration
		deadline time.Time
		want     time.Time
	}{
		{"two weeks of blocks", 800_000, 802_016,
			DefaultPathBlockInterval, 0, time.Time{},
			at(2016 * 20 * time.Minute)},
		{"one block", 800_000, 800_001, DefaultPathBlockInterval, 0,
			time.Time{}, at(20 * time.Minute)},
		{"other interval", 100, 110, time.Minute, 0, time.Time{},
			at(10 * time.Minute)},
		{"hold deadline earlier", 800_000, 802_016,
			DefaultPathBlockInterval, 0, now.Add(day), at(day)},
		{"hold deadline later", 800_000, 800_010,
			DefaultPathBlockInterval, 0, now.Add(day),
			at(200 * time.Minute)},
		{"max life earlier", 800_000, 802_016,
			DefaultPathBlockInterval, 7 * day, time.Time{},
			at(7 * day)},
		{"max life later", 800_000, 800_010,
			DefaultPathBlockInterval, 7 * day, time.Time{},
			at(200 * time.Minute)},
		{"absurd auto-fail height", 0, 1 << 30,
			DefaultPathBlockInterval, 0, time.Time{},
			at(maxPathBlocks * 20 * time.Minute)},
		{"fail-back not above height", 900, 800,
			DefaultPathBlockInterval, 0, time.Time{}, at(0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PathExpiry(now, tc.height, tc.failback,
				tc.interval, tc.maxLife, tc.deadline)
			require.True(t, tc.want.Equal(got), "got %v want %v",
				got, tc.want)
		})
	}
}

// longHold is a flagged HTLC whose fail-back height is 2016 blocks (two
// weeks of 10-minute blocks) above the start height.
func longHold(k CircuitKey, hash lntypes.Hash) HTLC {
	h := flagged(k, hash, 20_000)
	h.AutoFailHeight = startHeight + 2016 + DefaultPolicy().FailbackMargin
	h.IncomingExpiry = uint32(h.AutoFailHeight) + 19
	return h
}

// TestHeldPathsOutlastFailback: the release paths of a held HTLC work until
// its fail-back height even if blocks come twice as slowly as intended,
// not just for 7 days.
func TestHeldPathsOutlastFailback(t *testing.T) {
	te := newTestEngine(t, nil)
	k := key(3, 1)
	require.Equal(t, ActionHold,
		te.Intercept(context.Background(), longHold(k, hashOf(3))).Action)

	rec, ok := te.store.get(k)
	require.True(t, ok)
	require.Equal(t, int32(startHeight+2016), rec.FailbackHeight)
	require.Equal(t, testStart.Add(2016*20*time.Minute+time.Second),
		rec.PathExpiresAt)
	require.Greater(t, rec.PathExpiresAt.Sub(rec.HeldAt),
		2*2016*10*time.Minute-time.Second)
}

// TestPathExpiryFailsHeldHTLCBack: when blocks come so slowly that the
// paths of a held HTLC expire before its fail-back height, the engine fails
// it back at the expiry (nobody could release it after), counts it and
// leaves a released HTLC alone.
func TestPathExpiryFailsHeldHTLCBack(t *testing.T) {
	te := newTestEngineWith(t, newFakeStore(), nil, func(c *Config) {
		c.MaxPathLife = 7 * 24 * time.Hour
	})
	ctx := context.Background()
	held, released := key(4, 1), key(4, 2)
	require.Equal(t, ActionHold,
		te.Intercept(ctx, longHold(held, hashOf(4))).Action)
	require.Equal(t, ActionHold,
		te.Intercept(ctx, longHold(released, hashOf(5))).Action)

	// The sender released the second while its channel was inactive:
	// it waits for the sender, and needs no path any more.
	te.resolver.setOffered(released, false)
	out, err := te.Release(ctx, released, hashOf(5), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)

	rec, _ := te.store.get(held)
	expiry := rec.PathExpiresAt
	require.Equal(t, testStart.Add(7*24*time.Hour+time.Second), expiry)

	// A few blocks in a week: far from the fail-back height.
	te.setHeight(t, startHeight+10)
	te.clock.SetTime(expiry.Add(-time.Second))
	require.Never(t, func() bool {
		return len(te.resolver.resolutions()) > 0
	}, 50*time.Millisecond, 5*time.Millisecond)

	te.clock.SetTime(expiry)
	require.Eventually(t, func() bool {
		return len(te.resolver.resolutions()) == 1
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, []resolution{{held, ActionFail}},
		te.resolver.resolutions())
	rec, _ = te.store.get(held)
	require.Equal(t, StateFailed, rec.State)
	require.Equal(t, string(FailPathExpired), rec.FailReason)
	require.Equal(t, uint64(1), te.Stats().Decisions["fail_path_expired"])

	rec, _ = te.store.get(released)
	require.Equal(t, StateReleased, rec.State)
	require.Equal(t, 1, te.Stats().HeldCount)

	// Ticks after the expiry change nothing more.
	te.clock.SetTime(expiry.Add(time.Hour))
	require.Never(t, func() bool {
		return len(te.resolver.resolutions()) > 1
	}, 50*time.Millisecond, 5*time.Millisecond)
}

// TestPathExpiryAfterRestart: an HTLC loaded from the store whose paths
// expired while holdd was down is failed back on the first tick.
func TestPathExpiryAfterRestart(t *testing.T) {
	st := newFakeStore()
	k := key(6, 1)
	rec := HeldHTLC{
		Key:             k,
		PaymentHash:     hashOf(6),
		IncomingAmtMsat: 30_000,
		AutoFailHeight:  startHeight + 2028,
		FailbackHeight:  startHeight + 2016,
		State:           StateHeld,
		HeldAt:          testStart.Add(-8 * 24 * time.Hour),
		PathExpiresAt:   testStart.Add(-24 * time.Hour),
	}
	_, _, err := st.InsertHeld(context.Background(), rec)
	require.NoError(t, err)

	te := newTestEngineWith(t, st, nil)
	// The tick loop may not wait on the clock yet: keep it moving.
	now := testStart
	require.Eventually(t, func() bool {
		now = now.Add(time.Second)
		te.clock.SetTime(now)
		got, _ := st.get(k)
		return got.State == StateFailed
	}, 5*time.Second, time.Millisecond)
	got, _ := st.get(k)
	require.Equal(t, string(FailPathExpired), got.FailReason)
	require.Zero(t, te.Stats().HeldCount)
}
