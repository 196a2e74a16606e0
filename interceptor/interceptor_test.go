package interceptor

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// fakeStream is one HtlcInterceptor stream: the test pushes requests, the
// interceptor's responses are recorded.
type fakeStream struct {
	grpc.ClientStream
	ctx  context.Context
	reqs chan *routerrpc.ForwardHtlcInterceptRequest

	mu   sync.Mutex
	sent []*routerrpc.ForwardHtlcInterceptResponse
}

func (s *fakeStream) Recv() (*routerrpc.ForwardHtlcInterceptRequest, error) {
	select {
	case r, ok := <-s.reqs:
		if !ok {
			return nil, io.EOF
		}
		return r, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s *fakeStream) Send(r *routerrpc.ForwardHtlcInterceptResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, r)
	return nil
}

func (s *fakeStream) responses() []*routerrpc.ForwardHtlcInterceptResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*routerrpc.ForwardHtlcInterceptResponse(nil), s.sent...)
}

// fakeRouter hands out a new fakeStream per HtlcInterceptor call.
type fakeRouter struct {
	streams chan *fakeStream
}

func (r *fakeRouter) HtlcInterceptor(ctx context.Context,
	_ ...grpc.CallOption) (routerrpc.Router_HtlcInterceptorClient, error) {

	s := &fakeStream{
		ctx:  ctx,
		reqs: make(chan *routerrpc.ForwardHtlcInterceptRequest),
	}
	r.streams <- s
	return s, nil
}

// fakeEngine answers with a fixed decision per htlc id.
type fakeEngine struct {
	decisions map[uint64]plugin.Decision
}

func (e *fakeEngine) Intercept(_ context.Context,
	h plugin.HTLC) plugin.Decision {

	return e.decisions[h.Key.HtlcID]
}

func request(chanID, htlcID uint64) *routerrpc.ForwardHtlcInterceptRequest {
	return &routerrpc.ForwardHtlcInterceptRequest{
		IncomingCircuitKey: &routerrpc.CircuitKey{
			ChanId: chanID, HtlcId: htlcID,
		},
		PaymentHash:         make([]byte, 32),
		InWireCustomRecords: map[uint64][]byte{75537: {}},
		IncomingExpiry:      700,
		AutoFailHeight:      681,
	}
}

func startInterceptor(t *testing.T, decisions map[uint64]plugin.Decision) (
	*Interceptor, *fakeRouter) {

	t.Helper()
	router := &fakeRouter{streams: make(chan *fakeStream, 4)}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	i, err := New(Config{
		Router:     router,
		MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond,
		Logger:     logger,
	})
	require.NoError(t, err)
	require.NoError(t, i.Start(&fakeEngine{decisions: decisions}))
	t.Cleanup(func() { require.NoError(t, i.Stop()) })
	return i, router
}

func nextStream(t *testing.T, r *fakeRouter) *fakeStream {
	t.Helper()
	select {
	case s := <-r.streams:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no interceptor stream opened")
		return nil
	}
}

