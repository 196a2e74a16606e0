package plugin

import "github.com/holdd/holdd/eventfeed"

// Observers fans one event out to several observers, in order.
type Observers []Observer

// HoldEvent implements Observer.
func (o Observers) HoldEvent(ev Event) {
	for _, obs := range o {
		obs.HoldEvent(ev)
	}
}

// Broadcaster hands events to any number of subscribers through an
// eventfeed.Feed. A subscriber that does not keep up loses events rather
// than stall the engine, which calls observers while it holds an HTLC's
// lock.
type Broadcaster struct {
	*eventfeed.Feed[Event]
}

// NewBroadcaster creates a Broadcaster.
func NewBroadcaster() *Broadcaster {
	return &Broadcaster{Feed: eventfeed.New[Event]()}
}

// HoldEvent implements Observer.
func (b *Broadcaster) HoldEvent(ev Event) {
	b.Publish(ev)
}
