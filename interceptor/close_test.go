package interceptor

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// fakeChanEvents hands out channel event streams fed by the test.
type fakeChanEvents struct {
	streams chan *chanEventStream
}

type chanEventStream struct {
	grpc.ClientStream
	ctx    context.Context
	events chan *lnrpc.ChannelEventUpdate
}

func (s *chanEventStream) Recv() (*lnrpc.ChannelEventUpdate, error) {
	select {
	case ev, ok := <-s.events:
		if !ok {
			return nil, io.EOF
		}
		return ev, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (f *fakeChanEvents) SubscribeChannelEvents(ctx context.Context,
	_ *lnrpc.ChannelEventSubscription, _ ...grpc.CallOption) (
	lnrpc.Lightning_SubscribeChannelEventsClient, error) {

	s := &chanEventStream{
		ctx: ctx, events: make(chan *lnrpc.ChannelEventUpdate),
	}
	f.streams <- s
	return s, nil
}

func closedEvent(c *lnrpc.ChannelCloseSummary) *lnrpc.ChannelEventUpdate {
	return &lnrpc.ChannelEventUpdate{
		Type: lnrpc.ChannelEventUpdate_CLOSED_CHANNEL,
		Channel: &lnrpc.ChannelEventUpdate_ClosedChannel{
			ClosedChannel: c,
		},
	}
}

// TestClosedChannelKeysAreWithdrawn: once lnd reports a channel closed, its
// offered keys (under its id or an alias) are no longer answered, nor are
// replays of its HTLCs; other channels' keys are untouched. lnd reports the
// close before it offers the HTLCs again on chain, and a resume or fail
// that reaches it after that ends the stream.
func TestClosedChannelKeysAreWithdrawn(t *testing.T) {
	router := &fakeRouter{streams: make(chan *fakeStream, 4)}
	events := &fakeChanEvents{streams: make(chan *chanEventStream, 4)}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	hold := plugin.Decision{Action: plugin.ActionHold}
	i, err := New(Config{
		Router:        router,
		ChannelEvents: events,
		MinBackoff:    time.Millisecond,
		MaxBackoff:    5 * time.Millisecond,
		Logger:        logger,
	})
	require.NoError(t, err)
	require.NoError(t, i.Start(&fakeEngine{
		decisions: map[uint64]plugin.Decision{1: hold, 2: hold, 3: hold},
	}))
	t.Cleanup(func() { require.NoError(t, i.Stop()) })

	s := nextStream(t, router)
	var ev *chanEventStream
	select {
	case ev = <-events.streams:
	case <-time.After(5 * time.Second):
		t.Fatal("no channel event subscription")
	}

	keys := []plugin.CircuitKey{
		{ChanID: 4, HtlcID: 1}, // the closed channel
		{ChanID: 6, HtlcID: 2}, // its alias
		{ChanID: 5, HtlcID: 3}, // another channel
	}
	for _, k := range keys {
		s.reqs <- request(k.ChanID, k.HtlcID)
	}
	require.Eventually(t, func() bool {
		return i.isOffered(keys[0]) && i.isOffered(keys[1]) &&
			i.isOffered(keys[2])
	}, 5*time.Second, time.Millisecond)

	// Other events change nothing.
	ev.events <- &lnrpc.ChannelEventUpdate{
		Type: lnrpc.ChannelEventUpdate_INACTIVE_CHANNEL,
	}
	ev.events <- closedEvent(&lnrpc.ChannelCloseSummary{
		ChanId: 4, AliasScids: []uint64{6},
	})
	// The next event is read only after the close was applied.
	ev.events <- &lnrpc.ChannelEventUpdate{
		Type: lnrpc.ChannelEventUpdate_ACTIVE_CHANNEL,
	}

	ctx := context.Background()
	require.ErrorIs(t, i.Resume(ctx, keys[0]), plugin.ErrNotOffered)
	require.ErrorIs(t, i.Fail(ctx, keys[1]), plugin.ErrNotOffered)
	require.True(t, i.isOffered(keys[2]))

	// A replay of the closed channel's HTLC off chain is not answered
	// either; the other channel's key still is.
	s.reqs <- request(4, 1)
	s.reqs <- request(5, 2)
	require.Eventually(t, func() bool {
		return i.isOffered(plugin.CircuitKey{ChanID: 5, HtlcID: 2})
	}, 5*time.Second, time.Millisecond)
	require.False(t, i.isOffered(keys[0]))
	require.NoError(t, i.Resume(ctx, keys[2]))
	require.Len(t, s.responses(), 1)
	require.Equal(t, uint64(5), s.responses()[0].IncomingCircuitKey.ChanId)

	// A broken event stream is resubscribed.
	close(ev.events)
	select {
	case <-events.streams:
	case <-time.After(5 * time.Second):
		t.Fatal("channel events not resubscribed")
	}
}

// TestClosedChannelsBounded: the closed set keeps the newest
// maxClosedChannels ids.
func TestClosedChannelsBounded(t *testing.T) {
	i, err := New(Config{Router: &fakeRouter{}})
	require.NoError(t, err)
	for id := uint64(1); id <= maxClosedChannels+10; id++ {
		i.channelClosed([]uint64{id})
	}
	i.channelClosed([]uint64{maxClosedChannels + 10})
	require.Len(t, i.closed, maxClosedChannels)
	require.Len(t, i.closedOrder, maxClosedChannels)
	require.NotContains(t, i.closed, uint64(10))
	require.Contains(t, i.closed, uint64(11))
	require.Contains(t, i.closed, uint64(maxClosedChannels+10))
}

// TestResolutionRecheckedBeforeSend: a resolution that waits behind
// another send checks the key only once it may send, so an on-chain
// re-offer received meanwhile withdraws it and nothing is sent for it.
func TestResolutionRecheckedBeforeSend(t *testing.T) {
	i, router := startInterceptor(t, map[uint64]plugin.Decision{
		2: {Action: plugin.ActionHold},
	})
	s := nextStream(t, router)
	key := plugin.CircuitKey{ChanID: 4, HtlcID: 2}
	s.reqs <- request(4, 2)
	require.Eventually(t, func() bool { return i.isOffered(key) },
		5*time.Second, time.Millisecond)

	// Another send is in progress.
	i.sendMu.Lock()
	done := make(chan error, 1)
	go func() { done <- i.Fail(context.Background(), key) }()
	// Let the Fail reach the send lock (or, before the fix, check the
	// key and then wait for the lock). Passing does not depend on it.
	time.Sleep(50 * time.Millisecond)

	onChain := request(4, 2)
	onChain.AutoFailHeight = int32(onChain.IncomingExpiry)
	s.reqs <- onChain
	require.Eventually(t, func() bool { return !i.isOffered(key) },
		5*time.Second, time.Millisecond)
	// A normal offer behind it shows the re-offer was handled.
	s.reqs <- request(5, 2)
	require.Eventually(t, func() bool {
		return i.isOffered(plugin.CircuitKey{ChanID: 5, HtlcID: 2})
	}, 5*time.Second, time.Millisecond)
	i.sendMu.Unlock()

	require.ErrorIs(t, <-done, plugin.ErrNotOffered)
	require.Empty(t, s.responses())
}
