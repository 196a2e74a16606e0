package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

func TestInsertHeldIdempotent(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	first := testHTLC(plugin.CircuitKey{ChanID: 9, HtlcID: 1}, t0)
	stored, inserted, err := s.InsertHeld(ctx, first)
	require.NoError(t, err)
	require.True(t, inserted)
	require.Equal(t, first, stored)

	replay := first
	replay.IncomingAmtMsat = 5
	replay.OutgoingAmtMsat = 4
	replay.FailbackHeight = 1
	replay.HeldAt = t0.Add(time.Hour)
	replay.UpdatedAt = replay.HeldAt

	stored, inserted, err = s.InsertHeld(ctx, replay)
	require.NoError(t, err)
	require.False(t, inserted)
	require.Equal(t, first, stored)

	got, err := s.GetHeld(ctx, first.Key)
	require.NoError(t, err)
	require.Equal(t, first, got)

	events, err := s.Events(ctx, first.Key)
	require.NoError(t, err)
	require.Equal(t, []plugin.StateChange{{Key: first.Key, To: plugin.StateHeld, At: t0}},
		events)
}

func TestInsertHeldValidation(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	key := plugin.CircuitKey{ChanID: 1, HtlcID: 1}

	tests := []struct {
		name   string
		mutate func(h *plugin.HeldHTLC)
	}{
		{"final state", func(h *plugin.HeldHTLC) { h.State = plugin.StateResumed }},
		{"released", func(h *plugin.HeldHTLC) { h.State = plugin.StateReleased }},
		{"unknown state", func(h *plugin.HeldHTLC) { h.State = "parked" }},
		{"no held at", func(h *plugin.HeldHTLC) { h.HeldAt = time.Time{} }},
		{"fail reason", func(h *plugin.HeldHTLC) { h.FailReason = "x" }},
		{"release source", func(h *plugin.HeldHTLC) { h.ReleaseSource = "x" }},
		{"released at", func(h *plugin.HeldHTLC) { h.ReleasedAt = t0 }},
		{"resolved at", func(h *plugin.HeldHTLC) { h.ResolvedAt = t0 }},
		{"deadline out of range", func(h *plugin.HeldHTLC) {
			h.HoldDeadline = time.Date(2300, 1, 1, 0, 0, 0, 0,
				time.UTC)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := testHTLC(key, t0)
			tc.mutate(&h)
			_, _, err := s.InsertHeld(ctx, h)
			require.ErrorIs(t, err, ErrInvalidArgument)
		})
	}

	_, err := s.GetHeld(ctx, key)
	require.ErrorIs(t, err, ErrNotFound)

	// Empty state means held; zero UpdatedAt means HeldAt.
	h := testHTLC(key, t0)
	h.State = ""
	h.UpdatedAt = time.Time{}
	stored, inserted, err := s.InsertHeld(ctx, h)
	require.NoError(t, err)
	require.True(t, inserted)
	require.Equal(t, plugin.StateHeld, stored.State)
	require.Equal(t, t0, stored.UpdatedAt)
}

func TestHeldHTLCRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	full := testHTLC(plugin.CircuitKey{ChanID: 1<<63 | 0x0102030405, HtlcID: math.MaxUint64}, t0)
	full.IncomingAmtMsat = math.MaxUint64
	full.OutgoingAmtMsat = 1 << 63
	full.IncomingExpiry = math.MaxUint32
	full.OutgoingExpiry = math.MaxUint32 - 1
	full.OutgoingChanID = math.MaxUint64 - 1
	full.AutoFailHeight = math.MaxInt32
	full.FailbackHeight = -1
	full.UpdatedAt = t0.Add(time.Nanosecond)

	zero := plugin.HeldHTLC{
		Key:    plugin.CircuitKey{},
		State:  plugin.StateHeld,
		HeldAt: time.Unix(0, 1).UTC(),
	}
	zeroWant := zero
	zeroWant.UpdatedAt = zero.HeldAt

	tests := []struct {
		name string
		in   plugin.HeldHTLC
		want plugin.HeldHTLC
	}{
		{"all fields at extremes", full, full},
		{"zero values stay zero", zero, zeroWant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored, inserted, err := s.InsertHeld(ctx, tc.in)
			require.NoError(t, err)
			require.True(t, inserted)
			require.Equal(t, tc.want, stored)

			got, err := s.GetHeld(ctx, tc.in.Key)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.True(t, got.HoldDeadline.IsZero() ==
				tc.in.HoldDeadline.IsZero())
			require.True(t, got.ReleasedAt.IsZero())
			require.True(t, got.ResolvedAt.IsZero())
		})
	}

	// The chan id with the top bit set is stored as big-endian bytes, not
	// truncated or sign-mangled.
	var chanID, outCh []byte
	var inAmt int64
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT chan_id,
		outgoing_chan_id, incoming_amt_msat FROM held_htlcs
		WHERE htlc_id = x'ffffffffffffffff'`).Scan(&chanID, &outCh, &inAmt))
	require.Equal(t, []byte{0x80, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05},
		chanID)
	require.Equal(t, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe},
		outCh)
	require.Equal(t, int64(-1), inAmt)
}

// reach drives key from held to state along the state machine.
func reach(t *testing.T, s *Store, key plugin.CircuitKey, state plugin.HoldState,
	at time.Time) {

	t.Helper()
	ctx := context.Background()

	paths := map[plugin.HoldState][]plugin.HoldState{
		plugin.StateHeld:     nil,
		plugin.StateReleased: {plugin.StateReleased},
		plugin.StateResumed:  {plugin.StateReleased, plugin.StateResumed},
		plugin.StateFailed:   {plugin.StateFailed},
		plugin.StateGone:     {plugin.StateGone},
	}
	_, _, err := s.InsertHeld(ctx, testHTLC(key, at))
	require.NoError(t, err)
	cur := plugin.StateHeld
	for i, next := range paths[state] {
		_, err := s.Transition(ctx, key, []plugin.HoldState{cur}, next,
			"setup", at.Add(time.Duration(i+1)*time.Second))
		require.NoError(t, err)
		cur = next
	}
}

func TestTransitionStateMachine(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	// Written out independently of the transitions table.
	allowed := map[[2]plugin.HoldState]bool{
		{plugin.StateHeld, plugin.StateReleased}:    true,
		{plugin.StateHeld, plugin.StateFailed}:      true,
		{plugin.StateHeld, plugin.StateGone}:        true,
		{plugin.StateReleased, plugin.StateResumed}: true,
		{plugin.StateReleased, plugin.StateFailed}:  true,
		{plugin.StateReleased, plugin.StateGone}:    true,
	}

	states := []plugin.HoldState{plugin.StateHeld, plugin.StateReleased, plugin.StateResumed,
		plugin.StateFailed, plugin.StateGone}
	at := t0.Add(time.Hour)
	var htlcID uint64
	for _, from := range states {
		for _, to := range states {
			htlcID++
			key := plugin.CircuitKey{ChanID: 100, HtlcID: htlcID}
			name := fmt.Sprintf("%s->%s", from, to)

			t.Run(name, func(t *testing.T) {
				require.Equal(t, allowed[[2]plugin.HoldState{from, to}],
					plugin.ValidTransition(from, to))

				reach(t, s, key, from, t0)
				before, err := s.GetHeld(ctx, key)
				require.NoError(t, err)
				require.Equal(t, from, before.State)

				got, err := s.Transition(ctx, key,
					[]plugin.HoldState{from}, to, "why", at)
				if !allowed[[2]plugin.HoldState{from, to}] {
					require.ErrorIs(t, err,
						plugin.ErrInvalidTransition)
					after, err := s.GetHeld(ctx, key)
					require.NoError(t, err)
					require.Equal(t, before, after)

					return
				}
				require.NoError(t, err)

				want := before
				want.State = to
				want.UpdatedAt = at
				switch to {
				case plugin.StateReleased:
					want.ReleaseSource = "why"
					want.ReleasedAt = at
				case plugin.StateFailed:
					want.FailReason = "why"
					want.ResolvedAt = at
				default:
					want.ResolvedAt = at
				}
				require.Equal(t, want, got)

				stored, err := s.GetHeld(ctx, key)
				require.NoError(t, err)
				require.Equal(t, want, stored)

				events, err := s.Events(ctx, key)
				require.NoError(t, err)
				require.Equal(t, plugin.StateChange{Key: key, From: from,
					To: to, Note: "why", At: at},
					events[len(events)-1])
			})
		}
	}
}

func TestTransitionErrors(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	released := plugin.CircuitKey{ChanID: 5, HtlcID: 1}
	reach(t, s, released, plugin.StateReleased, t0)
	before, err := s.GetHeld(ctx, released)
	require.NoError(t, err)

	tests := []struct {
		name        string
		key         plugin.CircuitKey
		from        []plugin.HoldState
		to          plugin.HoldState
		at          time.Time
		wantErr     error
		wantCurrent plugin.HoldState
	}{
		{
			name:        "compare-and-set mismatch",
			key:         released,
			from:        []plugin.HoldState{plugin.StateHeld},
			to:          plugin.StateFailed,
			at:          t0.Add(time.Minute),
			wantErr:     plugin.ErrInvalidTransition,
			wantCurrent: plugin.StateReleased,
		},
		{
			name:        "repeated release",
			key:         released,
			from:        []plugin.HoldState{plugin.StateHeld},
			to:          plugin.StateReleased,
			at:          t0.Add(time.Minute),
			wantErr:     plugin.ErrInvalidTransition,
			wantCurrent: plugin.StateReleased,
		},
		{
			name:    "edge not in machine",
			key:     released,
			from:    []plugin.HoldState{plugin.StateReleased},
			to:      plugin.StateHeld,
			at:      t0.Add(time.Minute),
			wantErr: plugin.ErrInvalidTransition,
		},
		{
			name:    "one bad edge among from",
			key:     released,
			from:    []plugin.HoldState{plugin.StateReleased, plugin.StateGone},
			to:      plugin.StateResumed,
			at:      t0.Add(time.Minute),
			wantErr: plugin.ErrInvalidTransition,
		},
		{
			name:    "unknown target",
			key:     released,
			from:    []plugin.HoldState{plugin.StateHeld},
			to:      "parked",
			at:      t0.Add(time.Minute),
			wantErr: plugin.ErrInvalidTransition,
		},
		{
			name:    "empty from",
			key:     released,
			to:      plugin.StateResumed,
			at:      t0.Add(time.Minute),
			wantErr: plugin.ErrInvalidTransition,
		},
		{
			name:    "zero time",
			key:     released,
			from:    []plugin.HoldState{plugin.StateReleased},
			to:      plugin.StateResumed,
			wantErr: ErrInvalidArgument,
		},
		{
			name:    "unknown key",
			key:     plugin.CircuitKey{ChanID: 5, HtlcID: 2},
			from:    []plugin.HoldState{plugin.StateHeld},
			to:      plugin.StateReleased,
			at:      t0.Add(time.Minute),
			wantErr: ErrNotFound,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Transition(ctx, tc.key, tc.from, tc.to,
				"n", tc.at)
			require.ErrorIs(t, err, tc.wantErr)

			var te *plugin.TransitionError
			if tc.wantCurrent != "" {
				require.ErrorAs(t, err, &te)
				require.Equal(t, tc.wantCurrent, te.Current)
				require.Contains(t, err.Error(),
					string(tc.wantCurrent))
			} else {
				require.False(t, errors.As(err, &te))
			}

			after, err := s.GetHeld(ctx, released)
			require.NoError(t, err)
			require.Equal(t, before, after)
		})
	}
}

func TestTransitionConcurrentCAS(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	key := plugin.CircuitKey{ChanID: 8, HtlcID: 8}
	reach(t, s, key, plugin.StateHeld, t0)

	const n = 10
	var (
		wg   sync.WaitGroup
		errs = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Transition(ctx, key,
				[]plugin.HoldState{plugin.StateHeld}, plugin.StateReleased,
				fmt.Sprint("src", i), t0.Add(time.Second))
		}()
	}
	wg.Wait()

	winners := 0
	for _, err := range errs {
		if err == nil {
			winners++
			continue
		}
		var te *plugin.TransitionError
		require.ErrorAs(t, err, &te)
		require.Equal(t, plugin.StateReleased, te.Current)
	}
	require.Equal(t, 1, winners)

	events, err := s.Events(ctx, key)
	require.NoError(t, err)
	require.Len(t, events, 2)
}

func TestListHTLCs(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	peerA := route.Vertex{0x02, 0xaa}
	peerB := route.Vertex{0x03, 0xbb}
	type spec struct {
		key   plugin.CircuitKey
		peer  route.Vertex
		held  time.Duration
		state plugin.HoldState
	}
	// Inserted out of order; the two at +0s share HeldAt and must come
	// out by unsigned chan id (1<<63 sorts after 5).
	specs := []spec{
		{plugin.CircuitKey{ChanID: 1 << 63, HtlcID: 0}, peerA, 0, plugin.StateHeld},
		{plugin.CircuitKey{ChanID: 5, HtlcID: 9}, peerB, 2 * time.Second, plugin.StateReleased},
		{plugin.CircuitKey{ChanID: 5, HtlcID: 1}, peerA, 0, plugin.StateResumed},
		{plugin.CircuitKey{ChanID: 5, HtlcID: 2}, peerA, 0, plugin.StateHeld},
		{plugin.CircuitKey{ChanID: 3, HtlcID: 3}, peerB, time.Second, plugin.StateGone},
		{plugin.CircuitKey{ChanID: 4, HtlcID: 4}, peerA, 3 * time.Second, plugin.StateFailed},
	}
	for _, sp := range specs {
		h := testHTLC(sp.key, t0.Add(sp.held))
		h.IncomingPeer = sp.peer
		_, _, err := s.InsertHeld(ctx, h)
		require.NoError(t, err)
		switch sp.state {
		case plugin.StateHeld:
		case plugin.StateResumed:
			_, err = s.Transition(ctx, sp.key,
				[]plugin.HoldState{plugin.StateHeld}, plugin.StateReleased, "",
				t0.Add(time.Hour))
			require.NoError(t, err)
			_, err = s.Transition(ctx, sp.key,
				[]plugin.HoldState{plugin.StateReleased}, plugin.StateResumed, "",
				t0.Add(time.Hour))
		default:
			_, err = s.Transition(ctx, sp.key,
				[]plugin.HoldState{plugin.StateHeld}, sp.state, "",
				t0.Add(time.Hour))
		}
		require.NoError(t, err)
	}

	keys := func(hs []plugin.HeldHTLC) []plugin.CircuitKey {
		out := []plugin.CircuitKey{}
		for _, h := range hs {
			out = append(out, h.Key)
		}
		return out
	}
	k := func(c, h uint64) plugin.CircuitKey { return plugin.CircuitKey{ChanID: c, HtlcID: h} }

	tests := []struct {
		name string
		f    plugin.ListFilter
		want []plugin.CircuitKey
	}{
		{
			name: "all",
			want: []plugin.CircuitKey{k(5, 1), k(5, 2), k(1<<63, 0),
				k(3, 3), k(5, 9), k(4, 4)},
		},
		{
			name: "active",
			f: plugin.ListFilter{States: []plugin.HoldState{plugin.StateHeld,
				plugin.StateReleased}},
			want: []plugin.CircuitKey{k(5, 2), k(1<<63, 0), k(5, 9)},
		},
		{
			name: "one state",
			f:    plugin.ListFilter{States: []plugin.HoldState{plugin.StateGone}},
			want: []plugin.CircuitKey{k(3, 3)},
		},
		{
			name: "peer",
			f:    plugin.ListFilter{Peer: &peerB},
			want: []plugin.CircuitKey{k(3, 3), k(5, 9)},
		},
		{
			name: "peer and state",
			f: plugin.ListFilter{Peer: &peerA,
				States: []plugin.HoldState{plugin.StateHeld}},
			want: []plugin.CircuitKey{k(5, 2), k(1<<63, 0)},
		},
		{
			name: "limit",
			f:    plugin.ListFilter{Limit: 2},
			want: []plugin.CircuitKey{k(5, 1), k(5, 2)},
		},
		{
			name: "no match",
			f: plugin.ListFilter{Peer: &route.Vertex{0x02},
				States: []plugin.HoldState{plugin.StateHeld}},
			want: []plugin.CircuitKey{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListHTLCs(ctx, tc.f)
			require.NoError(t, err)
			require.Equal(t, tc.want, keys(got))
			for _, h := range got {
				stored, err := s.GetHeld(ctx, h.Key)
				require.NoError(t, err)
				require.Equal(t, stored, h)
			}
		})
	}

	// The same ordering, computed independently from the inputs.
	sorted := append([]spec(nil), specs...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.held != b.held {
			return a.held < b.held
		}
		if a.key.ChanID != b.key.ChanID {
			return a.key.ChanID < b.key.ChanID
		}
		return a.key.HtlcID < b.key.HtlcID
	})
	all, err := s.ListHTLCs(ctx, plugin.ListFilter{})
	require.NoError(t, err)
	for i, sp := range sorted {
		require.Equal(t, sp.key, all[i].Key)
		require.Equal(t, sp.state, all[i].State)
	}

	_, err = s.ListHTLCs(ctx, plugin.ListFilter{States: []plugin.HoldState{"parked"}})
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestPruneResolved(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	held := plugin.CircuitKey{ChanID: 1, HtlcID: 1}
	failed := plugin.CircuitKey{ChanID: 1, HtlcID: 2}
	resumed := plugin.CircuitKey{ChanID: 1, HtlcID: 3}
	reach(t, s, held, plugin.StateHeld, t0)
	reach(t, s, failed, plugin.StateFailed, t0)                  // resolved t0+1s
	reach(t, s, resumed, plugin.StateResumed, t0.Add(time.Hour)) // +1h2s

	n, err := s.PruneResolved(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	_, err = s.GetHeld(ctx, failed)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Events(ctx, failed)
	require.ErrorIs(t, err, ErrNotFound)

	// The event rows went with the HTLC (foreign key cascade).
	var orphans int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM
		htlc_events WHERE htlc_id = ?`, u64Blob(2)).Scan(&orphans))
	require.Zero(t, orphans)

	n, err = s.PruneResolved(ctx, t0.Add(48*time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	_, err = s.GetHeld(ctx, held)
	require.NoError(t, err)
}

func TestConcurrentInsertHeld(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	const (
		workers = 8
		each    = 25
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := plugin.CircuitKey{ChanID: uint64(w + 1),
					HtlcID: uint64(i)}
				_, ok, err := s.InsertHeld(ctx, testHTLC(key, t0))
				if err == nil && !ok {
					err = fmt.Errorf("%v not inserted", key)
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	all, err := s.ListHTLCs(ctx, plugin.ListFilter{})
	require.NoError(t, err)
	require.Len(t, all, workers*each)
	for w := range workers {
		for i := range each {
			key := plugin.CircuitKey{ChanID: uint64(w + 1), HtlcID: uint64(i)}
			got, err := s.GetHeld(ctx, key)
			require.NoError(t, err)
			require.Equal(t, testHTLC(key, t0), got)
		}
	}
}
