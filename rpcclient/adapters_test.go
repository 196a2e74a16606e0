package rpcclient

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

type fakeChannels struct {
	mu       sync.Mutex
	channels []*lnrpc.Channel
	peers    [][]byte
	err      error
	events   chan *lnrpc.ChannelEventUpdate
}

func (f *fakeChannels) ListChannels(_ context.Context,
	in *lnrpc.ListChannelsRequest, _ ...grpc.CallOption) (
	*lnrpc.ListChannelsResponse, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.peers = append(f.peers, in.Peer)
	var out []*lnrpc.Channel
	for _, ch := range f.channels {
		if in.Peer == nil || ch.RemotePubkey == hex.EncodeToString(in.Peer) {
			out = append(out, ch)
		}
	}
	return &lnrpc.ListChannelsResponse{Channels: out}, nil
}

func (f *fakeChannels) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.peers)
}

func (f *fakeChannels) SubscribeChannelEvents(ctx context.Context,
	_ *lnrpc.ChannelEventSubscription, _ ...grpc.CallOption) (
	lnrpc.Lightning_SubscribeChannelEventsClient, error) {

	if f.events == nil {
		return nil, errors.New("no events")
	}
	return &eventStream{ctx: ctx, events: f.events}, nil
}

type eventStream struct {
	lnrpc.Lightning_SubscribeChannelEventsClient
	ctx    context.Context
	events chan *lnrpc.ChannelEventUpdate
}

func (e *eventStream) Recv() (*lnrpc.ChannelEventUpdate, error) {
	select {
	case ev := <-e.events:
		if ev == nil {
			// The test breaks the stream.
			return nil, io.EOF
		}
		return ev, nil
	case <-e.ctx.Done():
		return nil, e.ctx.Err()
	}
}

// TestChannelActivityFromEvents checks that while the watch runs, Active
// answers from events with no RPC, and that an ACTIVE event wakes the
// caller.
func TestChannelActivityFromEvents(t *testing.T) {
	g := "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	const txid = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	fake := &fakeChannels{
		channels: []*lnrpc.Channel{{ChanId: 7, RemotePubkey: g,
			Active: true, ChannelPoint: txid + ":1"}},
		events: make(chan *lnrpc.ChannelEventUpdate),
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	a := NewChannelActivity(fake, NewChannelPeers(fake), log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woke := make(chan uint64, 4)
	go a.WatchActive(ctx, func(id uint64) { woke <- id })

	require.Eventually(t, func() bool { return fake.calls() == 1 },
		time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.synced
	}, time.Second, time.Millisecond)

	txidBytes, _ := hex.DecodeString(txid)
	rev := make([]byte, len(txidBytes))
	for i := range txidBytes {
		rev[len(rev)-1-i] = txidBytes[i]
	}
	point := &lnrpc.ChannelPoint{
		FundingTxid: &lnrpc.ChannelPoint_FundingTxidBytes{
			FundingTxidBytes: rev},
		OutputIndex: 1,
	}
	fake.events <- &lnrpc.ChannelEventUpdate{
		Type: lnrpc.ChannelEventUpdate_INACTIVE_CHANNEL,
		Channel: &lnrpc.ChannelEventUpdate_InactiveChannel{
			InactiveChannel: point},
	}
	require.Eventually(t, func() bool {
		active, err := a.Active(ctx, 7)
		return err == nil && !active
	}, time.Second, time.Millisecond)

	fake.events <- &lnrpc.ChannelEventUpdate{
		Type: lnrpc.ChannelEventUpdate_ACTIVE_CHANNEL,
		Channel: &lnrpc.ChannelEventUpdate_ActiveChannel{
			ActiveChannel: point},
	}
	require.Equal(t, uint64(7), <-woke)
	active, err := a.Active(ctx, 7)
	require.NoError(t, err)
	require.True(t, active)
	// Only the initial list: every answer came from events.
	require.Equal(t, 1, fake.calls())
}

