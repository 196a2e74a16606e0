package asyncsend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The cast: our LSP L, the recipient's LSP R (introduction node of the
// recipient's paths), the recipient P, holdd's key H at L (final hop of the
// release paths) and an unrelated peer X.
var (
	lspKey   = testKey(0x10)
	rKey     = testKey(0x20)
	pKey     = testKey(0x21)
	holddKey = testKey(0x30)
	xKey     = testKey(0x40)
)

type fixture struct {
	recipient []*onionmsg.BlindedPath
	release   []*onionmsg.BlindedPath
	preimage  lntypes.Preimage
	hash      lntypes.Hash
	expires   time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{
		recipient: []*onionmsg.BlindedPath{
			twoHopPath(t, 0x51, rKey, pKey, "recipient 0"),
			twoHopPath(t, 0x52, rKey, pKey, "recipient 1"),
		},
		release: []*onionmsg.BlindedPath{
			twoHopPath(t, 0x61, lspKey, holddKey, "release 0"),
			twoHopPath(t, 0x62, lspKey, holddKey, "release 1"),
			twoHopPath(t, 0x63, lspKey, holddKey, "release 2"),
		},
		expires: testNow.Add(time.Hour),
	}
	f.preimage = lntypes.Preimage(bytes.Repeat([]byte{0x07}, 32))
	f.hash = sha256.Sum256(f.preimage[:])
	return f
}

func (f *fixture) succeeded(fee int64) *lnrpc.Payment {
	p := pmtUpdate(f.hash, lnrpc.Payment_SUCCEEDED, lspKey)
	p.PaymentPreimage = hex.EncodeToString(f.preimage[:])
	p.FeeMsat = fee
	return p
}

// expectSent checks the messages the messenger sent: pairs of (recipient
// path, release path) indexes, each through L with 72 = 00.
func (f *fixture) expectSent(t *testing.T, msgr *fakeMessenger,
	pairs ...[2]int) {

	t.Helper()
	var want []sent
	for _, p := range pairs {
		want = append(want, sent{
			lsp:       key33(lspKey),
			path:      pathBytes(t, f.recipient[p[0]]),
			replyPath: pathBytes(t, f.release[p[1]]),
			finalTLVs: map[uint64][]byte{72: {0x00}},
		})
	}
	require.Equal(t, want, msgr.all())
}

var viaRoute = onionsend.Route{
	Peer: key33(lspKey), Intro: key33(rKey), Via: true,
}

func TestPayInvoice(t *testing.T) {
	f := newFixture(t)
	req := &Request{
		PaymentRequest: "lnbcrt10u1ptest",
		OutgoingChanID: 42,
		FeeLimitSat:    100,
		CltvLimit:      500,
		TimeoutSeconds: 30,
		RecipientPaths: f.recipient[:2],
	}
	h := newHarness(t, req, harnessOpts{})

	// Subscribed before paying.
	require.Equal(t, []string{"SubscribeCustomMessages", "SendPaymentV2"},
		h.lnd.callLog())
	got := h.lnd.payReqs[0]
	require.True(t, proto.Equal(&routerrpc.SendPaymentRequest{
		PaymentRequest:  "lnbcrt10u1ptest",
		TimeoutSeconds:  30,
		FeeLimitSat:     100,
		CltvLimit:       500,
		OutgoingChanIds: []uint64{42},
		MaxParts:        1,
		FirstHopCustomRecords: map[uint64][]byte{
			75537: {},
		},
	}, got), "%v", got)
	require.Equal(t, map[uint64][]byte{75537: {}},
		got.FirstHopCustomRecords)

	h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
	require.Equal(t, Progress{
		Stage: StagePaymentInFlight, Time: testNow,
		PaymentHash: f.hash, Attempts: 1,
	}, h.next())

	key := plugin.CircuitKey{ChanID: 123456, HtlcID: 4}
	h.deliver(lspKey, release.PathDeliveryMsgType, deliveryBytes(t, key,
		f.hash, f.expires, f.release[0], f.release[1]))

	held := Held{
		LSP: key33(lspKey), ChanID: 123456, HtlcID: 4,
		AmountMsat: 1_000_500, Paths: 2, ExpiresAt: f.expires,
	}
	require.Equal(t, Progress{
		Stage: StageHeld, Time: testNow, PaymentHash: f.hash,
		Held: &held,
	}, h.next())
	for i := range 2 {
		require.Equal(t, Progress{
			Stage: StageMessageSent, Time: testNow,
			PaymentHash: f.hash,
			Message: &MessageReport{
				ChanID: 123456, HtlcID: 4, Index: i,
				RecipientPath: i, ReleasePath: i,
				Route: viaRoute,
			},
		}, h.next())
	}
	f.expectSent(t, h.msgr, [2]int{0, 0}, [2]int{1, 1})

	h.update(f.succeeded(1500), nil)
	require.Equal(t, Progress{
		Stage: StageSucceeded, Time: testNow, PaymentHash: f.hash,
		Preimage: f.preimage, FeeMsat: 1500,
	}, h.next())

	res, err := h.wait()
	require.NoError(t, err)
	require.Equal(t, &Result{
		PaymentHash:  f.hash,
		Status:       lnrpc.Payment_SUCCEEDED,
		Preimage:     f.preimage,
		ValueMsat:    1_000_000,
		FeeMsat:      1500,
		Held:         []Held{held},
		MessagesSent: 2,
	}, res)
	require.True(t, res.Succeeded())
	h.noProgress()
}

