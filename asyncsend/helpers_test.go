package asyncsend

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const waitFor = 5 * time.Second

var testNow = time.Unix(1_800_000_000, 0)

// testKey returns the private key whose 32 bytes are all b.
func testKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

func key33(k *btcec.PrivateKey) route.Vertex {
	var b route.Vertex
	copy(b[:], k.PubKey().SerializeCompressed())
	return b
}

func keyHex(k *btcec.PrivateKey) string {
	return hex.EncodeToString(k.PubKey().SerializeCompressed())
}

// onePath is a one-hop blinded path at node carrying path_id id, blinded
// with testKey(seed).
func onePath(t *testing.T, seed byte, node *btcec.PrivateKey,
	id string) *onionmsg.BlindedPath {

	t.Helper()
	p, err := onionmsg.BuildBlindedPath(testKey(seed), []onionmsg.Hop{{
		NodeID: node.PubKey(),
		Data:   record.NewFinalHopBlindedRouteData(nil, []byte(id)),
	}}, false)
	require.NoError(t, err)
	return p
}

// twoHopPath is [intro: next=final] -> [final: path_id id].
func twoHopPath(t *testing.T, seed byte, intro, final *btcec.PrivateKey,
	id string) *onionmsg.BlindedPath {

	t.Helper()
	p, err := onionmsg.BuildBlindedPath(testKey(seed), []onionmsg.Hop{{
		NodeID: intro.PubKey(),
		Data: record.NewNonFinalBlindedRouteDataOnionMessage(
			fn.NewLeft[*btcec.PublicKey, lnwire.ShortChannelID](
				final.PubKey()),
			nil, nil),
	}, {
		NodeID: final.PubKey(),
		Data:   record.NewFinalHopBlindedRouteData(nil, []byte(id)),
	}}, true)
	require.NoError(t, err)
	return p
}

func pathBytes(t *testing.T, p *onionmsg.BlindedPath) []byte {
	t.Helper()
	b, err := p.Bytes()
	require.NoError(t, err)
	return b
}

// deliveryBytes encodes a path delivery.
func deliveryBytes(t *testing.T, key plugin.CircuitKey, hash lntypes.Hash,
	expires time.Time, paths ...*onionmsg.BlindedPath) []byte {

	t.Helper()
	b, err := (&release.PathDelivery{
		Key:         key,
		PaymentHash: hash,
		AmountMsat:  1_000_500,
		ExpiresAt:   expires,
		Paths:       paths,
	}).Encode()
	require.NoError(t, err)
	return b
}

type subEvent struct {
	msg *lnrpc.CustomMessage
	err error
}

// fakeSub is a custom message stream fed by the test.
type fakeSub struct {
	grpc.ClientStream
	ctx    context.Context
	events chan subEvent
}

func (s *fakeSub) Recv() (*lnrpc.CustomMessage, error) {
	select {
	case ev := <-s.events:
		return ev.msg, ev.err
	case <-s.ctx.Done():
		return nil, status.Error(codes.Canceled, "context canceled")
	}
}

type payEvent struct {
	pmt *lnrpc.Payment
	err error
}

// fakePayStream is a SendPaymentV2 stream fed by the test.
type fakePayStream struct {
	grpc.ClientStream
	ctx    context.Context
	events chan payEvent
}

func (s *fakePayStream) Recv() (*lnrpc.Payment, error) {
	select {
	case ev := <-s.events:
		return ev.pmt, ev.err
	case <-s.ctx.Done():
		return nil, status.Error(codes.Canceled, "context canceled")
	}
}

// fakeLnd is the sender's lnd: custom message subscriptions and
// SendPaymentV2, with the order of calls recorded.
type fakeLnd struct {
	subErr error

	mu      sync.Mutex
	calls   []string
	payReqs []*routerrpc.SendPaymentRequest

	subs chan *fakeSub
	pays chan *fakePayStream

	// channels are ListChannels' answer; custom collects the custom
	// messages sent.
	channels []*lnrpc.Channel
	custom   chan *lnrpc.SendCustomMessageRequest
}

func (f *fakeLnd) SendCustomMessage(_ context.Context,
	in *lnrpc.SendCustomMessageRequest, _ ...grpc.CallOption) (
	*lnrpc.SendCustomMessageResponse, error) {

	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("SendCustomMessage %d",
		in.Type))
	f.mu.Unlock()
	f.custom <- in
	return &lnrpc.SendCustomMessageResponse{}, nil
}