func TestDecisionsAreSentForOfferedKeys(t *testing.T) {
	i, router := startInterceptor(t, map[uint64]plugin.Decision{
		1: {Action: plugin.ActionResume},
		2: {Action: plugin.ActionFail, Reason: plugin.FailCapTotal},
		3: {Action: plugin.ActionHold},
	})
	s := nextStream(t, router)
	require.Eventually(t, i.Connected, 5*time.Second, time.Millisecond)

	s.reqs <- request(9, 1)
	s.reqs <- request(9, 2)
	s.reqs <- request(9, 3)
	require.Eventually(t, func() bool { return len(s.responses()) == 2 },
		5*time.Second, time.Millisecond)

	byID := map[uint64]*routerrpc.ForwardHtlcInterceptResponse{}
	for _, r := range s.responses() {
		require.Equal(t, uint64(9), r.IncomingCircuitKey.ChanId)
		byID[r.IncomingCircuitKey.HtlcId] = r
	}
	require.Equal(t, routerrpc.ResolveHoldForwardAction_RESUME,
		byID[1].Action)
	require.Equal(t, routerrpc.ResolveHoldForwardAction_FAIL,
		byID[2].Action)
	require.Equal(t, lnrpc.Failure_TEMPORARY_CHANNEL_FAILURE,
		byID[2].FailureCode)
	require.NotContains(t, byID, uint64(3))

	// The held key is resolvable once, later. The receive loop marks it
	// offered just after lnd's send returns, so wait for that.
	ctx := context.Background()
	require.Eventually(t, func() bool {
		return i.isOffered(plugin.CircuitKey{ChanID: 9, HtlcID: 3})
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, i.Resume(ctx, plugin.CircuitKey{ChanID: 9, HtlcID: 3}))
	err := i.Resume(ctx, plugin.CircuitKey{ChanID: 9, HtlcID: 3})
	require.ErrorIs(t, err, plugin.ErrNotOffered)
	require.Len(t, s.responses(), 3)
}

func TestNeverResolvesUnofferedKey(t *testing.T) {
	i, router := startInterceptor(t, nil)
	s := nextStream(t, router)
	require.Eventually(t, i.Connected, 5*time.Second, time.Millisecond)

	ctx := context.Background()
	err := i.Resume(ctx, plugin.CircuitKey{ChanID: 1, HtlcID: 1})
	require.ErrorIs(t, err, plugin.ErrNotOffered)
	err = i.Fail(ctx, plugin.CircuitKey{ChanID: 1, HtlcID: 1})
	require.ErrorIs(t, err, plugin.ErrNotOffered)
	require.Empty(t, s.responses())
}

func TestReconnectForgetsOfferedKeys(t *testing.T) {
	i, router := startInterceptor(t, map[uint64]plugin.Decision{
		5: {Action: plugin.ActionHold},
	})
	first := nextStream(t, router)
	first.reqs <- request(2, 5)
	key := plugin.CircuitKey{ChanID: 2, HtlcID: 5}

	// lnd drops the stream; the key offered on it is gone with it.
	close(first.reqs)
	second := nextStream(t, router)
	require.Eventually(t, i.Connected, 5*time.Second, time.Millisecond)
	err := i.Resume(context.Background(), key)
	require.ErrorIs(t, err, plugin.ErrNotOffered)
	require.Empty(t, first.responses())
	require.Empty(t, second.responses())
	require.Equal(t, uint64(1), i.Reconnects())

	// lnd replays it on the new stream: now it can be resolved there.
	second.reqs <- request(2, 5)
	require.Eventually(t, func() bool {
		return i.Resume(context.Background(), key) == nil
	}, 5*time.Second, time.Millisecond)
	require.Len(t, second.responses(), 1)
	require.Equal(t, routerrpc.ResolveHoldForwardAction_RESUME,
		second.responses()[0].Action)
}

func TestMalformedRequestIsNotAnswered(t *testing.T) {
	i, router := startInterceptor(t, map[uint64]plugin.Decision{
		1: {Action: plugin.ActionResume},
	})
	s := nextStream(t, router)
	bad := request(3, 1)
	bad.PaymentHash = make([]byte, 31)
	s.reqs <- bad
	noKey := request(3, 1)
	noKey.IncomingCircuitKey = nil
	s.reqs <- noKey
	s.reqs <- request(3, 1)
	require.Eventually(t, func() bool { return len(s.responses()) == 1 },
		5*time.Second, time.Millisecond)
	require.True(t, i.Connected())
	err := i.Resume(context.Background(), plugin.CircuitKey{ChanID: 3,
		HtlcID: 1})
	require.True(t, errors.Is(err, plugin.ErrNotOffered))
}

func TestToHTLC(t *testing.T) {
	req := &routerrpc.ForwardHtlcInterceptRequest{
		IncomingCircuitKey:      &routerrpc.CircuitKey{ChanId: 11, HtlcId: 12},
		IncomingAmountMsat:      5000,
		OutgoingAmountMsat:      4000,
		IncomingExpiry:          700,
		OutgoingExpiry:          660,
		OutgoingRequestedChanId: 13,
		AutoFailHeight:          681,
		PaymentHash:             append(make([]byte, 31), 0xaa),
		InWireCustomRecords:     map[uint64][]byte{75537: {}},
	}
	h, err := toHTLC(req)
	require.NoError(t, err)
	var hash lntypes.Hash
	hash[31] = 0xaa
	require.Equal(t, plugin.HTLC{
		Key:             plugin.CircuitKey{ChanID: 11, HtlcID: 12},
		PaymentHash:     hash,
		IncomingAmtMsat: 5000,
		OutgoingAmtMsat: 4000,
		IncomingExpiry:  700,
		OutgoingExpiry:  660,
		OutgoingChanID:  13,
		AutoFailHeight:  681,
		CustomRecords:   map[uint64][]byte{75537: {}},
	}, h)
}

// TestOnChainOfferIsNeverResolved: after a force-close lnd offers the HTLC
// again with auto_fail_height = incoming expiry; answering it would end the
// stream, whatever the engine decided.
func TestOnChainOfferIsNeverResolved(t *testing.T) {
	i, router := startInterceptor(t, map[uint64]plugin.Decision{
		1: {Action: plugin.ActionResume},
		2: {Action: plugin.ActionHold},
	})
	s := nextStream(t, router)
	held := request(4, 2)
	s.reqs <- held
	require.Eventually(t, func() bool {
		return i.isOffered(plugin.CircuitKey{ChanID: 4, HtlcID: 2})
	}, 5*time.Second, time.Millisecond)

	for _, id := range []uint64{1, 2} {
		r := request(4, id)
		r.AutoFailHeight = int32(r.IncomingExpiry)
		s.reqs <- r
	}
	// A normal offer behind them shows the on-chain ones were handled.
	s.reqs <- request(5, 1)
	require.Eventually(t, func() bool { return len(s.responses()) == 1 },
		5*time.Second, time.Millisecond)
	require.Equal(t, uint64(5), s.responses()[0].IncomingCircuitKey.ChanId)

	ctx := context.Background()
	for _, id := range []uint64{1, 2} {
		err := i.Fail(ctx, plugin.CircuitKey{ChanID: 4, HtlcID: id})
		require.ErrorIs(t, err, plugin.ErrNotOffered)
	}
	require.Len(t, s.responses(), 1)
}

// isOffered reports whether key is offered on the current stream.
func (i *Interceptor) isOffered(key plugin.CircuitKey) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	_, ok := i.offered[key]
	return ok
}
