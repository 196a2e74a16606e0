package plugin

import (
	"sync"
	"sync/atomic"
)

// counters counts decisions and release outcomes by name.
type counters struct {
	// passes counts the "pass" decision, made for every forward that is
	// not held: an atomic, so that concurrent forwards do not meet on
	// the mutex.
	passes atomic.Uint64

	mu        sync.Mutex
	decisions map[string]uint64
	releases  map[string]uint64
}

func newCounters() *counters {
	return &counters{
		decisions: make(map[string]uint64),
		releases:  make(map[string]uint64),
	}
}

func (c *counters) decision(name string) {
	c.mu.Lock()
	c.decisions[name]++
	c.mu.Unlock()
}

func (c *counters) pass() {
	c.passes.Add(1)
}

func (c *counters) release(name string) {
	c.mu.Lock()
	c.releases[name]++
	c.mu.Unlock()
}

// Stats is a snapshot of what the engine holds and has decided.
type Stats struct {
	HeldCount int
	HeldMsat  uint64
	Decisions map[string]uint64
	Releases  map[string]uint64
}

// Stats returns a snapshot.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	s := Stats{HeldCount: e.total.count, HeldMsat: e.total.msat}
	e.mu.Unlock()

	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	s.Decisions = make(map[string]uint64, len(e.stats.decisions))
	for k, v := range e.stats.decisions {
		s.Decisions[k] = v
	}
	if n := e.stats.passes.Load(); n > 0 {
		s.Decisions["pass"] += n
	}
	s.Releases = make(map[string]uint64, len(e.stats.releases))
	for k, v := range e.stats.releases {
		s.Releases[k] = v
	}
	return s
}

// Active returns the record of an active HTLC.
func (e *Engine) Active(key CircuitKey) (HeldHTLC, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.active[key]
	if !ok {
		return HeldHTLC{}, false
	}
	return ent.rec, true
}
