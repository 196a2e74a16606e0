package release

import (
	"context"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

func peerKey(b byte) route.Vertex {
	var p route.Vertex
	p[0] = 0x02
	p[32] = b
	return p
}

func TestPathsRequestCodec(t *testing.T) {
	hash := testClaim().PaymentHash
	key := plugin.CircuitKey{ChanID: 0x0102030405060708, HtlcID: 9}
	tests := []struct {
		name string
		req  PathsRequest
		hex  string
	}{
		{"hello", PathsRequest{}, ""},
		{"key", PathsRequest{Key: &key},
			"00080102030405060708" + "02080000000000000009"},
		{"hash", PathsRequest{PaymentHash: &hash},
			"0420" + hex.EncodeToString(hash[:])},
		{"both", PathsRequest{Key: &key, PaymentHash: &hash},
			"00080102030405060708" + "02080000000000000009" +
				"0420" + hex.EncodeToString(hash[:])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.req.Encode()
			require.NoError(t, err)
			require.Equal(t, tc.hex, hex.EncodeToString(b))
			got, err := DecodePathsRequest(b)
			require.NoError(t, err)
			require.Equal(t, &tc.req, got)
			require.Equal(t, tc.req.Key == nil &&
				tc.req.PaymentHash == nil, got.Hello())
		})
	}

	// An unknown odd type is skipped.
	got, err := DecodePathsRequest([]byte{0x07, 0x01, 0xff})
	require.NoError(t, err)
	require.True(t, got.Hello())

	bad := map[string]string{
		"chan_id alone": "00080102030405060708",
		"htlc_id alone": "02080000000000000009",
		"unknown even":  "0601ff",
		"short hash":    "040100",
		"truncated":     "0008010203",
		"out of order":  "02080000000000000009" + "00080102030405060708",
		"oversize": "07ff" + hex.EncodeToString(make([]byte,
			MaxPathsRequestSize)),
	}
	for name, h := range bad {
		b, err := hex.DecodeString(h)
		require.NoError(t, err)
		_, err = DecodePathsRequest(b)
		require.ErrorIs(t, err, ErrBadRequest, name)
	}
}

// fakeHeld lists held HTLCs from a slice, filtering as the store does.
type fakeHeld struct {
	mu   sync.Mutex
	recs []plugin.HeldHTLC
}

func (f *fakeHeld) ListHTLCs(_ context.Context, flt plugin.ListFilter) (
	[]plugin.HeldHTLC, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	var out []plugin.HeldHTLC
	for _, r := range f.recs {
		if flt.Peer != nil && r.IncomingPeer != *flt.Peer {
			continue
		}
		ok := len(flt.States) == 0
		for _, s := range flt.States {
			ok = ok || r.State == s
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// fakeDeliveryStore keeps delivery peers in memory.
type fakeDeliveryStore struct {
	mu    sync.Mutex
	peers map[route.Vertex]DeliveryPeer
	err   error
}

func (f *fakeDeliveryStore) PutDeliveryPeer(_ context.Context, peer route.Vertex,
	now time.Time) (DeliveryPeer, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return DeliveryPeer{}, f.err
	}
	p, ok := f.peers[peer]
	if !ok {
		p = DeliveryPeer{Peer: peer, ProvenAt: now}
	}
	p.RefreshedAt = now
	f.peers[peer] = p
	return p, nil
}

func (f *fakeDeliveryStore) ListDeliveryPeers(context.Context) (
	[]DeliveryPeer, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	var out []DeliveryPeer
	for _, p := range f.peers {
		out = append(out, p)
	}
	return out, nil
}

// fakeLnd answers ListChannels from a set of peers with channels and
// records custom messages sent.
type fakeLnd struct {
	recordingSender
	channels map[route.Vertex]bool
}

func (f *fakeLnd) SubscribeCustomMessages(context.Context,
	*lnrpc.SubscribeCustomMessagesRequest, ...grpc.CallOption) (
	lnrpc.Lightning_SubscribeCustomMessagesClient, error) {

	return nil, errors.New("not in this test")
}

func (f *fakeLnd) SendCustomMessage(ctx context.Context,
	in *lnrpc.SendCustomMessageRequest, _ ...grpc.CallOption) (
	*lnrpc.SendCustomMessageResponse, error) {

	err := f.recordingSender.SendCustomMessage(ctx, route.Vertex(in.Peer),
		in.Type, in.Data)
	return &lnrpc.SendCustomMessageResponse{}, err
}

func (f *fakeLnd) ListChannels(_ context.Context,
	in *lnrpc.ListChannelsRequest, _ ...grpc.CallOption) (
	*lnrpc.ListChannelsResponse, error) {

	resp := &lnrpc.ListChannelsResponse{}
	if f.channels[route.Vertex(in.Peer)] {
		resp.Channels = []*lnrpc.Channel{{ChanId: 5}}
	}
	return resp, nil
}

func (f *fakeLnd) messages() []sentMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentMessage(nil), f.sent...)
}

