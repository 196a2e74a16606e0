package plugin

import (
	"sync"
)

// Observers fans one event out to several observers, in order.
type Observers []Observer

// HoldEvent implements Observer.
func (o Observers) HoldEvent(ev Event) {
	for _, obs := range o {
		obs.HoldEvent(ev)
	}
}

// Broadcaster hands events to any number of subscribers. A subscriber that
// does not keep up loses events rather than stall the engine, which calls
// observers while it holds an HTLC's lock.
type Broadcaster struct {
	mu      sync.Mutex
	subs    map[int]chan Event
	next    int
	dropped uint64
}

// NewBroadcaster creates a Broadcaster.
func NewBroadcaster() *Broadcaster {
	return &Broadcaster{subs: make(map[int]chan Event)}
}

// HoldEvent implements Observer.
func (b *Broadcaster) HoldEvent(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.subs {
		select {
		case ch <- ev:
		default:
			b.dropped++
		}
	}
}

// Subscribe returns a channel of events with room for buffer events, and a
// function that ends the subscription and closes the channel.
func (b *Broadcaster) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	b.mu.Lock()
	id := b.next
	b.next++
	b.subs[id] = ch
	b.mu.Unlock()

	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, id)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// Dropped counts events lost to slow subscribers.
func (b *Broadcaster) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}
