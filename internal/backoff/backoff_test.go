package backoff

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJittered(t *testing.T) {
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
			Jittered(tc.attempt, minB, maxB, lowest),
			"attempt %d low", tc.attempt)
		require.Equal(t, tc.high,
			Jittered(tc.attempt, minB, maxB, highest),
			"attempt %d high", tc.attempt)

		for range 50 {
			d := Jittered(tc.attempt, minB, maxB, RandJitter)
			require.GreaterOrEqual(t, d, tc.low)
			require.LessOrEqual(t, d, tc.high)
		}
	}

	// A zero-length backoff stays zero instead of panicking in rand.
	require.Zero(t, Jittered(3, 0, 0, RandJitter))
	require.Equal(t, time.Duration(1), Jittered(0, 1, 1, RandJitter))
}

func TestExponential(t *testing.T) {
	tests := []struct {
		attempt  int
		min, max time.Duration
		want     time.Duration
	}{
		{0, time.Second, 8 * time.Second, time.Second},
		{1, time.Second, 8 * time.Second, 2 * time.Second},
		{3, time.Second, 8 * time.Second, 8 * time.Second},
		{4, time.Second, 8 * time.Second, 8 * time.Second},
		{1000, time.Second, 8 * time.Second, 8 * time.Second},
		{2, 3 * time.Second, 10 * time.Second, 10 * time.Second},
		{5, time.Second, time.Second, time.Second},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want,
			Exponential(tc.attempt, tc.min, tc.max),
			"attempt %d", tc.attempt)
	}
}
