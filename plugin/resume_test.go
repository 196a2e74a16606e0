package plugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReleasedResumesOnLinkActive checks that a released HTLC whose resume
// did not go out is resumed when the engine hears its incoming link is
// active once the resolver takes it, and that the event changes nothing
// for HTLCs in other states.
func TestReleasedResumesOnLinkActive(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(7, 3)
	h := flagged(k, hashOf(7), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)

	// Held, not released: nothing to resume.
	te.links.send(LinkEvent{ChanID: k.ChanID, Active: true})
	require.Empty(t, te.resolver.resolutions())

	// The resume does not go out: the HTLC stays released.
	te.resolver.setOffered(k, false)
	out, err := te.Release(ctx, k, hashOf(7), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)
	te.links.send(LinkEvent{ChanID: k.ChanID, Active: true})
	rec, _ := te.store.get(k)
	require.Equal(t, StateReleased, rec.State)
	require.Empty(t, te.resolver.resolutions())

	te.resolver.setOffered(k, true)
	te.links.send(LinkEvent{ChanID: k.ChanID, Active: true})
	rec, _ = te.store.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Equal(t, []resolution{{k, ActionResume}},
		te.resolver.resolutions())

	// Resumed: another event sends nothing more.
	te.links.send(LinkEvent{ChanID: k.ChanID, Active: true})
	require.Len(t, te.resolver.resolutions(), 1)
	_, active := te.Active(k)
	require.False(t, active)
}

// TestReleasedWaitsForIncomingLink: a release while the sender's channel
// is down keeps the HTLC released; a replay then (e.g. after holdd's
// interceptor stream reconnected) keeps holding it, since lnd would fail
// the forward; the HTLC is resumed exactly when the engine receives the
// event that the channel is active again, with no poll (the clock never
// moves).
func TestReleasedWaitsForIncomingLink(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()

	k := key(11, 4)
	h := flagged(k, hashOf(11), 20_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)

	te.links.setActive(k.ChanID, false)
	out, err := te.Release(ctx, k, hashOf(11), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)
	rec, _ := te.store.get(k)
	require.Equal(t, StateReleased, rec.State)
	require.Empty(t, te.resolver.resolutions())

	// A replay while the link is down: keep holding, stay released.
	require.Equal(t, Decision{Action: ActionHold}, te.Intercept(ctx, h))
	rec, _ = te.store.get(k)
	require.Equal(t, StateReleased, rec.State)

	// Another channel comes up, and this one's link goes down again:
	// nothing for this HTLC.
	te.links.send(LinkEvent{ChanID: 99, Active: true})
	te.links.send(LinkEvent{ChanID: k.ChanID, Active: false})
	require.Empty(t, te.resolver.resolutions())
	rec, _ = te.store.get(k)
	require.Equal(t, StateReleased, rec.State)

	// The sender is back.
	te.links.setActive(k.ChanID, true)
	te.links.send(LinkEvent{ChanID: k.ChanID, Active: true})
	rec, _ = te.store.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Equal(t, []resolution{{k, ActionResume}},
		te.resolver.resolutions())
	require.Equal(t, []EventKind{EventHeld, EventReleased, EventResumed},
		te.observer.kinds())
	require.Zero(t, te.Stats().HeldCount)
}

// TestReleasedOnInactiveLinkResumesOnReplayWhenActive: a released HTLC
// whose link came back while the engine missed the event is resumed when
// lnd replays it over the active link.
func TestReleasedOnInactiveLinkResumesOnReplayWhenActive(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(12, 1)
	h := flagged(k, hashOf(12), 20_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)

	te.links.setActive(k.ChanID, false)
	out, err := te.Release(ctx, k, hashOf(12), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)

	te.links.setActive(k.ChanID, true)
	require.Equal(t, Decision{Action: ActionResume}, te.Intercept(ctx, h))
	rec, _ := te.store.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Empty(t, te.resolver.resolutions())
}

// TestStoreCallsPerHTLC counts the store calls each decision makes: a new
// flagged HTLC is one read and one write; its release, two writes (the
// release first, the resume once lnd took it); a replay of an active
// HTLC, none; an HTLC whose release came first, one read and one write.
func TestStoreCallsPerHTLC(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(13, 1)
	h := flagged(k, hashOf(13), 10_000)

	diff := func(f func()) map[string]int {
		before := te.store.callCounts()
		f()
		out := make(map[string]int)
		for m, n := range te.store.callCounts() {
			if d := n - before[m]; d != 0 {
				out[m] = d
			}
		}
		return out
	}

	require.Equal(t, map[string]int{"LookupHTLC": 1, "InsertHeld": 1},
		diff(func() {
			require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)
		}))
	require.Empty(t, diff(func() {
		require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)
	}))
	require.Equal(t, map[string]int{"Transition": 2}, diff(func() {
		_, err := te.Release(ctx, k, hashOf(13), "onion")
		require.NoError(t, err)
	}))

	early := flagged(key(13, 2), hashOf(14), 10_000)
	require.Equal(t, map[string]int{"LookupHTLC": 1,
		"PutPendingRelease": 1}, diff(func() {
		out, err := te.Release(ctx, early.Key, hashOf(14), "onion")
		require.NoError(t, err)
		require.Equal(t, ReleaseEarly, out)
	}))
	require.Equal(t, map[string]int{"LookupHTLC": 1, "InsertReleased": 1},
		diff(func() {
			require.Equal(t, ActionResume,
				te.Intercept(ctx, early).Action)
		}))
	rec, _ := te.store.get(early.Key)
	require.Equal(t, StateResumed, rec.State)
	require.Zero(t, te.store.pendingCount())
}

// TestReleaseRacingLinkActiveResumes: the incoming link comes back while
// the release is being written. The Active event finds no released entry
// yet (the write has not returned), so the release itself must see the
// link active once its record is in place, or the HTLC would wait for its
// fail-back height although its sender and its recipient are both back.
func TestReleaseRacingLinkActiveResumes(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(21, 2)
	require.Equal(t, ActionHold,
		te.Intercept(ctx, flagged(k, hashOf(21), 10_000)).Action)

	te.links.setActive(k.ChanID, false)
	fired := false
	te.store.setBeforeWrite(func(method string, kk CircuitKey) {
		if fired || method != "Transition" || kk != k {
			return
		}
		fired = true
		te.links.setActive(k.ChanID, true)
		te.links.send(LinkEvent{ChanID: k.ChanID, Active: true})
	})

	out, err := te.Release(ctx, k, hashOf(21), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)
	require.True(t, fired)

	rec, _ := te.store.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Equal(t, []resolution{{k, ActionResume}},
		te.resolver.resolutions())
}
