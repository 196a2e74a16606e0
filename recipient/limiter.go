package recipient

import (
	"sync"
	"time"
)

// maxLimitedPaths bounds the limiter's memory; past it, the entries that
// are full again (idle for a whole burst) are forgotten first.
const maxLimitedPaths = 4096

// pathLimiter is a token bucket per receive path.
type pathLimiter struct {
	burst    float64
	interval time.Duration

	mu      sync.Mutex
	buckets map[[8]byte]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newPathLimiter(burst int, interval time.Duration) *pathLimiter {
	return &pathLimiter{
		burst:    float64(burst),
		interval: interval,
		buckets:  make(map[[8]byte]*bucket),
	}
}

func (l *pathLimiter) allow(id [8]byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()

	b, ok := l.buckets[id]
	if !ok {
		if len(l.buckets) >= maxLimitedPaths {
			l.evictFull(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[id] = b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(l.burst,
			b.tokens+float64(elapsed)/float64(l.interval))
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// evictFull drops buckets that have refilled: forgetting them changes no
// decision.
func (l *pathLimiter) evictFull(now time.Time) {
	full := time.Duration(l.burst) * l.interval
	for id, b := range l.buckets {
		if now.Sub(b.at) >= full {
			delete(l.buckets, id)
		}
	}
}

func (l *pathLimiter) forget(id [8]byte) {
	l.mu.Lock()
	delete(l.buckets, id)
	l.mu.Unlock()
}
