package plugin

import (
	"context"
	"testing"

	"github.com/holdd/holdd/store"
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
	require.Equal(t, store.StateReleased, rec.State)
	require.Empty(t, te.resolver.resolutions())

	te.resolver.setOffered(k, true)
	require.NoError(t, te.ResumeReleased(ctx, k))
	rec, _ = te.store.get(k)
	require.Equal(t, store.StateResumed, rec.State)
	require.Equal(t, []resolution{{k, ActionResume}},
		te.resolver.resolutions())

	// Resumed: a retry sends nothing more.
	require.ErrorIs(t, te.ResumeReleased(ctx, k), ErrUnknownHTLC)
	require.Len(t, te.resolver.resolutions(), 1)
	require.ErrorIs(t, te.ResumeReleased(ctx, key(1, 1)), ErrUnknownHTLC)
}