// TestPayKeysendOneRecipientPath pays by keysend to a recipient with one
// message path: two messages go over it, with distinct release paths. The
// delivery arrives before lnd reported the HTLC attempt and waits for it.
func TestPayKeysendOneRecipientPath(t *testing.T) {
	f := newFixture(t)
	rnd := bytes.Repeat([]byte{0x07}, 32)
	req := &Request{
		Dest:           pKey.PubKey(),
		AmtSat:         1000,
		FeeLimitSat:    10,
		HoldType:       75539,
		RecipientPaths: f.recipient[:1],
	}
	h := newHarness(t, req, harnessOpts{rnd: rnd})

	got := h.lnd.payReqs[0]
	require.True(t, proto.Equal(&routerrpc.SendPaymentRequest{
		Dest:           pKey.PubKey().SerializeCompressed(),
		Amt:            1000,
		PaymentHash:    f.hash[:],
		TimeoutSeconds: 60,
		FeeLimitSat:    10,
		MaxParts:       1,
		DestCustomRecords: map[uint64][]byte{
			5482373484: rnd,
		},
		FirstHopCustomRecords: map[uint64][]byte{75539: {}},
	}, got), "%v", got)
	require.Equal(t, map[uint64][]byte{75539: {}},
		got.FirstHopCustomRecords)
	require.Equal(t, sha256.Sum256(got.DestCustomRecords[5482373484]),
		[32]byte(got.PaymentHash))

	key := plugin.CircuitKey{ChanID: 9, HtlcID: 0}
	h.deliver(lspKey, release.PathDeliveryMsgType, deliveryBytes(t, key,
		f.hash, f.expires, f.release...))
	h.flush()
	h.noProgress()
	require.Empty(t, h.msgr.all())

	h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
	require.Equal(t, StagePaymentInFlight, h.next().Stage)
	require.Equal(t, StageHeld, h.next().Stage)
	for i := range 2 {
		p := h.next()
		require.Equal(t, StageMessageSent, p.Stage)
		require.Equal(t, &MessageReport{
			ChanID: 9, Index: i, RecipientPath: 0,
			ReleasePath: i, Route: viaRoute,
		}, p.Message)
	}
	f.expectSent(t, h.msgr, [2]int{0, 0}, [2]int{0, 1})

	h.update(f.succeeded(0), nil)
	require.Equal(t, StageSucceeded, h.next().Stage)
	res, err := h.wait()
	require.NoError(t, err)
	require.Equal(t, f.preimage, res.Preimage)
	require.Equal(t, 2, res.MessagesSent)
	require.Equal(t, Ignored{}, res.Ignored)
}

