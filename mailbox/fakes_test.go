package mailbox

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// t0 is the test clock's start, without a monotonic reading.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// waitFor bounds every Eventually in these tests.
const waitFor = 5 * time.Second

func testKey(t *testing.T, seed byte) *btcec.PrivateKey {
	t.Helper()

	var b [32]byte
	b[31] = seed
	b[0] = 0x11
	priv, _ := btcec.PrivKeyFromBytes(b[:])

	return priv
}

func nodeID(t *testing.T, seed byte) route.Vertex {
	t.Helper()

	var id route.Vertex
	copy(id[:], testKey(t, seed).PubKey().SerializeCompressed())

	return id
}

// testMsg is an onion message whose packet is n bytes of tag and whose
// path key is derived from tag, so tests can tell messages apart exactly.
func testMsg(t *testing.T, tag byte, n int) *lnwire.OnionMessage {
	t.Helper()

	blob := make([]byte, n)
	for i := range blob {
		blob[i] = tag
	}

	return lnwire.NewOnionMessage(testKey(t, tag).PubKey(), blob)
}

// sentMsg is one message the fake forwarder was asked to send.
type sentMsg struct {
	peer    route.Vertex
	pathKey [33]byte
	onion   []byte
}

func sentOf(t *testing.T, peer route.Vertex, msg *lnwire.OnionMessage) sentMsg {
	t.Helper()

	s := sentMsg{peer: peer, onion: msg.OnionBlob}
	copy(s.pathKey[:], msg.PathKey.SerializeCompressed())

	return s
}

// fakeForwarder records sends. errs are returned by the first calls, in
// order; gate, if set, makes each send wait for a value.
type fakeForwarder struct {
	mu    sync.Mutex
	sends []sentMsg
	errs  []error
	gate  chan struct{}
	calls int
}

func (f *fakeForwarder) SendToPeer(ctx context.Context, peer route.Vertex,
	msg *lnwire.OnionMessage) error {

	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if err != nil {
			return err
		}
	}
	s := sentMsg{peer: peer, onion: append([]byte(nil), msg.OnionBlob...)}
	copy(s.pathKey[:], msg.PathKey.SerializeCompressed())
	f.sends = append(f.sends, s)

	return nil
}

// failNext makes the next sends return errs, in order.
func (f *fakeForwarder) failNext(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	f.errs = errs
}

func (f *fakeForwarder) sent() []sentMsg {
	f.mu.Lock()
	defer f.mu.Unlock()

	return append([]sentMsg(nil), f.sends...)
}

func (f *fakeForwarder) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()

	return f.calls
}

// progress counts what a fake stream was given and how often its reader
// called Recv. The reader handles one item between two Recv calls, so once
// it has called Recv more often than it was given items, it is done with
// all of them: that is the tests' barrier for "the mailbox has seen it".
type progress struct {
	mu     sync.Mutex
	pushed int
	recvs  int
}

func (p *progress) pushedOne() {
	p.mu.Lock()
	p.pushed++
	p.mu.Unlock()
}

func (p *progress) recvCalled() {
	p.mu.Lock()
	p.recvs++
	p.mu.Unlock()
}

func (p *progress) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()

	return p.recvs > p.pushed
}

// peerStream is a fake SubscribePeerEvents stream.
type peerStream struct {
	grpc.ClientStream
	progress
	ctx    context.Context
	events chan *lnrpc.PeerEvent
	end    chan error
}

