package plugin

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/clock"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// TestResumeReleasedRetries checks that a released HTLC whose resume did
// not go out is resumed by ResumeReleased once the resolver takes it, and
// that ResumeReleased changes nothing for HTLCs in other states.
func TestResumeReleasedRetries(t *testing.T) {
	te := newTestEngine(t, nil)
	ctx := context.Background()
	k := key(7, 3)
	h := flagged(k, hashOf(7), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)

	// Held, not released: nothing to resume.
	require.NoError(t, te.ResumeReleased(ctx, k))
	require.Empty(t, te.resolver.resolutions())

	// The resume does not go out: the HTLC stays released.
	te.resolver.setOffered(k, false)
	out, err := te.Release(ctx, k, hashOf(7), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)
	require.NoError(t, te.ResumeReleased(ctx, k))
	rec, _ := te.store.get(k)
	require.Equal(t, StateReleased, rec.State)
	require.Empty(t, te.resolver.resolutions())

	te.resolver.setOffered(k, true)
	require.NoError(t, te.ResumeReleased(ctx, k))
	rec, _ = te.store.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Equal(t, []resolution{{k, ActionResume}},
		te.resolver.resolutions())

	// Resumed: a retry sends nothing more.
	require.ErrorIs(t, te.ResumeReleased(ctx, k), ErrUnknownHTLC)
	require.Len(t, te.resolver.resolutions(), 1)
	require.ErrorIs(t, te.ResumeReleased(ctx, key(1, 1)), ErrUnknownHTLC)
}

// linkAwareResolver is a fakeResolver that knows which incoming channels
// are inactive, as cmd/holdd's resolver learns from lnd.
type linkAwareResolver struct {
	*fakeResolver

	mu       sync.Mutex
	inactive map[uint64]bool
}

func (r *linkAwareResolver) setInactive(chanID uint64, inactive bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inactive[chanID] = inactive
}

func (r *linkAwareResolver) IncomingInactive(_ context.Context,
	key CircuitKey) bool {

	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inactive[key.ChanID]
}

func (r *linkAwareResolver) Resume(ctx context.Context,
	key CircuitKey) error {

	if r.IncomingInactive(ctx, key) {
		return ErrIncomingInactive
	}
	return r.fakeResolver.Resume(ctx, key)
}

// TestReleasedWaitsForIncomingLink: a release while the sender's channel
// is down keeps the HTLC released; a replay then (e.g. after holdd's
// interceptor stream reconnected) keeps holding it, since lnd would fail
// the forward; once the channel is back, ResumeReleased resumes it.
func TestReleasedWaitsForIncomingLink(t *testing.T) {
	resolver := &linkAwareResolver{fakeResolver: newFakeResolver(),
		inactive: make(map[uint64]bool)}
	st := newFakeStore()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	e, err := New(Config{
		Policy: DefaultPolicy(), Store: st, Resolver: resolver,
		Peers: fakePeers{}, Blocks: newFakeBlocks(startHeight),
		Clock: clock.NewTestClock(testStart), Logger: logger,
		TickInterval: time.Second,
	})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() { require.NoError(t, e.Stop()) })

	k := key(11, 4)
	h := flagged(k, hashOf(11), 20_000)
	require.Equal(t, ActionHold, e.Intercept(ctx, h).Action)

	resolver.setInactive(k.ChanID, true)
	out, err := e.Release(ctx, k, hashOf(11), "onion")
	require.NoError(t, err)
	require.Equal(t, ReleaseMatched, out)
	rec, _ := st.get(k)
	require.Equal(t, StateReleased, rec.State)

	// A replay while the link is down: keep holding, stay released.
	require.Equal(t, Decision{Action: ActionHold}, e.Intercept(ctx, h))
	rec, _ = st.get(k)
	require.Equal(t, StateReleased, rec.State)
	require.NoError(t, e.ResumeReleased(ctx, k))
	require.Empty(t, resolver.resolutions())

	// The sender is back.
	resolver.setInactive(k.ChanID, false)
	require.NoError(t, e.ResumeReleased(ctx, k))
	rec, _ = st.get(k)
	require.Equal(t, StateResumed, rec.State)
	require.Equal(t, []resolution{{k, ActionResume}},
		resolver.resolutions())
}