func TestChannelActivity(t *testing.T) {
	// A valid compressed key: the generator point.
	g := "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	fake := &fakeChannels{channels: []*lnrpc.Channel{
		{ChanId: 1, RemotePubkey: g, Active: true},
		{ChanId: 2, RemotePubkey: g, Active: false,
			AliasScids: []uint64{99}},
	}}
	a := NewChannelActivity(fake, NewChannelPeers(fake), nil)
	ctx := context.Background()

	active, err := a.Active(ctx, 1)
	require.NoError(t, err)
	require.True(t, active)
	active, err = a.Active(ctx, 99)
	require.NoError(t, err)
	require.False(t, active)

	// Each check lists only the channel's peer's channels (the first
	// call filled the channel-to-peer cache).
	gKey, _ := hex.DecodeString(g)
	require.Equal(t, [][]byte{nil, gKey, gKey}, fake.peers)

	_, err = a.Active(ctx, 3)
	require.Error(t, err)

	fake.err = errors.New("lnd down")
	_, err = a.Active(ctx, 1)
	require.ErrorIs(t, err, fake.err)
}

// TestChannelInfo: the peer and the private flag of a channel, looked up by
// real or alias short channel id, from one ListChannels that later lookups
// do not repeat; an unknown channel and a failing lnd are errors.
func TestChannelInfo(t *testing.T) {
	client := "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	router := "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
	fake := &fakeChannels{channels: []*lnrpc.Channel{
		{ChanId: 11, RemotePubkey: client, Private: true,
			AliasScids: []uint64{1 << 47}},
		{ChanId: 22, RemotePubkey: router},
	}}
	peers := NewChannelPeers(fake)
	ctx := context.Background()
	hexKey := func(s string) route.Vertex {
		var k route.Vertex
		b, err := hex.DecodeString(s)
		require.NoError(t, err)
		copy(k[:], b)
		return k
	}

	tests := []struct {
		chanID  uint64
		peer    string
		private bool
	}{
		{11, client, true},
		{1 << 47, client, true},
		{22, router, false},
	}
	for _, tc := range tests {
		peer, private, err := peers.ChannelInfo(ctx, tc.chanID)
		require.NoError(t, err, tc.chanID)
		require.Equal(t, hexKey(tc.peer), peer, tc.chanID)
		require.Equal(t, tc.private, private, tc.chanID)
	}
	require.Equal(t, 1, fake.calls())

	_, _, err := peers.ChannelInfo(ctx, 33)
	require.ErrorContains(t, err, "channel 33 not found")
	require.Equal(t, 2, fake.calls())

	fake.mu.Lock()
	fake.err = errors.New("lnd down")
	fake.mu.Unlock()
	_, _, err = peers.ChannelInfo(ctx, 44)
	require.ErrorContains(t, err, "lnd down")
	// A cached channel needs no lnd.
	_, private, err := peers.ChannelInfo(ctx, 11)
	require.NoError(t, err)
	require.True(t, private)
}

// TestChannelActivityWakesAfterResubscribe checks that after the event
// stream broke and was subscribed again, the caller is woken once with
// channel 0: a channel may have become active while no stream ran.
func TestChannelActivityWakesAfterResubscribe(t *testing.T) {
	fake := &fakeChannels{
		events: make(chan *lnrpc.ChannelEventUpdate),
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	a := NewChannelActivity(fake, NewChannelPeers(fake), log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woke := make(chan uint64, 4)
	go a.WatchActive(ctx, func(id uint64) { woke <- id })

	// The first subscription wakes nobody.
	require.Eventually(t, func() bool { return fake.calls() == 1 },
		time.Second, time.Millisecond)
	require.Empty(t, woke)

	fake.events <- nil
	select {
	case id := <-woke:
		require.Zero(t, id)
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after the re-subscription")
	}
	require.Equal(t, 2, fake.calls())
}