func TestPayIgnoresForeignDeliveries(t *testing.T) {
	f := newFixture(t)
	h := newHarness(t, &Request{PaymentRequest: "lnbcrt1",
		RecipientPaths: f.recipient[:2]}, harnessOpts{})
	h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
	require.Equal(t, StagePaymentInFlight, h.next().Stage)

	good := plugin.CircuitKey{ChanID: 5, HtlcID: 1}
	other := f.hash
	other[0] ^= 1
	for _, m := range []struct {
		peer *btcec.PrivateKey
		typ  uint32
		data []byte
	}{
		// Another message type is not ours to count.
		{lspKey, 48003, []byte{1, 2, 3}},
		// Undecodable.
		{lspKey, release.PathDeliveryMsgType, []byte{0x00, 0x01}},
		// Another payment.
		{lspKey, release.PathDeliveryMsgType, deliveryBytes(t,
			good, other, f.expires, f.release[0])},
		// Our hash, but from a peer our HTLC did not go through.
		{xKey, release.PathDeliveryMsgType, deliveryBytes(t,
			plugin.CircuitKey{ChanID: 6}, f.hash, f.expires,
			f.release[0])},
		// Already expired.
		{lspKey, release.PathDeliveryMsgType, deliveryBytes(t,
			plugin.CircuitKey{ChanID: 7}, f.hash, testNow,
			f.release[0])},
	} {
		h.deliver(m.peer, m.typ, m.data)
	}
	h.flush()
	h.noProgress()
	require.Empty(t, h.msgr.all())

	h.deliver(lspKey, release.PathDeliveryMsgType, deliveryBytes(t, good,
		f.hash, f.expires, f.release[1], f.release[2]))
	require.Equal(t, StageHeld, h.next().Stage)
	require.Equal(t, StageMessageSent, h.next().Stage)
	require.Equal(t, StageMessageSent, h.next().Stage)

	// The same HTLC delivered again (e.g. holdd restarted) is not
	// announced twice.
	h.deliver(lspKey, release.PathDeliveryMsgType, deliveryBytes(t, good,
		f.hash, f.expires, f.release[0]))
	h.flush()
	h.noProgress()
	f.expectSent(t, h.msgr, [2]int{0, 1}, [2]int{1, 2})

	h.update(f.succeeded(0), nil)
	require.Equal(t, StageSucceeded, h.next().Stage)
	res, err := h.wait()
	require.NoError(t, err)
	require.Equal(t, Ignored{
		Undecodable: 1, OtherPayment: 1, NotFirstHop: 1,
		Duplicate: 1, Expired: 1,
	}, res.Ignored)
	require.Len(t, res.Held, 1)
}

func TestPayOnePathFails(t *testing.T) {
	f := newFixture(t)
	boom := errors.New("boom")
	fail := map[string]error{
		hex.EncodeToString(pathBytes(t, f.recipient[0])): boom,
	}
	h := newHarness(t, &Request{PaymentRequest: "lnbcrt1",
		RecipientPaths: f.recipient[:2]}, harnessOpts{fail: fail})
	h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
	require.Equal(t, StagePaymentInFlight, h.next().Stage)

	key := plugin.CircuitKey{ChanID: 5, HtlcID: 1}
	h.deliver(lspKey, release.PathDeliveryMsgType, deliveryBytes(t, key,
		f.hash, f.expires, f.release[:2]...))
	require.Equal(t, StageHeld, h.next().Stage)

	first := h.next()
	require.Equal(t, StageMessageFailed, first.Stage)
	require.ErrorIs(t, first.Message.Err, boom)
	require.Equal(t, 0, first.Message.RecipientPath)
	require.Equal(t, 0, first.Message.ReleasePath)

	second := h.next()
	require.Equal(t, StageMessageSent, second.Stage)
	require.NoError(t, second.Message.Err)
	require.Equal(t, 1, second.Message.RecipientPath)
	require.Equal(t, 1, second.Message.ReleasePath)
	f.expectSent(t, h.msgr, [2]int{0, 0}, [2]int{1, 1})

	h.update(f.succeeded(0), nil)
	require.Equal(t, StageSucceeded, h.next().Stage)
	res, err := h.wait()
	require.NoError(t, err)
	require.Equal(t, 1, res.MessagesSent)
	require.Equal(t, 1, res.MessagesFailed)
}

