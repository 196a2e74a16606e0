package keyedlimit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_800_000_000, 0)

func TestBurstThenRate(t *testing.T) {
	t.Parallel()

	l := New[string](3, time.Second, 10)
	for range 3 {
		require.True(t, l.Allow("a", t0))
	}
	require.False(t, l.Allow("a", t0))
	// Other keys have their own bucket.
	require.True(t, l.Allow("b", t0))

	require.False(t, l.Allow("a", t0.Add(999*time.Millisecond)))
	require.True(t, l.Allow("a", t0.Add(time.Second)))
	require.False(t, l.Allow("a", t0.Add(time.Second)))

	// Idle long enough, the bucket is full again, not fuller.
	later := t0.Add(time.Hour)
	for range 3 {
		require.True(t, l.Allow("a", later))
	}
	require.False(t, l.Allow("a", later))

	l.Forget("a")
	require.True(t, l.Allow("a", later))
}

// TestBoundedKeys: the limiter never remembers more than maxKeys keys.
// Refilled buckets go first and change nothing; with none refilled the
// one idle longest goes.
func TestBoundedKeys(t *testing.T) {
	t.Parallel()

	l := New[int](2, time.Second, 3)
	for k := range 3 {
		require.True(t, l.Allow(k, t0.Add(time.Duration(k)*
			time.Millisecond)))
	}
	require.Equal(t, 3, l.Len())

	// Nothing refilled: key 0, idle longest, is forgotten.
	now := t0.Add(10 * time.Millisecond)
	require.True(t, l.Allow(3, now))
	require.Equal(t, 3, l.Len())
	require.True(t, l.Allow(1, now))
	require.False(t, l.Allow(1, now), "key 1 kept its spent bucket")

	// A flood of new keys stays bounded.
	for k := 100; k < 10_000; k++ {
		l.Allow(k, now)
	}
	require.Equal(t, 3, l.Len())

	// Everything refilled: all of it may go, none is over-counted.
	much := now.Add(time.Hour)
	require.True(t, l.Allow(-1, much))
	require.LessOrEqual(t, l.Len(), 3)
}