func (s *peerStream) Recv() (*lnrpc.PeerEvent, error) {
	s.recvCalled()
	select {
	case ev := <-s.events:
		return ev, nil
	case err := <-s.end:
		return nil, err
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// customStream is a fake SubscribeCustomMessages stream.
type customStream struct {
	grpc.ClientStream
	progress
	ctx  context.Context
	msgs chan *lnrpc.CustomMessage
}

// push hands m to the stream's reader.
func (s *customStream) push(m *lnrpc.CustomMessage) {
	s.pushedOne()
	s.msgs <- m
}

func (s *customStream) Recv() (*lnrpc.CustomMessage, error) {
	s.recvCalled()
	select {
	case m := <-s.msgs:
		return m, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// fakeLnd is the slice of lnd's Lightning service the mailbox and the
// client use. Custom messages pushed with deliver reach every open
// subscription; SendCustomMessage calls onSend, if set, and records them.
type fakeLnd struct {
	mu sync.Mutex

	peers      map[route.Vertex]struct{}
	peerSubs   []*peerStream
	listErr    error
	subscribed int

	customSubs   []*customStream
	customSubErr error
	sentMsgs     []*lnrpc.SendCustomMessageRequest
	onSend       func(*lnrpc.SendCustomMessageRequest)
	sendErr      error

	channels    map[route.Vertex]int
	channelsErr error
}

func newFakeLnd() *fakeLnd {
	return &fakeLnd{
		peers:    make(map[route.Vertex]struct{}),
		channels: make(map[route.Vertex]int),
	}
}

func (l *fakeLnd) ListPeers(context.Context, *lnrpc.ListPeersRequest,
	...grpc.CallOption) (*lnrpc.ListPeersResponse, error) {

	l.mu.Lock()
	defer l.mu.Unlock()

	if l.listErr != nil {
		return nil, l.listErr
	}
	resp := &lnrpc.ListPeersResponse{}
	for p := range l.peers {
		resp.Peers = append(resp.Peers, &lnrpc.Peer{
			PubKey: hex.EncodeToString(p[:]),
		})
	}
	// A peer lnd reports with a key that does not parse is skipped.
	resp.Peers = append(resp.Peers, &lnrpc.Peer{PubKey: "zz"})

	return resp, nil
}

func (l *fakeLnd) SubscribePeerEvents(ctx context.Context,
	_ *lnrpc.PeerEventSubscription, _ ...grpc.CallOption) (
	lnrpc.Lightning_SubscribePeerEventsClient, error) {

	l.mu.Lock()
	defer l.mu.Unlock()

	s := &peerStream{
		ctx:    ctx,
		events: make(chan *lnrpc.PeerEvent, 16),
		end:    make(chan error, 1),
	}
	l.peerSubs = append(l.peerSubs, s)
	l.subscribed++

	return s, nil
}

// setOnline changes a peer's state and tells every subscription.
func (l *fakeLnd) setOnline(peer route.Vertex, online bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	ev := &lnrpc.PeerEvent{PubKey: hex.EncodeToString(peer[:])}
	if online {
		l.peers[peer] = struct{}{}
		ev.Type = lnrpc.PeerEvent_PEER_ONLINE
	} else {
		delete(l.peers, peer)
		ev.Type = lnrpc.PeerEvent_PEER_OFFLINE
	}
	for _, s := range l.peerSubs {
		if s.ctx.Err() == nil {
			s.pushedOne()
			s.events <- ev
		}
	}
}

// settled reports whether every open subscription's reader is done with
// all it was given.
func (l *fakeLnd) settled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()

	for _, s := range l.peerSubs {
		if s.ctx.Err() == nil && !s.done() {
			return false
		}
	}
	for _, s := range l.customSubs {
		if s.ctx.Err() == nil && !s.done() {
			return false
		}
	}

	return true
}

// setChannels sets how many channels lnd has with peer.
func (l *fakeLnd) setChannels(peer route.Vertex, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()

	l.channels[peer] = n
}

// endPeerStreams ends every open peer event subscription.
func (l *fakeLnd) endPeerStreams(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()

	for _, s := range l.peerSubs {
		s.end <- err
	}
	l.peerSubs = nil
}

func (l *fakeLnd) peerSubscriptions() int {
	l.mu.Lock()
	defer l.mu.Unlock()

	return l.subscribed
}

func (l *fakeLnd) SubscribeCustomMessages(ctx context.Context,
	_ *lnrpc.SubscribeCustomMessagesRequest, _ ...grpc.CallOption) (
	lnrpc.Lightning_SubscribeCustomMessagesClient, error) {

	l.mu.Lock()
	defer l.mu.Unlock()

	if l.customSubErr != nil {
		return nil, l.customSubErr
	}
	s := &customStream{ctx: ctx, msgs: make(chan *lnrpc.CustomMessage, 16)}
	l.customSubs = append(l.customSubs, s)

	return s, nil
}

func (l *fakeLnd) customSubscriptions() int {
	l.mu.Lock()
	defer l.mu.Unlock()

	n := 0
	for _, s := range l.customSubs {
		if s.ctx.Err() == nil {
			n++
		}
	}

	return n
}

// deliver hands a custom message from peer to every open subscription.
func (l *fakeLnd) deliver(peer route.Vertex, typ uint32, data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()

	for _, s := range l.customSubs {
		if s.ctx.Err() != nil {
			continue
		}
		s.push(&lnrpc.CustomMessage{
			Peer: peer[:], Type: typ, Data: data,
		})
	}
}

func (l *fakeLnd) SendCustomMessage(_ context.Context,
	in *lnrpc.SendCustomMessageRequest, _ ...grpc.CallOption) (
	*lnrpc.SendCustomMessageResponse, error) {

	l.mu.Lock()
	l.sentMsgs = append(l.sentMsgs, in)
	onSend, err := l.onSend, l.sendErr
	l.mu.Unlock()

	if err != nil {
		return nil, err
	}
	if onSend != nil {
		onSend(in)
	}

	return &lnrpc.SendCustomMessageResponse{}, nil
}

func (l *fakeLnd) sentCustom() []*lnrpc.SendCustomMessageRequest {
	l.mu.Lock()
	defer l.mu.Unlock()

	return append([]*lnrpc.SendCustomMessageRequest(nil), l.sentMsgs...)
}

func (l *fakeLnd) ListChannels(_ context.Context,
	in *lnrpc.ListChannelsRequest, _ ...grpc.CallOption) (
	*lnrpc.ListChannelsResponse, error) {

	l.mu.Lock()
	defer l.mu.Unlock()

	if l.channelsErr != nil {
		return nil, l.channelsErr
	}
	var peer route.Vertex
	copy(peer[:], in.GetPeer())
	resp := &lnrpc.ListChannelsResponse{}
	for i := 0; i < l.channels[peer]; i++ {
		resp.Channels = append(resp.Channels, &lnrpc.Channel{
			RemotePubkey: hex.EncodeToString(peer[:]),
			Active:       true,
		})
	}

	return resp, nil
}

// failingStore fails the calls named in fail; the rest go to the real
// store.
type failingStore struct {
	MessageStore
	mu   sync.Mutex
	fail map[string]bool

	// putGate, if set, makes each PutMailboxMessage wait for a value
	// (or its close) before it writes.
	putGate chan struct{}
}

// gatePuts makes store writes of messages wait until the returned func
// is called.
func (s *failingStore) gatePuts() func() {
	gate := make(chan struct{})
	s.mu.Lock()
	s.putGate = gate
	s.mu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.putGate = nil
			s.mu.Unlock()
			close(gate)
		})
	}
}

