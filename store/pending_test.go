package store

import (
	"context"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/stretchr/testify/require"
)

func pendingFor(key plugin.CircuitKey, src string, recv time.Time,
	ttl time.Duration) plugin.PendingRelease {

	r := plugin.PendingRelease{
		Key:        key,
		Source:     src,
		ReceivedAt: recv,
		ExpiresAt:  recv.Add(ttl),
	}
	r.PaymentHash[0] = 0xee
	r.PaymentHash[31] = byte(key.HtlcID)

	return r
}

func TestPendingReleasePutTwiceTakeOnce(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	key := plugin.CircuitKey{ChanID: 1<<63 | 42, HtlcID: 7}
	first := pendingFor(key, "onion", t0, time.Minute)
	require.NoError(t, s.PutPendingRelease(ctx, first))

	// A retry of the same release inside its lifetime changes nothing.
	again := pendingFor(key, "manual", t0.Add(time.Second), time.Hour)
	require.NoError(t, s.PutPendingRelease(ctx, again))

	n, err := s.CountPendingReleases(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	// Another hash for the same key is a different release.
	other := first
	other.PaymentHash[5] = 0x55
	_, ok, err := s.TakePendingRelease(ctx, key, other.PaymentHash, t0)
	require.NoError(t, err)
	require.False(t, ok)

	got, ok, err := s.TakePendingRelease(ctx, key, first.PaymentHash,
		t0.Add(30*time.Second))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, first, got)

	_, ok, err = s.TakePendingRelease(ctx, key, first.PaymentHash,
		t0.Add(30*time.Second))
	require.NoError(t, err)
	require.False(t, ok)

	n, err = s.CountPendingReleases(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestPendingReleaseExpiry(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	key := plugin.CircuitKey{ChanID: 3, HtlcID: 1}
	r := pendingFor(key, "onion", t0, time.Minute)

	tests := []struct {
		name  string
		now   time.Time
		found bool
	}{
		{"at expiry", r.ExpiresAt, false},
		{"after expiry", r.ExpiresAt.Add(time.Hour), false},
		{"just before expiry", r.ExpiresAt.Add(-time.Nanosecond), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, s.PutPendingRelease(ctx, r))
			got, ok, err := s.TakePendingRelease(ctx, key,
				r.PaymentHash, tc.now)
			require.NoError(t, err)
			require.Equal(t, tc.found, ok)
			if ok {
				require.Equal(t, r, got)
			} else {
				require.Equal(t, plugin.PendingRelease{}, got)
			}
		})
	}

	// An expired release is replaced by a new one for the same HTLC.
	require.NoError(t, s.PutPendingRelease(ctx, r))
	late := pendingFor(key, "manual", r.ExpiresAt.Add(time.Second),
		time.Minute)
	require.NoError(t, s.PutPendingRelease(ctx, late))
	got, ok, err := s.TakePendingRelease(ctx, key, r.PaymentHash,
		late.ReceivedAt)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, late, got)
}

func TestPrunePendingReleases(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	for i, ttl := range []time.Duration{time.Minute, 2 * time.Minute,
		time.Hour} {

		r := pendingFor(plugin.CircuitKey{ChanID: 9, HtlcID: uint64(i)}, "onion",
			t0, ttl)
		require.NoError(t, s.PutPendingRelease(ctx, r))
	}

	tests := []struct {
		now        time.Time
		wantPruned int64
		wantLeft   int64
	}{
		{t0.Add(30 * time.Second), 0, 3},
		{t0.Add(2 * time.Minute), 2, 1},
		{t0.Add(2 * time.Minute), 0, 1},
		{t0.Add(2 * time.Hour), 1, 0},
	}
	for _, tc := range tests {
		n, err := s.PrunePendingReleases(ctx, tc.now)
		require.NoError(t, err)
		require.Equal(t, tc.wantPruned, n)
		left, err := s.CountPendingReleases(ctx)
		require.NoError(t, err)
		require.Equal(t, tc.wantLeft, left)
	}
}

