package peerlink

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()

	const (
		minB = 100 * time.Millisecond
		maxB = time.Second
	)
	lowest := func(int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }

	tests := []struct {
		attempt int
		low     time.Duration
		high    time.Duration
	}{
		// base 100ms, 200ms, 400ms, 800ms, then capped at 1s.
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{2, 200 * time.Millisecond, 400 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{4, 500 * time.Millisecond, time.Second},
		{5, 500 * time.Millisecond, time.Second},
		// No overflow for absurd attempt counts.
		{1000, 500 * time.Millisecond, time.Second},
	}

	for _, tc := range tests {
		require.Equal(t, tc.low,
			backoffDelay(tc.attempt, minB, maxB, lowest),
			"attempt %d low", tc.attempt)
		require.Equal(t, tc.high,
			backoffDelay(tc.attempt, minB, maxB, highest),
			"attempt %d high", tc.attempt)

		for range 50 {
			d := backoffDelay(tc.attempt, minB, maxB, randJitter)
			require.GreaterOrEqual(t, d, tc.low)
			require.LessOrEqual(t, d, tc.high)
		}
	}

	// A zero-length backoff stays zero instead of panicking in rand.
	require.Zero(t, backoffDelay(3, 0, 0, randJitter))
	require.Equal(t, time.Duration(1), backoffDelay(0, 1, 1, randJitter))
}
