package asyncoffer

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/stretchr/testify/require"
)

// TestEndToEndLive runs the client against the real invoice server: the
// offer is built on the server's paths, the static invoice the server
// persisted verifies against it, and every field of the payment path is
// what P's policy and L's make it.
func TestEndToEndLive(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	slot := h.waitPhase(PhaseLive)
	require.True(t, slot.Live)

	stored, ok := h.sstore.invoice("phone", 0)
	require.True(t, ok)
	require.Equal(t, slot.Invoice, stored.Invoice)

	offer, err := bolt12.DecodeOffer(slot.Offer)
	require.NoError(t, err)
	si, err := bolt12.DecodeStaticInvoice(stored.Invoice)
	require.NoError(t, err, "signature verifies")
	require.NoError(t, si.IsFromOffer(offer))
	require.NoError(t, si.Check(t0, bolt12.BitcoinChain))
	require.Equal(t, offer.ID(), bolt12.OfferID(stored.OfferID))

	// Amount-less, signed by the per-offer key, on the server's paths.
	offerKey, _ := btcec.PrivKeyFromBytes(slot.OfferKey)
	require.Nil(t, offer.Amount)
	require.Nil(t, offer.Description)
	require.True(t, offer.IssuerID.IsEqual(offerKey.PubKey()))
	require.True(t, si.Invoice.NodeID.IsEqual(offerKey.PubKey()))
	require.Len(t, offer.Paths, 1)
	require.True(t, offer.Paths[0].IntroNode.IsEqual(
		testKey(keyLLnd).PubKey()))
	require.NotNil(t, offer.AbsoluteExpiry)
	require.Equal(t, uint64(t0.Add(365*24*time.Hour).Unix()),
		*offer.AbsoluteExpiry)

	// Held-HTLC paths are the receive paths; 14 days' expiry.
	require.Len(t, si.Invoice.MessagePaths, 1)
	require.True(t, si.Invoice.MessagePaths[0].IntroNode.IsEqual(
		testKey(keyPLnd).PubKey()))
	require.Equal(t, uint64(t0.Unix()), *si.Invoice.CreatedAt)
	require.Equal(t, uint32(14*24*3600), *si.Invoice.RelativeExpiry)
	require.Equal(t, t0.Add(14*24*time.Hour).Unix(),
		slot.InvoiceExpiresAt.Unix())

	// The payment path L -> P -> V.
	require.Len(t, si.Invoice.Paths, 1)
	require.Equal(t, bolt12.BlindedPayInfo{
		FeeBaseMsat:               1000,
		FeeProportionalMillionths: 100,
		CltvExpiryDelta:           80 + 40 + 80,
		HtlcMinimumMsat:           1000,
		HtlcMaximumMsat:           990_000_000,
		Features:                  []byte{},
	}, si.Invoice.BlindedPay[0])
	vKey, _ := btcec.PrivKeyFromBytes(slot.VirtualKey)
	path := si.Invoice.Paths[0]
	require.True(t, path.IntroNode.IsEqual(testKey(keyLLnd).PubKey()))
	hops := decodeHops(t, path, []*btcec.PrivateKey{
		testKey(keyLLnd), testKey(keyPLnd), vKey,
	})
	require.Len(t, hops, 3)
	const maxV = 800_000 + 2016 + 2016 + 80

	l := hops[0]
	require.Equal(t, testPolicy.SCID,
		l.ShortChannelID.UnwrapOrFailV(t))
	require.Equal(t, record.PaymentRelayInfo{
		CltvExpiryDelta: 80, FeeRate: 100, BaseFee: 1000,
	}, l.RelayInfo.UnwrapOrFailV(t))
	require.Equal(t, record.PaymentConstraints{
		MaxCltvExpiry: maxV + 40 + 80, HtlcMinimumMsat: 1000,
	}, l.Constraints.UnwrapOrFailV(t))

	p := hops[1]
	require.Equal(t, lnwire.NewShortChanIDFromInt(slot.FakeSCID),
		p.ShortChannelID.UnwrapOrFailV(t))
	require.GreaterOrEqual(t, lnwire.NewShortChanIDFromInt(
		slot.FakeSCID).BlockHeight, uint32(16_500_000))
	require.Equal(t, record.PaymentRelayInfo{CltvExpiryDelta: 40},
		p.RelayInfo.UnwrapOrFailV(t))
	require.Equal(t, record.PaymentConstraints{
		MaxCltvExpiry: maxV + 40,
	}, p.Constraints.UnwrapOrFailV(t))

	v := hops[2]
	require.Equal(t, record.PaymentConstraints{MaxCltvExpiry: maxV},
		v.Constraints.UnwrapOrFailV(t))
	claim, err := h.auth.Verify(v.PathID.UnwrapOrFailV(t), t0)
	require.NoError(t, err)
	require.Equal(t, PathClaim{
		Kind: KindPayment, Slot: 0,
		ExpiresAt: time.Unix(t0.Add(14*24*time.Hour).Unix(), 0),
	}, claim)

	// An invoice_request on the offer: the server answers with the
	// static invoice and forwards the request to us, which we record.
	payer := testKey(0x77)
	ir, err := bolt12.NewInvoiceRequest(offer, bolt12.InvoiceRequestParams{
		PayerKey: payer, Amount: ptr(uint64(5000)),
	})
	require.NoError(t, err)
	payerPath, err := onionmsg.BuildBlindedPath(testKey(0x67),
		[]onionmsg.Hop{{
			NodeID: testKey(keyPayer).PubKey(),
			Data: record.NewFinalHopBlindedRouteData(nil,
				[]byte{1}),
		}}, true)
	require.NoError(t, err)
	require.NoError(t, h.net.deliver(offer.Paths[0], payerPath,
		map[uint64][]byte{onionmsg.InvoiceRequestType: ir.Encode()}))
	got := h.net.payerMessages()
	require.Len(t, got, 1)
	require.Equal(t, stored.Invoice, got[0][onionmsg.StaticInvoiceType])
	require.Eventually(t, func() bool {
		return len(h.store.forwarded()) == 1
	}, 5*time.Second, 5*time.Millisecond)
	fwd := h.store.forwarded()[0]
	require.Equal(t, uint16(0), fwd.Slot)
	require.Equal(t, ir.Encode(), fwd.Request)
	require.Equal(t, uint64(1),
		h.client.Counts()[OutcomeInvoiceRequest])
}