func TestPayFailed(t *testing.T) {
	f := newFixture(t)
	h := newHarness(t, &Request{PaymentRequest: "lnbcrt1",
		RecipientPaths: f.recipient[:1]}, harnessOpts{})
	h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
	require.Equal(t, StagePaymentInFlight, h.next().Stage)

	failed := pmtUpdate(f.hash, lnrpc.Payment_FAILED, lspKey)
	failed.FailureReason = lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT
	h.update(failed, nil)
	require.Equal(t, Progress{
		Stage: StageFailed, Time: testNow, PaymentHash: f.hash,
		FailureReason: lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT,
	}, h.next())

	res, err := h.wait()
	require.NoError(t, err)
	require.False(t, res.Succeeded())
	require.Equal(t, lnrpc.Payment_FAILED, res.Status)
	require.Equal(t, lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT,
		res.FailureReason)
	require.Empty(t, res.Held)
	require.Empty(t, h.msgr.all())
}

// TestPayWithoutHold: an LSP without holdd forwards at once; the payment
// just succeeds.
func TestPayWithoutHold(t *testing.T) {
	f := newFixture(t)
	h := newHarness(t, &Request{PaymentRequest: "lnbcrt1",
		RecipientPaths: f.recipient[:1]}, harnessOpts{})
	h.update(pmtUpdate(f.hash, lnrpc.Payment_INITIATED, nil), nil)
	h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
	h.update(f.succeeded(1000), nil)

	require.Equal(t, Progress{
		Stage: StagePaymentInFlight, Time: testNow, PaymentHash: f.hash,
	}, h.next())
	require.Equal(t, StageSucceeded, h.next().Stage)
	res, err := h.wait()
	require.NoError(t, err)
	require.True(t, res.Succeeded())
	require.Empty(t, res.Held)
	require.Zero(t, res.MessagesSent)
	h.noProgress()
}

func TestPayStreamErrors(t *testing.T) {
	f := newFixture(t)
	req := &Request{PaymentRequest: "lnbcrt1",
		RecipientPaths: f.recipient[:1]}

	t.Run("refused", func(t *testing.T) {
		h := newHarness(t, req, harnessOpts{})
		h.update(nil, status.Error(codes.Unknown,
			"invoice is already paid"))
		_, err := h.wait()
		require.ErrorIs(t, err, ErrPayment)
		require.ErrorContains(t, err, "already paid")
	})

	t.Run("ended early", func(t *testing.T) {
		h := newHarness(t, req, harnessOpts{})
		h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
		h.update(nil, io.EOF)
		res, err := h.wait()
		require.ErrorIs(t, err, ErrStreamEnded)
		require.Equal(t, f.hash, res.PaymentHash)
	})

	t.Run("broken", func(t *testing.T) {
		h := newHarness(t, req, harnessOpts{})
		h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
		h.update(nil, status.Error(codes.Unavailable, "gone"))
		_, err := h.wait()
		require.ErrorIs(t, err, ErrStreamEnded)
	})

	t.Run("interrupted", func(t *testing.T) {
		h := newHarness(t, req, harnessOpts{})
		h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
		require.Equal(t, StagePaymentInFlight, h.next().Stage)
		h.cancel()
		res, err := h.wait()
		require.ErrorIs(t, err, ErrInterrupted)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, f.hash, res.PaymentHash)
		require.Equal(t, lnrpc.Payment_IN_FLIGHT, res.Status)
	})

	t.Run("cannot subscribe", func(t *testing.T) {
		lnd := newFakeLnd()
		lnd.subErr = errors.New("no permission")
		p, err := New(Config{Messages: lnd, Router: lnd,
			NewMessenger: (&fakeMessenger{}).factory})
		require.NoError(t, err)
		_, err = p.Pay(context.Background(), req, nil)
		require.ErrorContains(t, err, "no permission")
		require.Equal(t, []string{"SubscribeCustomMessages"},
			lnd.callLog())
	})
}