var errStoreDown = errors.New("store down")

func (s *failingStore) failing(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	return s.fail[name]
}

func (s *failingStore) set(name string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.fail[name] = fail
}

func (s *failingStore) PutMailboxMessage(ctx context.Context,
	m StoredMessage, claim bool, lim StoreLimits) (
	PutResult, error) {

	s.mu.Lock()
	gate := s.putGate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if s.failing("put") {
		return PutResult{}, errStoreDown
	}

	return s.MessageStore.PutMailboxMessage(ctx, m, claim, lim)
}

func (s *failingStore) RegisterMailboxRecipient(ctx context.Context,
	peer route.Vertex, now time.Time) (Recipient, bool, error) {

	if s.failing("register") {
		return Recipient{}, false, errStoreDown
	}

	return s.MessageStore.RegisterMailboxRecipient(ctx, peer, now)
}

// harness is a mailbox over a real store in a temp file, a fake lnd and a
// fake forwarder, on a test clock.
type harness struct {
	t     *testing.T
	st    TestStore
	fs    *failingStore
	lnd   *fakeLnd
	fwd   *fakeForwarder
	clk   *clock.TestClock
	sweep chan struct{}
	cfg   Config
	mb    *Mailbox
	key   *btcec.PublicKey
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()

	st, err := OpenTestStore(filepath.Join(t.TempDir(), "holdd.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	h := &harness{
		t:     t,
		st:    st,
		fs:    &failingStore{MessageStore: st, fail: map[string]bool{}},
		lnd:   newFakeLnd(),
		fwd:   &fakeForwarder{},
		sweep: make(chan struct{}, 64),
		key:   testKey(t, 200).PubKey(),
	}

	// Every TickAfter is signalled; those of the sweep interval tell the
	// test that the sweeper is waiting for its next tick.
	ticks := make(chan time.Duration)
	h.clk = clock.NewTestClockWithTickSignal(t0, ticks)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })

	// Debug level runs every log statement; the output is noise.
	logger := logrus.New()
	logger.SetLevel(logrus.DebugLevel)
	logger.SetOutput(io.Discard)
	h.cfg = Config{
		Store:      h.fs,
		Forwarder:  h.fwd,
		Peers:      h.lnd,
		Messages:   h.lnd,
		Channels:   h.lnd,
		MailboxKey: h.key,
		Clock:      h.clk,
		Logger:     logger,
		MinBackoff: time.Millisecond,
		MaxBackoff: time.Millisecond,
		Limits: Limits{
			SweepInterval: time.Hour,
			// Off by default so tests can register back to back.
			RegisterInterval: time.Nanosecond,
		},
	}
	if mutate != nil {
		mutate(&h.cfg)
	}
	sweepEvery := h.cfg.Limits.SweepInterval
	go func() {
		for {
			select {
			case d := <-ticks:
				if d == sweepEvery {
					h.sweep <- struct{}{}
				}
			case <-done:
				return
			}
		}
	}()

	return h
}

