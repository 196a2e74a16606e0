package custommsg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/signrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// testTimeout bounds every wait for the transport's goroutine.
const testTimeout = 5 * time.Second

// testKey returns the private key whose 32 bytes are all b.
func testKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

// wireOnionMessage assembles an onion_message body by hand:
// path_key (33) | u16 big-endian length | packet.
func wireOnionMessage(pathKey *btcec.PublicKey, packet []byte) []byte {
	b := append([]byte(nil), pathKey.SerializeCompressed()...)
	b = append(b, byte(len(packet)>>8), byte(len(packet)))
	return append(b, packet...)
}

// pattern returns n bytes counting up from seed.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func quietLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(testWriter{})
	return l
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

// streamEvent is one thing a fake stream's Recv returns.
type streamEvent struct {
	msg *lnrpc.CustomMessage
	err error
}

// fakeStream is a channel-driven SubscribeCustomMessages stream. Recv
// returns the next event, or the subscription context's error once the
// transport cancels it, as a real gRPC stream does.
type fakeStream struct {
	grpc.ClientStream

	ctx    context.Context
	events chan streamEvent
}

func (s *fakeStream) Recv() (*lnrpc.CustomMessage, error) {
	select {
	case ev := <-s.events:
		return ev.msg, ev.err
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s *fakeStream) Context() context.Context { return s.ctx }

// deliver queues a custom message on the stream.
func (s *fakeStream) deliver(t testing.TB, typ uint32, data []byte) {
	t.Helper()
	s.push(t, streamEvent{msg: &lnrpc.CustomMessage{
		Peer: testKey(0x77).PubKey().SerializeCompressed(),
		Type: typ,
		Data: data,
	}})
}

// deliverFrom queues a custom message from peer on the stream.
func (s *fakeStream) deliverFrom(t testing.TB, peer *btcec.PublicKey,
	typ uint32, data []byte) {

	t.Helper()
	s.push(t, streamEvent{msg: &lnrpc.CustomMessage{
		Peer: peer.SerializeCompressed(),
		Type: typ,
		Data: data,
	}})
}

// end makes the stream's next Recv fail with err.
func (s *fakeStream) end(t testing.TB, err error) {
	t.Helper()
	s.push(t, streamEvent{err: err})
}

func (s *fakeStream) push(t testing.TB, ev streamEvent) {
	t.Helper()
	select {
	case s.events <- ev:
	case <-time.After(testTimeout):
		t.Fatal("stream event not consumed")
	}
}

// fakeLightning is a CustomMessageClient. Subscribe calls fail with the
// queued subscribeErrs first; later ones open a fakeStream and publish it on
// streams.
type fakeLightning struct {
	streams chan *fakeStream

	mu             sync.Mutex
	subscribeErrs  []error
	subscribeCalls int
	sent           []*lnrpc.SendCustomMessageRequest
	sendErr        error
}

func newFakeLightning(subscribeErrs ...error) *fakeLightning {
	return &fakeLightning{
		streams:       make(chan *fakeStream, 16),
		subscribeErrs: subscribeErrs,
	}
}

func (f *fakeLightning) SubscribeCustomMessages(ctx context.Context,
	_ *lnrpc.SubscribeCustomMessagesRequest, _ ...grpc.CallOption) (
	lnrpc.Lightning_SubscribeCustomMessagesClient, error) {

	f.mu.Lock()
	f.subscribeCalls++
	if len(f.subscribeErrs) > 0 {
		err := f.subscribeErrs[0]
		f.subscribeErrs = f.subscribeErrs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()

	s := &fakeStream{ctx: ctx, events: make(chan streamEvent)}
	f.streams <- s
	return s, nil
}

func (f *fakeLightning) SendCustomMessage(_ context.Context,
	in *lnrpc.SendCustomMessageRequest, _ ...grpc.CallOption) (
	*lnrpc.SendCustomMessageResponse, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, in)
	if f.sendErr != nil {
		return nil, f.sendErr
	}
	return &lnrpc.SendCustomMessageResponse{Status: "ok"}, nil
}

func (f *fakeLightning) sentRequests() []*lnrpc.SendCustomMessageRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*lnrpc.SendCustomMessageRequest(nil), f.sent...)
}

// nextStream waits for the transport's next successful subscription.
func (f *fakeLightning) nextStream(t testing.TB) *fakeStream {
	t.Helper()
	select {
	case s := <-f.streams:
		return s
	case <-time.After(testTimeout):
		t.Fatal("no subscription")
		return nil
	}
}

// recorder is an OnMessage handler that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []*lnwire.OnionMessage
	ctxs []context.Context
	got  chan struct{}
}

func newRecorder() *recorder {
	return &recorder{got: make(chan struct{}, 100)}
}

func (r *recorder) handle(ctx context.Context, msg *lnwire.OnionMessage) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msg)
	r.ctxs = append(r.ctxs, ctx)
	r.mu.Unlock()
	r.got <- struct{}{}
}

// wait blocks until the handler has been called n more times.
func (r *recorder) wait(t testing.TB, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.got:
		case <-time.After(testTimeout):
			t.Fatal("handler not called")
		}
	}
}

func (r *recorder) messages() []*lnwire.OnionMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*lnwire.OnionMessage(nil), r.msgs...)
}

// fakeSigner answers DeriveSharedKey as lnd does, with its own copy of the
// node key: SHA256 of the compressed point k*P, computed here with btcec's
// scalar multiplication rather than any ECDH helper under test.
type fakeSigner struct {
	key *btcec.PrivateKey

	mu        sync.Mutex
	requests  []*signrpc.SharedKeyRequest
	deadlines []time.Time
	err       error
	resp      *signrpc.SharedKeyResponse
	block     bool
}

func (s *fakeSigner) DeriveSharedKey(ctx context.Context,
	in *signrpc.SharedKeyRequest, _ ...grpc.CallOption) (
	*signrpc.SharedKeyResponse, error) {

	s.mu.Lock()
	s.requests = append(s.requests, in)
	deadline, _ := ctx.Deadline()
	s.deadlines = append(s.deadlines, deadline)
	err, resp, block := s.err, s.resp, s.block
	s.mu.Unlock()

	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	if resp != nil {
		return resp, nil
	}

	pub, err := btcec.ParsePubKey(in.EphemeralPubkey)
	if err != nil {
		return nil, errors.New("bad ephemeral pubkey")
	}
	var p, shared btcec.JacobianPoint
	pub.AsJacobian(&p)
	btcec.ScalarMultNonConst(&s.key.Key, &p, &shared)
	shared.ToAffine()
	point := btcec.NewPublicKey(&shared.X, &shared.Y)
	sum := sha256.Sum256(point.SerializeCompressed())
	return &signrpc.SharedKeyResponse{SharedKey: sum[:]}, nil
}

func (s *fakeSigner) calls() []*signrpc.SharedKeyRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*signrpc.SharedKeyRequest(nil), s.requests...)
}

// startTransport starts a transport on client with rec as handler and
// stops it at the end of the test.
func startTransport(t *testing.T, cfg Config) *Transport {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	tr, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, tr.Start())
	t.Cleanup(func() { require.NoError(t, tr.Stop()) })
	return tr
}