// TestPayResubscribes: a broken custom message stream is replaced after the
// delay, and a delivery on the new one is acted on.
func TestPayResubscribes(t *testing.T) {
	f := newFixture(t)
	ticks := make(chan time.Duration, 10)
	h := newHarness(t, &Request{PaymentRequest: "lnbcrt1",
		RecipientPaths: f.recipient[:2]}, harnessOpts{ticks: ticks})
	h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
	require.Equal(t, StagePaymentInFlight, h.next().Stage)

	h.sub.events <- subEvent{err: status.Error(codes.Unavailable, "x")}
	require.Equal(t, DefaultResubscribeDelay,
		recvOrFail(t, ticks, "resubscribe timer"))
	select {
	case <-h.lnd.subs:
		t.Fatal("resubscribed before the delay")
	default:
	}
	h.clock.SetTime(testNow.Add(DefaultResubscribeDelay))
	h.sub = h.nextSub()

	h.deliver(lspKey, release.PathDeliveryMsgType, deliveryBytes(t,
		plugin.CircuitKey{ChanID: 1}, f.hash, f.expires,
		f.release[:2]...))
	require.Equal(t, StageHeld, h.next().Stage)
	require.Equal(t, StageMessageSent, h.next().Stage)
	require.Equal(t, StageMessageSent, h.next().Stage)

	h.update(f.succeeded(0), nil)
	require.Equal(t, StageSucceeded, h.next().Stage)
	res, err := h.wait()
	require.NoError(t, err)
	require.Equal(t, 1, res.SubscriptionDrops)
	require.Equal(t, 2, res.MessagesSent)
}

func TestPlanMessages(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		recipient, release, minim int
		want                      [][2]int
	}{
		{"two and two", 2, 2, 2, [][2]int{{0, 0}, {1, 1}}},
		{"one recipient path cycles", 1, 3, 2,
			[][2]int{{0, 0}, {0, 1}}},
		{"more recipient paths than minimum", 3, 4, 2,
			[][2]int{{0, 0}, {1, 1}, {2, 2}}},
		{"bounded by release paths", 3, 2, 2,
			[][2]int{{0, 0}, {1, 1}}},
		{"one release path", 2, 1, 2, [][2]int{{0, 0}}},
		{"higher minimum", 2, 4, 4,
			[][2]int{{0, 0}, {1, 1}, {0, 2}, {1, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, planMessages(tc.recipient,
				tc.release, tc.minim))
		})
	}
}

