package plugin

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBroadcaster(t *testing.T) {
	b := NewBroadcaster()
	fast, cancelFast := b.Subscribe(4)
	slow, cancelSlow := b.Subscribe(1)

	ev := func(id uint64) Event {
		return Event{Kind: EventHeld, HTLC: HeldHTLC{
			Key: CircuitKey{ChanID: 1, HtlcID: id}}}
	}
	b.HoldEvent(ev(1))
	b.HoldEvent(ev(2))

	require.Equal(t, ev(1), <-fast)
	require.Equal(t, ev(2), <-fast)
	require.Equal(t, ev(1), <-slow)
	require.Equal(t, uint64(1), b.Dropped())

	cancelSlow()
	_, open := <-slow
	require.False(t, open)
	cancelSlow()

	b.HoldEvent(ev(3))
	require.Equal(t, ev(3), <-fast)
	cancelFast()
	require.Equal(t, uint64(1), b.Dropped())
}

func TestObserversFanOut(t *testing.T) {
	a, c := &recordingObserver{}, &recordingObserver{}
	Observers{a, c}.HoldEvent(Event{Kind: EventFailed})
	require.Equal(t, []EventKind{EventFailed}, a.kinds())
	require.Equal(t, []EventKind{EventFailed}, c.kinds())
}