func TestPutPendingReleaseValidation(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	key := plugin.CircuitKey{ChanID: 1, HtlcID: 1}

	tests := []struct {
		name string
		r    plugin.PendingRelease
	}{
		{"no times", plugin.PendingRelease{Key: key}},
		{"no expiry", plugin.PendingRelease{Key: key, ReceivedAt: t0}},
		{"expires at receipt", pendingFor(key, "onion", t0, 0)},
		{"expires before receipt", pendingFor(key, "onion", t0,
			-time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.PutPendingRelease(ctx, tc.r)
			require.ErrorIs(t, err, ErrInvalidArgument)
		})
	}
	n, err := s.CountPendingReleases(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestLookupHTLC checks that one lookup returns the stored record, or,
// when there is none, the unexpired pending release for the key and hash.
func TestLookupHTLC(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	key := plugin.CircuitKey{ChanID: 3, HtlcID: 4}
	h := testHTLC(key, t0)

	l, err := s.LookupHTLC(ctx, key, h.PaymentHash, t0)
	require.NoError(t, err)
	require.Equal(t, plugin.HTLCLookup{}, l)

	p := pendingFor(key, "onion", t0, time.Minute)
	require.NoError(t, s.PutPendingRelease(ctx, p))
	l, err = s.LookupHTLC(ctx, key, p.PaymentHash, t0.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, plugin.HTLCLookup{Pending: p, HasPending: true}, l)

	// Another hash, or an expired release: none.
	l, err = s.LookupHTLC(ctx, key, h.PaymentHash, t0)
	require.NoError(t, err)
	require.False(t, l.HasPending)
	l, err = s.LookupHTLC(ctx, key, p.PaymentHash, t0.Add(time.Minute))
	require.NoError(t, err)
	require.False(t, l.HasPending)

	_, _, err = s.InsertHeld(ctx, h)
	require.NoError(t, err)
	l, err = s.LookupHTLC(ctx, key, h.PaymentHash, t0)
	require.NoError(t, err)
	require.Equal(t, plugin.HTLCLookup{HTLC: h, Found: true}, l)
}

// TestInsertReleased checks that an HTLC whose release came first is
// stored held, released and resumed in one write, with an event for each
// step, and that the release is consumed; a second insert changes nothing.
func TestInsertReleased(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	key := plugin.CircuitKey{ChanID: 5, HtlcID: 6}
	p := pendingFor(key, "onion", t0, time.Minute)
	require.NoError(t, s.PutPendingRelease(ctx, p))
	h := testHTLC(key, t0)
	h.PaymentHash = p.PaymentHash
	at := t0.Add(time.Second)

	stored, inserted, err := s.InsertReleased(ctx, h, p, at)
	require.NoError(t, err)
	require.True(t, inserted)
	want := h
	want.State = plugin.StateResumed
	want.ReleaseSource = "onion"
	want.UpdatedAt, want.ReleasedAt, want.ResolvedAt = at, at, at
	require.Equal(t, want, stored)

	got, err := s.GetHeld(ctx, key)
	require.NoError(t, err)
	require.Equal(t, want, got)

	events, err := s.Events(ctx, key)
	require.NoError(t, err)
	require.Equal(t, []plugin.StateChange{
		{Key: key, To: plugin.StateHeld, At: t0},
		{Key: key, From: plugin.StateHeld, To: plugin.StateReleased, Note: "onion",
			At: at},
		{Key: key, From: plugin.StateReleased, To: plugin.StateResumed, At: at},
	}, events)

	n, err := s.CountPendingReleases(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	again, inserted, err := s.InsertReleased(ctx, h, p, at.Add(time.Hour))
	require.NoError(t, err)
	require.False(t, inserted)
	require.Equal(t, want, again)

	// A release for another HTLC is refused.
	other := p
	other.PaymentHash[3] = 0x33
	_, _, err = s.InsertReleased(ctx, testHTLC(plugin.CircuitKey{ChanID: 5,
		HtlcID: 7}, t0), other, at)
	require.ErrorIs(t, err, ErrInvalidArgument)
}