// start creates and starts the mailbox and waits until it follows lnd's
// peers and custom messages.
func (h *harness) start() {
	h.t.Helper()

	mb, err := New(h.cfg)
	require.NoError(h.t, err)
	require.NoError(h.t, mb.Start(context.Background()))
	h.mb = mb
	h.t.Cleanup(func() { _ = mb.Stop() })

	require.Eventually(h.t, func() bool {
		return mb.Stats().PeerEventsUp &&
			h.lnd.customSubscriptions() > 0
	}, waitFor, time.Millisecond)
}

// register stores a registration directly, before start.
func (h *harness) register(peers ...route.Vertex) {
	h.t.Helper()

	for _, p := range peers {
		_, _, err := h.st.RegisterMailboxRecipient(
			context.Background(), p, t0)
		require.NoError(h.t, err)
	}
}

// settle waits until the mailbox has handled every peer event and custom
// message given to it so far.
func (h *harness) settle() {
	h.t.Helper()

	require.Eventually(h.t, h.lnd.settled, waitFor, time.Millisecond)
}

// peerEvent has lnd report peer connected or gone, and waits until the
// mailbox has handled the event. Going offline makes it not ready at once;
// coming online does not make it ready.
func (h *harness) peerEvent(peer route.Vertex, online bool) {
	h.t.Helper()

	h.lnd.setOnline(peer, online)
	h.settle()
	if !online {
		require.False(h.t, h.mb.isOnline(peer))
	}
}

// registerFrom has peer's holdd register through lnd, as it does once it
// is connected to its own lnd, and waits until the mailbox accepted it and
// counts peer ready. It gives peer a channel so the policy admits it, and
// moves the clock past the rate limit.
func (h *harness) registerFrom(peer route.Vertex) {
	h.t.Helper()

	h.lnd.setChannels(peer, 1)
	h.clk.SetTime(h.clk.Now().Add(h.mb.lim.RegisterInterval))
	accepted := h.mb.Stats().Registrations[RegAccepted]
	h.lnd.deliver(peer, RegisterMsgType, registerData(h.t, 7))
	require.Eventually(h.t, func() bool {
		return h.mb.Stats().Registrations[RegAccepted] == accepted+1 &&
			h.mb.isOnline(peer)
	}, waitFor, time.Millisecond)
}

// connect brings peer back as it comes in production: lnd reports it
// online, then its holdd registers.
func (h *harness) connect(peer route.Vertex) {
	h.t.Helper()

	h.peerEvent(peer, true)
	require.False(h.t, h.mb.isOnline(peer))
	h.registerFrom(peer)
}

// waiting returns the first byte of each of peer's waiting messages.
func (h *harness) waiting(peer route.Vertex) []byte {
	h.t.Helper()

	msgs, err := h.st.NextMailboxMessages(context.Background(), peer, 1000)
	require.NoError(h.t, err)
	tags := []byte{}
	for _, m := range msgs {
		tags = append(tags, m.Onion[0])
	}

	return tags
}

// waitSends waits until n messages were sent and returns them.
func (h *harness) waitSends(n int) []sentMsg {
	h.t.Helper()

	require.Eventually(h.t, func() bool {
		return len(h.fwd.sent()) >= n
	}, waitFor, time.Millisecond)

	return h.fwd.sent()
}

// waitIdle waits until no delivery owns a queue.
func (h *harness) waitIdle() {
	h.t.Helper()

	require.Eventually(h.t, func() bool {
		h.mb.mu.Lock()
		defer h.mb.mu.Unlock()

		return len(h.mb.queues) == 0
	}, waitFor, time.Millisecond)
}

// partialUnregisterStore deletes only the first of a recipient's messages
// when asked to unregister it and then fails, as the store's chunked delete
// does when a later chunk fails: the first chunk is committed.
type partialUnregisterStore struct {
	MessageStore
	st TestStore
}

func (s *partialUnregisterStore) UnregisterMailboxRecipient(
	ctx context.Context, peer route.Vertex) ([]RemovedMessage, bool,
	error) {

	msgs, err := s.st.NextMailboxMessages(ctx, peer, 1)
	if err != nil || len(msgs) == 0 {
		return nil, false, errStoreDown
	}
	ok, err := s.st.DeleteMailboxMessage(ctx, msgs[0].ID)
	if err != nil || !ok {
		return nil, false, errStoreDown
	}

	return []RemovedMessage{{
		ID: msgs[0].ID, Recipient: peer, Size: msgs[0].Size(),
	}}, false, errStoreDown
}

// TestStore is the real SQLite store as these tests use it. Package store
// imports mailbox, so a test inside mailbox cannot import store; the
// external test file realstore_test.go sets OpenTestStore instead.
type TestStore interface {
	MessageStore
	Close() error
}

// OpenTestStore opens a real store at path; set by realstore_test.go.
var OpenTestStore func(path string) (TestStore, error)