type requestsHarness struct {
	lnd       *fakeLnd
	held      *fakeHeld
	deliverer *Deliverer
	proofs    *fakeDeliveryStore
	peers     *DeliveryPeers
	reqs      *PathRequests
	clock     *clock.TestClock
}

func newRequestsHarness(t *testing.T, recs ...plugin.HeldHTLC) *requestsHarness {
	t.Helper()
	h := &requestsHarness{
		lnd:    &fakeLnd{channels: map[route.Vertex]bool{}},
		held:   &fakeHeld{recs: recs},
		proofs: &fakeDeliveryStore{peers: map[route.Vertex]DeliveryPeer{}},
		clock:  clock.NewTestClock(time.Unix(1_800_000_100, 0)),
	}
	for _, r := range recs {
		h.lnd.channels[r.IncomingPeer] = true
	}
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	m, err := NewMinter(auth, privKey(1).PubKey(), privKey(2).PubKey())
	require.NoError(t, err)
	h.deliverer = NewDeliverer(DelivererConfig{Minter: m,
		Sender: &h.lnd.recordingSender, PathCount: 2,
		PathTTL: time.Hour, Held: h.held, Clock: h.clock})
	ctx, cancel := context.WithCancel(context.Background())
	h.deliverer.Start(ctx)
	t.Cleanup(func() {
		cancel()
		h.deliverer.Wait()
	})
	h.peers = NewDeliveryPeers(h.proofs, h.clock, nil)
	h.reqs, err = NewPathRequests(PathRequestsConfig{Lnd: h.lnd,
		Deliverer: h.deliverer, Peers: h.peers, Burst: 3,
		Interval: time.Second, Clock: h.clock})
	require.NoError(t, err)
	return h
}

// waitSent waits until n messages went out.
func (h *requestsHarness) waitSent(t *testing.T, n int) []sentMessage {
	t.Helper()
	require.Eventually(t, func() bool {
		return len(h.lnd.messages()) >= n
	}, 5*time.Second, time.Millisecond)
	return h.lnd.messages()
}

func encodeReq(t *testing.T, r PathsRequest) []byte {
	t.Helper()
	b, err := r.Encode()
	require.NoError(t, err)
	return b
}