func (f *fakeLnd) ListChannels(context.Context, *lnrpc.ListChannelsRequest,
	...grpc.CallOption) (*lnrpc.ListChannelsResponse, error) {

	return &lnrpc.ListChannelsResponse{Channels: f.channels}, nil
}

func newFakeLnd() *fakeLnd {
	return &fakeLnd{
		subs:   make(chan *fakeSub, 10),
		pays:   make(chan *fakePayStream, 10),
		custom: make(chan *lnrpc.SendCustomMessageRequest, 100),
	}
}

func (f *fakeLnd) SubscribeCustomMessages(ctx context.Context,
	_ *lnrpc.SubscribeCustomMessagesRequest, _ ...grpc.CallOption) (
	lnrpc.Lightning_SubscribeCustomMessagesClient, error) {

	f.mu.Lock()
	f.calls = append(f.calls, "SubscribeCustomMessages")
	f.mu.Unlock()
	if f.subErr != nil {
		return nil, f.subErr
	}
	s := &fakeSub{ctx: ctx, events: make(chan subEvent)}
	f.subs <- s
	return s, nil
}

func (f *fakeLnd) SendPaymentV2(ctx context.Context,
	in *routerrpc.SendPaymentRequest, _ ...grpc.CallOption) (
	routerrpc.Router_SendPaymentV2Client, error) {

	f.mu.Lock()
	f.calls = append(f.calls, "SendPaymentV2")
	f.payReqs = append(f.payReqs, in)
	f.mu.Unlock()
	s := &fakePayStream{ctx: ctx, events: make(chan payEvent)}
	f.pays <- s
	return s, nil
}

func (f *fakeLnd) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// sent is one message the fake messenger was asked to send.
type sent struct {
	lsp       route.Vertex
	path      []byte
	replyPath []byte
	finalTLVs map[uint64][]byte
}

// fakeMessenger records sends; a path whose bytes are in fail fails.
type fakeMessenger struct {
	fail map[string]error

	mu   sync.Mutex
	sent []sent
}

func (f *fakeMessenger) factory(lsp *btcec.PublicKey) (Messenger, error) {
	var k route.Vertex
	copy(k[:], lsp.SerializeCompressed())
	return &boundMessenger{f: f, lsp: k}, nil
}

func (f *fakeMessenger) all() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

type boundMessenger struct {
	f   *fakeMessenger
	lsp route.Vertex
}

func (m *boundMessenger) Send(_ context.Context, path,
	replyPath *onionmsg.BlindedPath,
	finalTLVs map[uint64][]byte) (onionsend.Route, error) {

	pb, err := path.Bytes()
	if err != nil {
		return onionsend.Route{}, err
	}
	rb, err := replyPath.Bytes()
	if err != nil {
		return onionsend.Route{}, err
	}
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	m.f.sent = append(m.f.sent, sent{
		lsp: m.lsp, path: pb, replyPath: rb, finalTLVs: finalTLVs,
	})
	var route onionsend.Route
	copy(route.Intro[:], path.IntroNode.SerializeCompressed())
	route.Peer = m.lsp
	route.Via = route.Peer != route.Intro
	if err := m.f.fail[hex.EncodeToString(pb)]; err != nil {
		return route, err
	}
	return route, nil
}

// harness runs one Pay call against the fakes.
type harness struct {
	t     *testing.T
	lnd   *fakeLnd
	msgr  *fakeMessenger
	clock *clock.TestClock

	cancel   context.CancelFunc
	progress chan Progress
	done     chan struct{}
	res      *Result
	err      error

	sub *fakeSub
	pay *fakePayStream
}

// harnessOpts tune a harness: sends over paths in fail fail, keysend
// preimages come from rnd, and the clock signals new tickers on ticks.
type harnessOpts struct {
	fail  map[string]error
	rnd   []byte
	ticks chan time.Duration

	// lsp greets and asks the LSPs among channels; the harness then
	// does not wait for SendPaymentV2.
	lsp      bool
	channels []*lnrpc.Channel
}

