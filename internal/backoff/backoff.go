// Package backoff owns holdd's one retry-delay rule: exponential growth from
// a floor to a cap, optionally with "equal jitter". Every reconnect and
// resubscribe loop (interceptor, mailbox peers, custom-message transport,
// peer link, lnd adapters) uses it with its own floor and cap.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exponential returns the wait before attempt number attempt (0-based):
// minD*2^attempt capped at maxD. It never overflows, however large attempt
// is.
func Exponential(attempt int, minD, maxD time.Duration) time.Duration {
	d := minD
	for i := 0; i < attempt && d < maxD; i++ {
		d *= 2
	}

	return min(d, maxD)
}

// Next returns the wait after d for a loop that keeps its current wait:
// twice d, capped at maxD.
func Next(d, maxD time.Duration) time.Duration {
	return min(2*d, maxD)
}

// EqualJitter returns a wait in [d - d/2, d] ("equal jitter"): the floor
// keeps a flapping peer from being hammered, the jitter keeps restarts of
// several holdds apart. rnd(n) must return a value in [0, n).
func EqualJitter(d time.Duration, rnd func(n int64) int64) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}

	return d - half + time.Duration(rnd(int64(half)+1))
}

// Jittered is EqualJitter of Exponential(attempt, minD, maxD).
func Jittered(attempt int, minD, maxD time.Duration,
	rnd func(n int64) int64) time.Duration {

	return EqualJitter(Exponential(attempt, minD, maxD), rnd)
}

// RandJitter is the production jitter source for EqualJitter and Jittered.
func RandJitter(n int64) int64 {
	return rand.Int64N(n)
}
