// Package eventfeed owns the fan-out of events from holdd's subsystems to
// API subscribers. A slow subscriber loses events; it never stalls the
// subsystem publishing them, which may hold an HTLC's lock while it does.
package eventfeed

import "sync"

// Feed hands events to any number of subscribers.
type Feed[T any] struct {
	mu      sync.Mutex
	subs    map[int]chan T
	next    int
	dropped uint64
}

// New creates a Feed.
func New[T any]() *Feed[T] {
	return &Feed[T]{subs: make(map[int]chan T)}
}

// Publish hands ev to every subscriber with room for it.
func (f *Feed[T]) Publish(ev T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		select {
		case ch <- ev:
		default:
			f.dropped++
		}
	}
}

// Subscribe returns a channel of events with room for buffer events, and a
// function that ends the subscription and closes the channel.
func (f *Feed[T]) Subscribe(buffer int) (<-chan T, func()) {
	ch := make(chan T, buffer)
	f.mu.Lock()
	id := f.next
	f.next++
	f.subs[id] = ch
	f.mu.Unlock()

	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, id)
			f.mu.Unlock()
			close(ch)
		})
	}
}

// Dropped counts events lost to slow subscribers.
func (f *Feed[T]) Dropped() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped
}