func ptr[T any](v T) *T { return &v }

// TestServerSilentRetries: while the server does not answer the client
// keeps asking, with backoff; once it answers the slot goes live.
func TestServerSilentRetries(t *testing.T) {
	h := newHarness(t, nil)
	h.net.set(func(n *network) { n.silent = true })
	h.start()
	require.Eventually(t, func() bool {
		return h.net.countSent(onionmsg.OfferPathsRequestType) == 1
	}, 5*time.Second, 5*time.Millisecond)

	// Nothing more until the backoff has passed.
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, 1, h.net.countSent(onionmsg.OfferPathsRequestType))
	require.Empty(t, h.store.slot(0).Phase)
	offers, err := h.client.Offers(context.Background())
	require.NoError(t, err)
	require.Equal(t, []Slot{{Slot: 0, Phase: PhaseRequesting}}, offers)

	require.Eventually(t, func() bool {
		h.advance(DefaultRetryMin)
		return h.net.countSent(onionmsg.OfferPathsRequestType) >= 3
	}, 5*time.Second, 5*time.Millisecond)

	// Unreachable (send fails) counts, and still retries.
	h.net.set(func(n *network) { n.silent, n.down = false, true })
	before := h.client.Counts()[OutcomeSendFailed]
	require.Eventually(t, func() bool {
		h.advance(DefaultRetryMax)
		return h.client.Counts()[OutcomeSendFailed] > before
	}, 5*time.Second, 5*time.Millisecond)

	// Back: the next attempt (at most RetryMax away) goes through. The
	// clock moves only by RetryMax at a time, so our reply path stays
	// valid; it is moved again until the client has armed its retry
	// timer (a busy machine may arm it after the first move).
	h.net.set(func(n *network) { n.down = false })
	sent := h.net.countSent(onionmsg.OfferPathsRequestType)
	require.Eventually(t, func() bool {
		if h.net.countSent(onionmsg.OfferPathsRequestType) > sent {
			return true
		}
		h.advance(DefaultRetryMax)
		return false
	}, 5*time.Second, 20*time.Millisecond, "want another request")
	h.waitPhase(PhaseLive)
}