// TestHelloIsAckedAndProves: a hello from a channel peer is answered with
// an empty release_paths_ack and makes the peer proven, persisted first; a
// hello from a peer without a channel changes nothing.
func TestHelloIsAckedAndProves(t *testing.T) {
	h := newRequestsHarness(t)
	ctx := context.Background()
	a, stranger := peerKey(1), peerKey(2)
	h.lnd.channels[a] = true

	require.False(t, h.peers.ReadsDeliveries(a))
	require.Equal(t, ReqHello, h.reqs.Handle(ctx, a, nil))
	require.True(t, h.peers.ReadsDeliveries(a))
	require.Equal(t, []sentMessage{{a, PathsAckMsgType, []byte{}}},
		h.lnd.messages())
	require.Contains(t, h.proofs.peers, a)

	require.Equal(t, ReqNoChannel, h.reqs.Handle(ctx, stranger, nil))
	require.False(t, h.peers.ReadsDeliveries(stranger))
	require.NotContains(t, h.proofs.peers, stranger)
	require.Len(t, h.lnd.messages(), 1)

	// A store failure: no ack, not proven.
	b := peerKey(3)
	h.lnd.channels[b] = true
	h.proofs.err = errors.New("disk full")
	require.Equal(t, ReqFailed, h.reqs.Handle(ctx, b, nil))
	require.False(t, h.peers.ReadsDeliveries(b))
	require.Len(t, h.lnd.messages(), 1)

	// Proven peers survive a restart; allowlisted ones need no hello.
	h.proofs.err = nil
	again := NewDeliveryPeers(h.proofs, h.clock, []route.Vertex{b})
	n, err := again.Load(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.True(t, again.ReadsDeliveries(a))
	require.True(t, again.ReadsDeliveries(b))
	require.False(t, again.ReadsDeliveries(stranger))
}

// TestRequestRedeliversOwnHTLCOnly: a request naming the peer's own held
// HTLC (by key or hash) gets the same path delivery the hold produced; one
// naming another peer's HTLC, or nothing held, gets nothing.
func TestRequestRedeliversOwnHTLCOnly(t *testing.T) {
	rec := heldRecord(1)
	rec.IncomingPeer = peerKey(1)
	other := heldRecord(2)
	other.IncomingPeer = peerKey(2)
	other.PaymentHash[0] ^= 1
	h := newRequestsHarness(t, rec, other)
	ctx := context.Background()

	// The first delivery, made on hold.
	h.deliverer.HoldEvent(plugin.Event{Kind: plugin.EventHeld, HTLC: rec})
	first := h.waitSent(t, 1)[0]
	require.Equal(t, PathDeliveryMsgType, first.msgType)

	// Another peer naming rec, by key or by hash: nothing.
	for _, req := range []PathsRequest{{Key: &rec.Key},
		{PaymentHash: &rec.PaymentHash}} {

		require.Equal(t, ReqUnknown, h.reqs.Handle(ctx, peerKey(2),
			encodeReq(t, req)))
	}
	// Unknown key from the right peer: nothing.
	unknown := plugin.CircuitKey{ChanID: 5, HtlcID: 99}
	require.Equal(t, ReqUnknown, h.reqs.Handle(ctx, peerKey(1),
		encodeReq(t, PathsRequest{Key: &unknown})))
	require.Equal(t, ReqMalformed, h.reqs.Handle(ctx, peerKey(1),
		[]byte{0x06, 0x00}))
	require.False(t, h.peers.ReadsDeliveries(peerKey(2)))
	require.False(t, h.peers.ReadsDeliveries(peerKey(1)))

	// The owner, past the minimum interval: the same bytes again.
	h.clock.SetTime(h.clock.Now().Add(DefaultMinRedeliveryInterval))
	require.Equal(t, ReqMatched, h.reqs.Handle(ctx, peerKey(1),
		encodeReq(t, PathsRequest{PaymentHash: &rec.PaymentHash})))
	msgs := h.waitSent(t, 2)
	require.Len(t, msgs, 2)
	require.Equal(t, first, msgs[1])
	require.True(t, h.peers.ReadsDeliveries(peerKey(1)))

	// Soon again (one token refilled): too soon, nothing sent.
	h.clock.SetTime(h.clock.Now().Add(time.Second))
	require.Equal(t, ReqMatched, h.reqs.Handle(ctx, peerKey(1),
		encodeReq(t, PathsRequest{Key: &rec.Key})))
	require.Eventually(t, func() bool {
		return h.deliverer.RedeliveryCounts()[RedeliverTooSoon] == 1
	}, 5*time.Second, time.Millisecond)
	require.Len(t, h.lnd.messages(), 2)

	counts := h.reqs.Counts()
	require.Equal(t, uint64(3), counts[ReqUnknown])
	require.Equal(t, uint64(2), counts[ReqMatched])
	require.Equal(t, uint64(1), counts[ReqMalformed])
}

// TestRequestRateLimit: a peer gets Burst requests, then one per Interval.
func TestRequestRateLimit(t *testing.T) {
	h := newRequestsHarness(t)
	ctx := context.Background()
	a := peerKey(1)
	h.lnd.channels[a] = true
	for range 3 {
		require.Equal(t, ReqHello, h.reqs.Handle(ctx, a, nil))
	}
	require.Equal(t, ReqRateLimited, h.reqs.Handle(ctx, a, nil))
	// Another peer has its own bucket.
	require.Equal(t, ReqNoChannel, h.reqs.Handle(ctx, peerKey(2), nil))

	h.clock.SetTime(h.clock.Now().Add(time.Second))
	require.Equal(t, ReqHello, h.reqs.Handle(ctx, a, nil))
	require.Equal(t, ReqRateLimited, h.reqs.Handle(ctx, a, nil))
	require.Len(t, h.lnd.messages(), 4)
}

// TestRedeliverAfterRestart: a fresh deliverer (a restarted holdd) sends
// every held HTLC's paths again, with the expiry of the original paths,
// resolving an incoming peer unknown at hold time; expired paths are not
// sent.
func TestRedeliverAfterRestart(t *testing.T) {
	live := heldRecord(1)
	live.IncomingPeer = peerKey(1)
	noPeer := heldRecord(2)
	noPeer.IncomingPeer = route.Vertex{}
	old := heldRecord(3)
	old.IncomingPeer = peerKey(1)
	old.HeldAt = old.HeldAt.Add(-2 * time.Hour)
	released := heldRecord(4)
	released.IncomingPeer = peerKey(1)
	released.State = plugin.StateReleased

	h := newRequestsHarness(t, live, noPeer, old, released)
	h.deliverer.cfg.Peers = chanPeers{5: peerKey(7)}
	h.deliverer.RedeliverAll()
	msgs := h.waitSent(t, 2)
	require.Eventually(t, func() bool {
		return h.deliverer.RedeliveryCounts()[RedeliverExpired] == 1
	}, 5*time.Second, time.Millisecond)
	require.Len(t, h.lnd.messages(), 2)

	byPeer := map[route.Vertex]*PathDelivery{}
	for _, m := range msgs {
		require.Equal(t, PathDeliveryMsgType, m.msgType)
		pd, err := DecodePathDelivery(m.data)
		require.NoError(t, err)
		byPeer[m.peer] = pd
	}
	require.Equal(t, live.Key, byPeer[peerKey(1)].Key)
	require.Equal(t, live.HeldAt.Add(time.Hour+time.Second).Unix(),
		byPeer[peerKey(1)].ExpiresAt.Unix())
	require.Equal(t, noPeer.Key, byPeer[peerKey(7)].Key)
	require.Equal(t, map[string]uint64{RedeliverSent: 2,
		RedeliverExpired: 1}, h.deliverer.RedeliveryCounts())

	// Asking at once is too soon for another copy; a reconnect at once
	// is not: the copy before went out on the old connection.
	h.deliverer.RedeliverPeer(peerKey(7), "request")
	require.Eventually(t, func() bool {
		return h.deliverer.RedeliveryCounts()[RedeliverTooSoon] == 1
	}, 5*time.Second, time.Millisecond)
	h.deliverer.RedeliverChannel(context.Background(), 5)
	msgs = h.waitSent(t, 3)
	require.Equal(t, peerKey(7), msgs[2].peer)
	require.Equal(t, msgs[1].data, msgs[2].data)
}

// TestRedeliveryQueueBounded: jobs beyond the queue are dropped and
// counted.
func TestRedeliveryQueueBounded(t *testing.T) {
	d := NewDeliverer(DelivererConfig{RedeliveryQueue: 2})
	// Not started: nothing drains the queue.
	for range 5 {
		d.RedeliverPeer(peerKey(1), "test")
	}
	require.Equal(t, uint64(3), d.RedeliveryCounts()[RedeliverQueueFull])
}

// chanPeers maps channels to peers.
type chanPeers map[uint64]route.Vertex

func (c chanPeers) PeerOf(_ context.Context, id uint64) (route.Vertex, error) {
	p, ok := c[id]
	if !ok {
		return p, errors.New("unknown channel")
	}
	return p, nil
}

func FuzzDecodePathsRequest(f *testing.F) {
	hash := testClaim().PaymentHash
	key := plugin.CircuitKey{ChanID: 7, HtlcID: 1}
	for _, r := range []PathsRequest{{}, {Key: &key},
		{PaymentHash: &hash}, {Key: &key, PaymentHash: &hash}} {

		b, err := r.Encode()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodePathsRequest(data)
		if err != nil {
			require.ErrorIs(t, err, ErrBadRequest)
			return
		}
		// What decodes re-encodes to a request that decodes the same.
		again, err := r.Encode()
		require.NoError(t, err)
		r2, err := DecodePathsRequest(again)
		require.NoError(t, err)
		require.Equal(t, r, r2)
	})
}