func TestRequestValidate(t *testing.T) {
	f := newFixture(t)
	paths := f.recipient[:1]
	for _, tc := range []struct {
		name string
		req  *Request
	}{
		{"nil", nil},
		{"nothing to pay", &Request{RecipientPaths: paths}},
		{"invoice and dest", &Request{PaymentRequest: "lnbc1",
			Dest: pKey.PubKey(), AmtSat: 1,
			RecipientPaths: paths}},
		{"keysend without amount", &Request{Dest: pKey.PubKey(),
			RecipientPaths: paths}},
		{"negative fee", &Request{PaymentRequest: "lnbc1",
			FeeLimitSat: -1, RecipientPaths: paths}},
		{"hold type too low", &Request{PaymentRequest: "lnbc1",
			HoldType: 2, RecipientPaths: paths}},
		{"no recipient path", &Request{PaymentRequest: "lnbc1"}},
		{"bad recipient path", &Request{PaymentRequest: "lnbc1",
			RecipientPaths: []*onionmsg.BlindedPath{{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lnd := newFakeLnd()
			p, err := New(Config{Messages: lnd, Router: lnd,
				NewMessenger: (&fakeMessenger{}).factory})
			require.NoError(t, err)
			_, err = p.Pay(context.Background(), tc.req, nil)
			require.ErrorIs(t, err, ErrInvalidRequest)
			require.Empty(t, lnd.callLog())
		})
	}
}

func TestNewConfig(t *testing.T) {
	lnd := newFakeLnd()
	m := (&fakeMessenger{}).factory
	for _, cfg := range []Config{
		{Router: lnd, NewMessenger: m},
		{Messages: lnd, NewMessenger: m},
		{Messages: lnd, Router: lnd},
	} {
		_, err := New(cfg)
		require.ErrorIs(t, err, ErrInvalidConfig)
	}
}

// TestOnionMessengers checks the factory puts the delivering LSP first
// among the via nodes: with only the LSP connected, the message goes
// through it.
func TestOnionMessengers(t *testing.T) {
	f := newFixture(t)
	lnd := &onionLnd{peers: []string{keyHex(lspKey)}}
	newMessenger := OnionMessengers(onionsend.Config{
		Lightning: lnd, Self: testKey(0x01).PubKey(), Native: true,
		Via: []*btcec.PublicKey{xKey.PubKey()},
	})
	m, err := newMessenger(lspKey.PubKey())
	require.NoError(t, err)
	route, err := m.Send(context.Background(), f.recipient[0],
		f.release[0], heldHTLCAvailable())
	require.NoError(t, err)
	require.Equal(t, viaRoute, route)
	require.Len(t, lnd.sent, 1)
	require.Equal(t, lspKey.PubKey().SerializeCompressed(),
		lnd.sent[0].Peer)
}

// TestPayFloodCannotCrowdOutLSP: a peer that floods deliveries for our
// hash before our HTLC's first hop is known keeps at most
// maxPendingPerPeer of them waiting, so the LSP's delivery still gets in.
func TestPayFloodCannotCrowdOutLSP(t *testing.T) {
	f := newFixture(t)
	h := newHarness(t, &Request{PaymentRequest: "lnbcrt1",
		RecipientPaths: f.recipient[:2]}, harnessOpts{})

	for i := range 2 * maxPending {
		h.deliver(xKey, release.PathDeliveryMsgType, deliveryBytes(t,
			plugin.CircuitKey{ChanID: 9, HtlcID: uint64(i)}, f.hash,
			f.expires, f.release[0]))
	}
	good := plugin.CircuitKey{ChanID: 5, HtlcID: 1}
	h.deliver(lspKey, release.PathDeliveryMsgType, deliveryBytes(t, good,
		f.hash, f.expires, f.release[1], f.release[2]))
	h.flush()

	h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT, lspKey), nil)
	require.Equal(t, StagePaymentInFlight, h.next().Stage)
	require.Equal(t, StageHeld, h.next().Stage)
	require.Equal(t, StageMessageSent, h.next().Stage)
	require.Equal(t, StageMessageSent, h.next().Stage)

	h.update(f.succeeded(0), nil)
	require.Equal(t, StageSucceeded, h.next().Stage)
	res, err := h.wait()
	require.NoError(t, err)
	require.Equal(t, 2*maxPending-maxPendingPerPeer, res.Ignored.Overflow)
	require.Equal(t, maxPendingPerPeer, res.Ignored.NotFirstHop)
}

// TestPayGreetsLSPFirst: with an LSP messenger, Pay sends an empty
// release_paths_request (hello) to the peer of the outgoing channel and
// pays only once it answered with release_paths_ack.
func TestPayGreetsLSPFirst(t *testing.T) {
	f := newFixture(t)
	other := testKey(0x33)
	h := newHarness(t, &Request{PaymentRequest: "lnbcrt10u1ptest",
		OutgoingChanID: 42, RecipientPaths: f.recipient[:2]},
		harnessOpts{lsp: true, channels: []*lnrpc.Channel{
			{ChanId: 42, RemotePubkey: keyHex(lspKey)},
			{ChanId: 43, RemotePubkey: keyHex(other)},
		}})

	hello := recvOrFail(t, h.lnd.custom, "hello")
	require.Equal(t, key33(lspKey), route.Vertex(hello.Peer))
	require.Equal(t, uint32(48007), hello.Type)
	require.Empty(t, hello.Data)
	// Nothing is paid before the ack.
	select {
	case <-h.lnd.pays:
		t.Fatal("paid before the LSP acknowledged the hello")
	case <-time.After(50 * time.Millisecond):
	}
	// An ack from another peer does not count.
	h.deliver(other, 48009, nil)
	h.deliver(lspKey, 48009, nil)
	h.pay = recvOrFail(t, h.lnd.pays, "SendPaymentV2")
	require.Equal(t, []string{"SubscribeCustomMessages",
		"SendCustomMessage 48007", "SendPaymentV2"}, h.lnd.callLog())

	h.update(f.succeeded(0), nil)
	res, err := h.wait()
	require.NoError(t, err)
	require.Equal(t, 1, res.Greeted)
	require.Equal(t, 1, res.Acked)
}

