// Package keyedlimit is a token bucket per key (a peer, a path) with a
// bound on how many keys it remembers, for rate limits on input from the
// network where the keys are chosen by whoever sends.
package keyedlimit

import (
	"sync"
	"time"
)

// Limiter allows Burst events per key at once, then one per Interval.
type Limiter[K comparable] struct {
	burst    float64
	interval time.Duration
	maxKeys  int

	mu      sync.Mutex
	buckets map[K]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a limiter that remembers at most maxKeys keys (at least 1).
// Past that, the keys whose bucket has refilled are forgotten first, which
// changes no decision; if none has, the one idle longest is, which hands
// it a fresh burst. burst is at least 1.
func New[K comparable](burst int, interval time.Duration,
	maxKeys int) *Limiter[K] {

	return &Limiter[K]{
		burst:    float64(max(burst, 1)),
		interval: interval,
		maxKeys:  max(maxKeys, 1),
		buckets:  make(map[K]*bucket),
	}
}

// Allow takes a token from key's bucket at now, if it has one.
func (l *Limiter[K]) Allow(key K, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()

	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		if l.interval > 0 {
			b.tokens = min(l.burst,
				b.tokens+float64(elapsed)/float64(l.interval))
		} else {
			b.tokens = l.burst
		}
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--

	return true
}

// Forget drops key's bucket.
func (l *Limiter[K]) Forget(key K) {
	l.mu.Lock()
	delete(l.buckets, key)
	l.mu.Unlock()
}

// Len is how many keys the limiter remembers.
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()

	return len(l.buckets)
}

// evict makes room for one key. The caller holds mu.
func (l *Limiter[K]) evict(now time.Time) {
	full := time.Duration(l.burst) * l.interval
	var (
		oldest    K
		oldestAt  time.Time
		haveOlder bool
	)
	for k, b := range l.buckets {
		if now.Sub(b.at) >= full {
			delete(l.buckets, k)
			continue
		}
		if !haveOlder || b.at.Before(oldestAt) {
			oldest, oldestAt, haveOlder = k, b.at, true
		}
	}
	if len(l.buckets) >= l.maxKeys && haveOlder {
		delete(l.buckets, oldest)
	}
}
