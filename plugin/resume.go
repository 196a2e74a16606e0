package plugin

import (
	"context"
	"sync"
)

// LinkEvent says that an incoming channel's link went up or down.
type LinkEvent struct {
	// ChanID is the channel's short channel id; 0 when the source cannot
	// name it, or after a gap in the source's view (e.g. a
	// re-subscription), after which any link may have come up.
	ChanID uint64
	Active bool
}

// LinkSource is the engine's view of lnd's links, an input like blocks
// and ticks: a released HTLC is resumed only while its incoming link is
// active (see mayResume in decide.go), and the engine resumes it when it
// hears the link is back.
type LinkSource interface {
	// SubscribeLinks streams link changes until ctx ends.
	SubscribeLinks(ctx context.Context) (<-chan LinkEvent, error)

	// LinkActive reports whether channel chanID (real or alias short
	// channel id) is active now; an error when it cannot tell.
	LinkActive(ctx context.Context, chanID uint64) (bool, error)
}

// keyLocks serializes the decisions about one circuit key: each entry point
// holds the key's lock from its read to the end of its apply. Locks exist
// only while somebody holds or waits for them.
type keyLocks struct {
	mu    sync.Mutex
	locks map[CircuitKey]*keyLock
}

type keyLock struct {
	sync.Mutex

	// users is how many hold or wait for the lock; keyLocks.mu guards
	// it.
	users int
}

// lock locks key and returns its unlock.
func (k *keyLocks) lock(key CircuitKey) func() {
	k.mu.Lock()
	l, ok := k.locks[key]
	if !ok {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		l.users--
		if l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