// TestPayHelloTimesOut: a peer that never answers the hello (no holdd)
// delays the payment by the hello timeout only.
func TestPayHelloTimesOut(t *testing.T) {
	f := newFixture(t)
	ticks := make(chan time.Duration, 10)
	h := newHarness(t, &Request{PaymentRequest: "lnbcrt10u1ptest",
		RecipientPaths: f.recipient[:2]},
		harnessOpts{lsp: true, ticks: ticks, channels: []*lnrpc.Channel{
			{ChanId: 42, RemotePubkey: keyHex(lspKey)},
		}})
	recvOrFail(t, h.lnd.custom, "hello")
	require.Equal(t, DefaultHelloTimeout, recvOrFail(t, ticks,
		"hello timer"))
	h.clock.SetTime(testNow.Add(DefaultHelloTimeout))
	h.pay = recvOrFail(t, h.lnd.pays, "SendPaymentV2")
	h.update(f.succeeded(0), nil)
	res, err := h.wait()
	require.NoError(t, err)
	require.Equal(t, 1, res.Greeted)
	require.Equal(t, 0, res.Acked)
}

// TestPayAsksForLostDelivery: when no path delivery comes after the HTLC
// is in flight, Pay asks the first hop for it by payment hash, again on
// silence, at most MaxRequests times; a delivery stops the asking.
func TestPayAsksForLostDelivery(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name        string
		deliverWhen int
		want        int
	}{
		{"delivered after the second request", 2, 2},
		{"never delivered", 0, DefaultMaxRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ticks := make(chan time.Duration, 10)
			h := newHarness(t, &Request{
				PaymentRequest: "lnbcrt10u1ptest",
				OutgoingChanID: 42,
				RecipientPaths: f.recipient[:2]},
				harnessOpts{lsp: true, ticks: ticks,
					channels: []*lnrpc.Channel{{ChanId: 42,
						RemotePubkey: keyHex(lspKey)}}})
			recvOrFail(t, h.lnd.custom, "hello")
			recvOrFail(t, ticks, "hello timer")
			h.deliver(lspKey, 48009, nil)
			h.pay = recvOrFail(t, h.lnd.pays, "SendPaymentV2")

			h.update(pmtUpdate(f.hash, lnrpc.Payment_IN_FLIGHT,
				lspKey), nil)
			h.next()
			wantReq, err := (&release.PathsRequest{
				PaymentHash: &f.hash}).Encode()
			require.NoError(t, err)

			now := testNow
			for i := 0; i < DefaultMaxRequests; i++ {
				d := recvOrFail(t, ticks, "request timer")
				if i == 0 {
					require.Equal(t, DefaultRequestDelay, d)
				} else {
					require.Equal(t, DefaultRequestInterval,
						d)
				}
				if tc.deliverWhen > 0 && i == tc.deliverWhen {
					h.deliver(lspKey,
						release.PathDeliveryMsgType,
						deliveryBytes(t, plugin.CircuitKey{
							ChanID: 42, HtlcID: 1},
							f.hash, f.expires,
							f.release[0],
							f.release[1]))
					require.Equal(t, StageHeld,
						h.next().Stage)
					h.next()
					h.next()
				}
				now = now.Add(d)
				h.clock.SetTime(now)
				if tc.deliverWhen > 0 && i >= tc.deliverWhen {
					break
				}
				m := recvOrFail(t, h.lnd.custom, "request")
				require.Equal(t, key33(lspKey), route.Vertex(m.Peer))
				require.Equal(t, uint32(48007), m.Type)
				require.Equal(t, wantReq, m.Data)
			}
			h.flush()
			select {
			case m := <-h.lnd.custom:
				t.Fatalf("request beyond the bound: %v", m)
			case <-time.After(50 * time.Millisecond):
			}
			h.update(f.succeeded(0), nil)
			h.next()
			res, err := h.wait()
			require.NoError(t, err)
			require.Equal(t, tc.want, res.PathRequests)
		})
	}
}
