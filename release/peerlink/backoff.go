package peerlink

import (
	"math/rand/v2"
	"time"
)

// backoffDelay returns the wait before reconnect attempt number attempt
// (0-based): min*2^attempt capped at max, with "equal jitter" so that the
// wait is in [d/2, d]. The floor keeps a flapping lnd from being hammered;
// the jitter keeps restarts of several holdds apart. jitter(n) must return a
// value in [0, n).
func backoffDelay(attempt int, minB, maxB time.Duration,
	jitter func(n int64) int64) time.Duration {

	d := minB
	for i := 0; i < attempt && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)

	half := d / 2
	if half <= 0 {
		return d
	}

	return d - half + time.Duration(jitter(int64(half)+1))
}

// randJitter is the production jitter source.
func randJitter(n int64) int64 {
	return rand.Int64N(n)
}