// TestServeUnansweredRequestsAgain: a server that takes offer_paths_request
// but never confirms the invoice makes the slot ask for paths again after
// ServeAttempts serves.
func TestServeUnansweredRequestsAgain(t *testing.T) {
	h := newHarness(t, nil)
	h.net.set(func(n *network) { n.dropToP = true })
	h.start()
	// offer_paths never reaches us either: requests repeat.
	require.Eventually(t, func() bool {
		h.advance(DefaultRetryMax)
		return h.net.countSent(onionmsg.OfferPathsRequestType) >= 2
	}, 5*time.Second, 5*time.Millisecond)
	require.Zero(t, h.net.countSent(onionmsg.ServeStaticInvoiceType))
}

// TestRefreshAndReconnect: a live slot re-serves a fresh invoice after
// RefreshEvery, and at once when the link comes back.
func TestRefreshAndReconnect(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	first := h.waitPhase(PhaseLive)
	serves := h.net.countSent(onionmsg.ServeStaticInvoiceType)
	require.Equal(t, 1, serves)

	// Not yet.
	h.advance(DefaultRefreshEvery - time.Minute)
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, serves, h.net.countSent(
		onionmsg.ServeStaticInvoiceType))

	// Then it does; the clock moves a minute at a time, so a busy
	// machine that arms the refresh timer late cannot make it miss.
	var refreshed Slot
	require.Eventually(t, func() bool {
		refreshed = h.store.slot(0)
		if refreshed.Phase == PhaseLive &&
			refreshed.ServedAt.After(first.ServedAt) {

			return true
		}
		h.advance(time.Minute)
		return false
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, first.Offer, refreshed.Offer, "same offer")
	require.NotEqual(t, first.Invoice, refreshed.Invoice)
	stored, _ := h.sstore.invoice("phone", 0)
	require.Equal(t, refreshed.Invoice, stored.Invoice)

	// Reconnect: re-served at once.
	h.client.Trigger()
	require.Eventually(t, func() bool {
		return h.net.countSent(onionmsg.ServeStaticInvoiceType) ==
			serves+2
	}, 5*time.Second, 5*time.Millisecond)
	h.waitPhase(PhaseLive)
}

// TestRestartKeepsOffer: a new client on the same store serves the same
// offer again rather than asking for new paths.
func TestRestartKeepsOffer(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	first := h.waitPhase(PhaseLive)
	h.client.Stop()

	c2, err := New(h.client.cfg)
	require.NoError(t, err)
	h.client = c2
	h.net.set(func(n *network) { n.client = c2.Handler() })
	requests := h.net.countSent(onionmsg.OfferPathsRequestType)
	h.start()
	require.Eventually(t, func() bool {
		s := h.store.slot(0)
		return s.Phase == PhaseLive && s.ServedAt.After(first.ServedAt) ||
			h.net.countSent(onionmsg.ServeStaticInvoiceType) >= 2
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, requests,
		h.net.countSent(onionmsg.OfferPathsRequestType))
	require.Equal(t, first.Offer, h.store.slot(0).Offer)
}

// TestHandlerRejects: forged, expired and mismatched messages are counted
// and never reach the loop.
func TestHandlerRejects(t *testing.T) {
	h := newHarness(t, nil)
	hd := h.client.Handler()
	other, err := NewPathAuth(bytes.Repeat([]byte{8}, 32))
	require.NoError(t, err)
	persisted := map[uint64][]byte{
		onionmsg.StaticInvoicePersistedType: {0},
	}
	claim := PathClaim{Kind: KindPersisted, ExpiresAt: t0.Add(time.Hour)}
	tests := []struct {
		name   string
		pathID []byte
		tlvs   map[uint64][]byte
		want   string
	}{{
		name: "forged", pathID: other.Mint(claim), tlvs: persisted,
		want: OutcomeForged,
	}, {
		name: "expired", pathID: h.auth.Mint(PathClaim{
			Kind: KindPersisted, ExpiresAt: t0,
		}), tlvs: persisted, want: OutcomeExpired,
	}, {
		name: "wrong message", pathID: h.auth.Mint(claim),
		tlvs: map[uint64][]byte{onionmsg.OfferPathsType: {0}},
		want: OutcomeWrongMessage,
	}, {
		name: "extra even tlv", pathID: h.auth.Mint(claim),
		tlvs: map[uint64][]byte{
			onionmsg.StaticInvoicePersistedType: {0}, 80: {},
		},
		want: OutcomeWrongMessage,
	}, {
		name: "payment path_id", pathID: h.auth.Mint(PathClaim{
			Kind: KindPayment, ExpiresAt: t0.Add(time.Hour),
		}), tlvs: persisted, want: OutcomeWrongMessage,
	}, {
		name: "accepted", pathID: h.auth.Mint(claim), tlvs: persisted,
		want: OutcomePersisted,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := hd.Handle(context.Background(),
				&onionmsg.Peeled{
					Final: true,
					Data: record.NewFinalHopBlindedRouteData(
						nil, tc.pathID),
					FinalTLVs: tc.tlvs,
				})
			require.Equal(t, tc.want, got)
		})
	}
	require.False(t, hd.Match(h.auth.Mint(PathClaim{Kind: KindPayment})))
	require.True(t, hd.Match(h.auth.Mint(claim)))
	require.False(t, hd.Match([]byte{6, 1}))
	// Only the accepted one was queued.
	require.Len(t, h.client.events, 1)
}