func newHarness(t *testing.T, req *Request, opts harnessOpts) *harness {
	t.Helper()
	h := &harness{
		t:        t,
		lnd:      newFakeLnd(),
		msgr:     &fakeMessenger{fail: opts.fail},
		clock:    clock.NewTestClockWithTickSignal(testNow, opts.ticks),
		progress: make(chan Progress, 100),
		done:     make(chan struct{}),
	}
	cfg := Config{
		Messages:     h.lnd,
		Router:       h.lnd,
		NewMessenger: h.msgr.factory,
		Clock:        h.clock,
	}
	if opts.rnd != nil {
		cfg.Rand = bytes.NewReader(opts.rnd)
	}
	if opts.lsp {
		h.lnd.channels = opts.channels
		cfg.LSP = h.lnd
	}
	p, err := New(cfg)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	t.Cleanup(cancel)
	go func() {
		defer close(h.done)
		h.res, h.err = p.Pay(ctx, req, func(pr Progress) {
			h.progress <- pr
		})
	}()
	h.sub = h.nextSub()
	if !opts.lsp {
		h.pay = recvOrFail(t, h.lnd.pays, "SendPaymentV2")
	}
	return h
}

func recvOrFail[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func (h *harness) nextSub() *fakeSub {
	return recvOrFail(h.t, h.lnd.subs, "SubscribeCustomMessages")
}

// deliver sends a custom message from peer.
func (h *harness) deliver(peer *btcec.PrivateKey, typ uint32, data []byte) {
	h.t.Helper()
	ev := subEvent{msg: &lnrpc.CustomMessage{
		Peer: peer.PubKey().SerializeCompressed(),
		Type: typ,
		Data: data,
	}}
	select {
	case h.sub.events <- ev:
	case <-time.After(waitFor):
		h.t.Fatal("custom message not read")
	}
}

// flush returns once every custom message delivered before it has been
// handled: the reader hands messages on one at a time, and one of a type
// Pay ignores is read only after the one before was taken.
func (h *harness) flush() {
	h.t.Helper()
	h.deliver(testKey(0x7e), 32769, nil)
}

func (h *harness) update(pmt *lnrpc.Payment, err error) {
	h.t.Helper()
	select {
	case h.pay.events <- payEvent{pmt: pmt, err: err}:
	case <-time.After(waitFor):
		h.t.Fatal("payment update not read")
	}
}

func (h *harness) next() Progress {
	h.t.Helper()
	return recvOrFail(h.t, h.progress, "progress")
}

func (h *harness) wait() (*Result, error) {
	h.t.Helper()
	recvOrFail(h.t, h.done, "Pay to return")
	return h.res, h.err
}

// noProgress checks that nothing more was reported.
func (h *harness) noProgress() {
	h.t.Helper()
	select {
	case p := <-h.progress:
		h.t.Fatalf("unexpected progress %+v", p)
	default:
	}
}

// pmtUpdate builds an lnd payment update with one HTLC attempt through
// firstHop (if set).
func pmtUpdate(hash lntypes.Hash, st lnrpc.Payment_PaymentStatus,
	firstHop *btcec.PrivateKey) *lnrpc.Payment {

	p := &lnrpc.Payment{
		PaymentHash: hex.EncodeToString(hash[:]),
		Status:      st,
		ValueMsat:   1_000_000,
	}
	if firstHop != nil {
		p.Htlcs = []*lnrpc.HTLCAttempt{{
			Route: &lnrpc.Route{Hops: []*lnrpc.Hop{
				{PubKey: keyHex(firstHop)},
				{PubKey: keyHex(testKey(0x7f))},
			}},
		}}
	}
	return p
}

// onionLnd is the part of lnd onionsend uses, for the factory test.
type onionLnd struct {
	peers []string
	sent  []*lnrpc.SendOnionMessageRequest
}

func (o *onionLnd) ListPeers(context.Context, *lnrpc.ListPeersRequest,
	...grpc.CallOption) (*lnrpc.ListPeersResponse, error) {

	resp := &lnrpc.ListPeersResponse{}
	for _, p := range o.peers {
		resp.Peers = append(resp.Peers, &lnrpc.Peer{PubKey: p})
	}
	return resp, nil
}

func (o *onionLnd) GetChanInfo(context.Context, *lnrpc.ChanInfoRequest,
	...grpc.CallOption) (*lnrpc.ChannelEdge, error) {

	return nil, status.Error(codes.NotFound, "edge not found")
}

func (o *onionLnd) SendOnionMessage(_ context.Context,
	in *lnrpc.SendOnionMessageRequest, _ ...grpc.CallOption) (
	*lnrpc.SendOnionMessageResponse, error) {

	o.sent = append(o.sent, in)
	return &lnrpc.SendOnionMessageResponse{}, nil
}

func (o *onionLnd) SendCustomMessage(context.Context,
	*lnrpc.SendCustomMessageRequest, ...grpc.CallOption) (
	*lnrpc.SendCustomMessageResponse, error) {

	return nil, errors.New("not on lnd 0.21")
}