// failingSender fails every send to one peer and records the others.
type failingSender struct {
	recordingSender
	down  route.Vertex
	tries atomic.Int32
}

func (f *failingSender) SendCustomMessage(ctx context.Context, peer route.Vertex,
	msgType uint32, data []byte) error {

	if peer == f.down {
		f.tries.Add(1)
		return errors.New("peer is not online")
	}
	return f.recordingSender.SendCustomMessage(ctx, peer, msgType, data)
}

// TestRedeliverySkipsUnreachablePeer: once a send to a peer fails, the
// job does not try that peer's other HTLCs (each try could wait out lnd's
// send timeout while other peers' redeliveries queue), but still serves
// the others.
func TestRedeliverySkipsUnreachablePeer(t *testing.T) {
	var recs []plugin.HeldHTLC
	for i := range uint64(3) {
		r := heldRecord(i + 1)
		r.IncomingPeer = peerKey(1)
		recs = append(recs, r)
	}
	other := heldRecord(9)
	other.IncomingPeer = peerKey(2)
	recs = append(recs, other)

	sender := &failingSender{down: peerKey(1)}
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	m, err := NewMinter(auth, privKey(1).PubKey(), privKey(2).PubKey())
	require.NoError(t, err)
	d := NewDeliverer(DelivererConfig{Minter: m, Sender: sender,
		PathCount: 2, PathTTL: time.Hour,
		Clock: clock.NewTestClock(time.Unix(1_800_000_100, 0))})
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	t.Cleanup(func() {
		cancel()
		d.Wait()
	})

	require.True(t, d.Redeliver(recs, "test"))
	require.Eventually(t, func() bool {
		c := d.RedeliveryCounts()
		return c[RedeliverSent]+c[RedeliverSendFailed] == 4
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, int32(1), sender.tries.Load())
	require.Equal(t, map[string]uint64{RedeliverSent: 1,
		RedeliverSendFailed: 3}, d.RedeliveryCounts())
	sender.mu.Lock()
	defer sender.mu.Unlock()
	require.Len(t, sender.sent, 1)
	require.Equal(t, peerKey(2), sender.sent[0].peer)
}