// TestPathIDRoundTrip covers the path_id codec.
func TestPathIDRoundTrip(t *testing.T) {
	a, err := NewPathAuth(bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	c := PathClaim{Kind: KindInvoiceRequest, Slot: 513,
		ExpiresAt: time.Unix(1_900_000_000, 0)}
	id := a.Mint(c)
	require.Len(t, id, PathIDLen)
	got, err := a.Verify(id, t0)
	require.NoError(t, err)
	require.Equal(t, c, got)

	id[5] ^= 1
	_, err = a.Verify(id, t0)
	require.ErrorIs(t, err, ErrForgedPathID)
	_, err = a.Verify(id[:10], t0)
	require.ErrorIs(t, err, ErrMalformedPathID)
}

// recordingMinter mints with its inner minter and keeps what it minted.
type recordingMinter struct {
	inner PathMinter
	mu    sync.Mutex
	paths [][]byte
}

func (m *recordingMinter) MintPath(key *btcec.PrivateKey,
	pathID []byte) (*onionmsg.BlindedPath, error) {

	p, err := m.inner.MintPath(key, pathID)
	if err != nil {
		return nil, err
	}
	raw, err := p.Bytes()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.paths = append(m.paths, raw)
	m.mu.Unlock()
	return p, nil
}

// TestForwardMinter: the forward_invoice_request_path the server stores
// is one ForwardMinter minted (the daemon's goes through the mailbox).
func TestForwardMinter(t *testing.T) {
	var fwd *recordingMinter
	h := newHarness(t, func(cfg *Config) {
		fwd = &recordingMinter{inner: cfg.Minter}
		cfg.ForwardMinter = fwd
	})
	h.start()
	h.waitPhase(PhaseLive)
	stored, ok := h.sstore.invoice("phone", 0)
	require.True(t, ok)
	fwd.mu.Lock()
	defer fwd.mu.Unlock()
	require.NotEmpty(t, fwd.paths)
	require.Equal(t, fwd.paths[len(fwd.paths)-1], stored.ForwardPath)
}

// TestServerChangedStartsOver: a slot stored live for another
// recipient.server is not served again: on start it is reset (so GetOffer
// stops showing the old offer at once), asks the configured server for
// paths and goes live with a new offer.
func TestServerChangedStartsOver(t *testing.T) {
	h := newHarness(t, nil)
	old := Slot{Slot: 0, Phase: PhaseLive, Live: true,
		Offer: []byte("old offer"), Server: []byte("another server")}
	require.NoError(t, h.store.PutAsyncOfferSlot(context.Background(),
		old))

	h.start()
	var s Slot
	require.Eventually(t, func() bool {
		s = h.store.slot(0)
		return s.Phase == PhaseLive && string(s.Offer) != "old offer"
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, h.client.server, s.Server)
	require.GreaterOrEqual(t,
		h.net.countSent(onionmsg.OfferPathsRequestType), 1)
}
