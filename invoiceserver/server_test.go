package invoiceserver

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/stretchr/testify/require"
)

// TestExchange runs LDK's whole exchange: offer_paths_request, offer_paths
// with a serve reply path, serve_static_invoice, static_invoice_persisted,
// then an invoice_request on the offer path answered with the static
// invoice and forwarded to the recipient; then a replacement for the slot.
func TestExchange(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)

	r, regPaths, err := h.srv.AddRecipient(ctx, []byte("alice"), 0, 2)
	require.NoError(t, err)
	require.Equal(t, Recipient{ID: []byte("alice"), CreatedAt: t0}, r)
	require.Len(t, regPaths, 2)
	require.False(t, regPaths[0].Equal(regPaths[1]))

	recipientReply := replyPath(t, 0x30)
	out := h.srv.Handle(ctx, peeled(h.pathID(Claim{Kind: KindRegistration,
		RecipientID: []byte("alice")}), recipientReply,
		map[uint64][]byte{onionmsg.OfferPathsRequestType: {4, 0, 2, 0, 3}}))
	require.Equal(t, OutcomeOfferPathsSent, out)
	msgs := h.sender.take()
	require.Len(t, msgs, 1)
	require.True(t, msgs[0].path.Equal(recipientReply))
	require.NotNil(t, msgs[0].reply, "offer_paths needs the serve path")
	m, err := onionmsg.DecodeOfferPaths(msgs[0].tlvs[onionmsg.OfferPathsType])
	require.NoError(t, err)
	require.Len(t, m.Paths, 1)
	require.Equal(t, uint64(t0.Add(DefaultOfferPathTTL).Unix()),
		*m.PathsAbsoluteExpiry)
	require.True(t, m.Paths[0].IntroNode.IsEqual(testKey(0x11).PubKey()))
	// The offer paths are the same every time for the same claim.
	require.True(t, m.Paths[0].Equal(h.offerPaths("alice", 3)[0]))

	offer, inv := offerAndInvoice(t, m.Paths, "first")
	out = h.srv.Handle(ctx, peeled(h.serveID("alice", 3), recipientReply,
		map[uint64][]byte{
			onionmsg.ServeStaticInvoiceType: serveValue(t,
				inv.Encode()),
		}))
	require.Equal(t, OutcomeInvoicePersisted, out)
	msgs = h.sender.take()
	require.Len(t, msgs, 1)
	require.True(t, msgs[0].path.Equal(recipientReply))
	require.Nil(t, msgs[0].reply)
	require.Equal(t, map[uint64][]byte{
		onionmsg.StaticInvoicePersistedType: {0},
	}, msgs[0].tlvs)
	stored, err := h.store.GetStaticInvoice(ctx, []byte("alice"), 3)
	require.NoError(t, err)
	offerID := offer.ID()
	require.Equal(t, StaticInvoice{
		RecipientID: []byte("alice"), Slot: 3, Invoice: inv.Encode(),
		OfferID:     offerID,
		ForwardPath: mustBytes(t, replyPath(t, 0x70)),
		ExpiresAt:   t0.Add(bolt12.DefaultStaticInvoiceRelativeExpiry),
		StoredAt:    t0,
	}, stored)

	payerReply := replyPath(t, 0x80)
	invreq := invoiceRequest(t, offer)
	out = h.srv.Handle(ctx, peeled(h.offerID("alice", 3), payerReply,
		map[uint64][]byte{onionmsg.InvoiceRequestType: invreq}))
	require.Equal(t, OutcomeInvoiceServed, out)
	msgs = h.sender.take()
	require.Len(t, msgs, 1)
	require.True(t, msgs[0].path.Equal(payerReply))
	require.Equal(t, map[uint64][]byte{
		onionmsg.StaticInvoiceType: inv.Encode(),
	}, msgs[0].tlvs)
	fwd := h.forwarder.take()
	require.Len(t, fwd, 1)
	require.True(t, fwd[0].path.Equal(replyPath(t, 0x70)))
	require.True(t, fwd[0].reply.Equal(payerReply))
	require.Equal(t, map[uint64][]byte{
		onionmsg.InvoiceRequestType: invreq,
	}, fwd[0].tlvs)

	// A replacement for the slot replaces; the old offer's requests are
	// no longer answered with it.
	offer2, inv2 := offerAndInvoice(t, m.Paths, "second")
	out = h.srv.Handle(ctx, peeled(h.serveID("alice", 3), recipientReply,
		map[uint64][]byte{
			onionmsg.ServeStaticInvoiceType: serveValue(t,
				inv2.Encode()),
		}))
	require.Equal(t, OutcomeInvoicePersisted, out)
	h.sender.take()
	require.Equal(t, 1, h.store.invoiceCount())
	out = h.srv.Handle(ctx, peeled(h.offerID("alice", 3), payerReply,
		map[uint64][]byte{onionmsg.InvoiceRequestType: invreq}))
	require.Equal(t, OutcomeWrongOffer, out)
	out = h.srv.Handle(ctx, peeled(h.offerID("alice", 3), payerReply,
		map[uint64][]byte{
			onionmsg.InvoiceRequestType: invoiceRequest(t, offer2),
		}))
	require.Equal(t, OutcomeInvoiceServed, out)
	msgs = h.sender.take()
	require.Len(t, msgs, 1)
	require.Equal(t, inv2.Encode(), msgs[0].tlvs[onionmsg.StaticInvoiceType])

	require.Equal(t, map[string]uint64{
		OutcomeOfferPathsSent:   2,
		OutcomeInvoicePersisted: 2,
		OutcomeInvoiceServed:    2,
		OutcomeWrongOffer:       1,
	}, h.srv.Counts())
}

func mustBytes(t testing.TB, p *onionmsg.BlindedPath) []byte {
	t.Helper()
	b, err := p.Bytes()
	require.NoError(t, err)
	return b
}

// TestHostileMessages: each bad message gets its counted drop, sends
// nothing and changes no state.
func TestHostileMessages(t *testing.T) {
	ctx := context.Background()
	reqValue := onionmsg.EncodeOfferPathsRequest(
		onionmsg.OfferPathsRequest{InvoiceSlot: 1})

	tests := []struct {
		name string
		// msg builds the message on a harness where alice has slot 1
		// served (offer paths, invoice) and bob is registered.
		msg  func(h *harness, f *fixture) *onionmsg.Peeled
		want string
	}{{
		name: "no path_id",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(nil, f.reply, map[uint64][]byte{
				onionmsg.OfferPathsRequestType: reqValue})
		},
		want: OutcomeNoPathID,
	}, {
		name: "someone else's path_id",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			id := append([]byte{2}, make([]byte, 48)...)
			return peeled(id, f.reply, map[uint64][]byte{
				onionmsg.OfferPathsRequestType: reqValue})
		},
		want: OutcomeUnknownPath,
	}, {
		name: "forged registration path",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			id := h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("alice")})
			id[len(id)-1] ^= 1
			return peeled(id, f.reply, map[uint64][]byte{
				onionmsg.OfferPathsRequestType: reqValue})
		},
		want: OutcomeForged,
	}, {
		name: "forged offer path naming bob's slot",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			id := h.offerID("alice", 1)
			copy(id[11:], "bob  ")
			return peeled(id, f.reply, map[uint64][]byte{
				onionmsg.InvoiceRequestType: f.invreq})
		},
		want: OutcomeForged,
	}, {
		name: "expired registration path",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("alice"),
				ExpiresAt:   t0}), f.reply, map[uint64][]byte{
				onionmsg.OfferPathsRequestType: reqValue})
		},
		want: OutcomeExpiredPath,
	}, {
		name: "expired offer path",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.pathID(Claim{Kind: KindOffer,
				RecipientID: []byte("alice"), Slot: 1,
				ExpiresAt: t0.Add(-time.Second)}), f.reply,
				map[uint64][]byte{
					onionmsg.InvoiceRequestType: f.invreq})
		},
		want: OutcomeExpiredPath,
	}, {
		name: "unknown recipient",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("carol")}), f.reply,
				map[uint64][]byte{
					onionmsg.OfferPathsRequestType: reqValue})
		},
		want: OutcomeUnknownRecipient,
	}, {
		name: "expired recipient asks for paths",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			h.expireRecipient("bob")
			return peeled(h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("bob")}), f.reply,
				map[uint64][]byte{
					onionmsg.OfferPathsRequestType: reqValue})
		},
		want: OutcomeExpiredRecipient,
	}, {
		name: "expired recipient's offer",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			h.expireRecipient("alice")
			return peeled(h.offerID("alice", 1), f.reply,
				map[uint64][]byte{
					onionmsg.InvoiceRequestType: f.invreq})
		},
		want: OutcomeExpiredRecipient,
	}, {
		name: "slot out of range",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("bob")}), f.reply,
				map[uint64][]byte{
					onionmsg.OfferPathsRequestType: onionmsg.
						EncodeOfferPathsRequest(onionmsg.
							OfferPathsRequest{
							InvoiceSlot: DefaultMaxSlots,
						}),
				})
		},
		want: OutcomeSlotOutOfRange,
	}, {
		name: "serve path with slot out of range after a config change",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			h.srv.cfg.MaxSlots = 1
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, f.inv.Encode())})
		},
		want: OutcomeSlotOutOfRange,
	}, {
		name: "malformed offer_paths_request",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("bob")}), f.reply,
				map[uint64][]byte{
					onionmsg.OfferPathsRequestType: {3, 0, 1, 1}})
		},
		want: OutcomeMalformed,
	}, {
		name: "malformed serve_static_invoice",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{
					onionmsg.ServeStaticInvoiceType: {0}})
		},
		want: OutcomeMalformed,
	}, {
		name: "malformed invoice_request",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.offerID("alice", 1), f.reply,
				map[uint64][]byte{
					onionmsg.InvoiceRequestType: {1, 2, 3}})
		},
		want: OutcomeMalformed,
	}, {
		name: "unknown even TLV beside the request",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("bob")}), f.reply,
				map[uint64][]byte{
					onionmsg.OfferPathsRequestType: reqValue,
					75548:                          {0}})
		},
		want: OutcomeUnknownEven,
	}, {
		name: "serve_static_invoice over a registration path",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("alice")}), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, f.inv.Encode())})
		},
		want: OutcomeUnknownEven,
	}, {
		name: "only odd TLVs over an offer path",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.offerID("alice", 1), f.reply,
				map[uint64][]byte{65: {1}})
		},
		want: OutcomeUnexpectedMessage,
	}, {
		name: "offer_paths_request without a reply path",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.pathID(Claim{Kind: KindRegistration,
				RecipientID: []byte("bob")}), nil,
				map[uint64][]byte{
					onionmsg.OfferPathsRequestType: reqValue})
		},
		want: OutcomeNoReplyPath,
	}, {
		name: "invoice_request without a reply path",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.offerID("alice", 1), nil,
				map[uint64][]byte{
					onionmsg.InvoiceRequestType: f.invreq})
		},
		want: OutcomeNoReplyPath,
	}, {
		name: "oversize invoice",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, make([]byte, MaxInvoiceSize+1))})
		},
		want: OutcomeInvoiceTooLarge,
	}, {
		name: "invoice over a lowered bound",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			h.srv.cfg.MaxInvoiceSize = 200
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, f.inv.Encode())})
		},
		want: OutcomeInvoiceTooLarge,
	}, {
		name: "garbage invoice",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, []byte{1, 2, 3})})
		},
		want: OutcomeInvalidInvoice,
	}, {
		name: "invoice with a bad signature",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			b := f.inv.Encode()
			b[len(b)-1] ^= 1
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, b)})
		},
		want: OutcomeInvalidInvoice,
	}, {
		name: "invoice for someone else's offer",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			_, inv := offerAndInvoice(h.t, h.offerPaths("bob", 1),
				"bob's")
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, inv.Encode())})
		},
		want: OutcomeForeignOffer,
	}, {
		name: "invoice for alice's other slot",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.serveID("alice", 2), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, f.inv.Encode())})
		},
		want: OutcomeForeignOffer,
	}, {
		name: "invoice with one foreign path beside ours",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			paths := append(h.offerPaths("alice", 1),
				replyPath(h.t, 0x90))
			_, inv := offerAndInvoice(h.t, paths, "mixed")
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, inv.Encode())})
		},
		want: OutcomeForeignOffer,
	}, {
		name: "expired invoice",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			h.clock.SetTime(t0.Add(
				bolt12.DefaultStaticInvoiceRelativeExpiry +
					time.Second))
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, f.inv.Encode())})
		},
		want: OutcomeExpiredInvoice,
	}, {
		name: "expired stored invoice",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			h.clock.SetTime(t0.Add(
				bolt12.DefaultStaticInvoiceRelativeExpiry))
			return peeled(h.offerID("alice", 1), f.reply,
				map[uint64][]byte{
					onionmsg.InvoiceRequestType: f.invreq})
		},
		want: OutcomeExpiredInvoice,
	}, {
		name: "invoice_request for a slot without an invoice",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			return peeled(h.offerID("bob", 1), f.reply,
				map[uint64][]byte{
					onionmsg.InvoiceRequestType: f.invreq})
		},
		want: OutcomeNoInvoice,
	}, {
		name: "store failure",
		msg: func(h *harness, f *fixture) *onionmsg.Peeled {
			h.store.failPut = errSend
			return peeled(h.serveID("alice", 1), f.reply,
				map[uint64][]byte{onionmsg.ServeStaticInvoiceType: serveValue(
					h.t, f.inv.Encode())})
		},
		want: OutcomeStoreError,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			f := h.fixture()
			msg := tc.msg(h, f)
			h.sender.take()
			before := h.store.snapshot()
			counts := h.srv.Counts()
			out := h.srv.Handle(ctx, msg)
			require.Equal(t, tc.want, out)
			require.Empty(t, h.sender.take())
			require.Empty(t, h.forwarder.take())
			require.Equal(t, before, h.store.snapshot())
			counts[tc.want]++
			require.Equal(t, counts, h.srv.Counts())
		})
	}
}

// fixture is the state TestHostileMessages starts from.
type fixture struct {
	reply  *onionmsg.BlindedPath
	inv    *bolt12.StaticInvoice
	invreq []byte
}

// fixture registers alice and bob, serves alice's slot 1 and clears the
// sends and counts.
func (h *harness) fixture() *fixture {
	ctx := context.Background()
	_, _, err := h.srv.AddRecipient(ctx, []byte("bob"), 0, 1)
	require.NoError(h.t, err)
	paths := h.offerPaths("alice", 1)
	offer, inv := offerAndInvoice(h.t, paths, "alice's")
	out := h.srv.Handle(ctx, peeled(h.serveID("alice", 1),
		replyPath(h.t, 0x30), map[uint64][]byte{
			onionmsg.ServeStaticInvoiceType: serveValue(h.t,
				inv.Encode()),
		}))
	require.Equal(h.t, OutcomeInvoicePersisted, out)
	h.sender.take()
	h.srv.mu.Lock()
	h.srv.counts = make(map[string]uint64)
	h.srv.mu.Unlock()
	return &fixture{
		reply: replyPath(h.t, 0x80), inv: inv,
		invreq: invoiceRequest(h.t, offer),
	}
}

func (h *harness) expireRecipient(id string) {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	r := h.store.recipients[id]
	r.ExpiresAt = t0
	h.store.recipients[id] = r
}

// snapshot copies the invoices held, to compare before and after. The
// recipients' expiry is test setup, not state a message may change.
func (m *memStore) snapshot() map[string]map[uint16][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]map[uint16][]byte)
	for id, slots := range m.invoices {
		out[id] = make(map[uint16][]byte)
		for s, inv := range slots {
			out[id][s] = bytes.Clone(inv.Invoice)
		}
	}
	return out
}

// TestRates: one recipient's burst is limited without touching another's,
// and one requester's flood of invoice_requests leaves another requester
// answered.
func TestRates(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	f := h.fixture()

	reg := func(id string) *onionmsg.Peeled {
		return peeled(h.pathID(Claim{Kind: KindRegistration,
			RecipientID: []byte(id)}), f.reply, map[uint64][]byte{
			onionmsg.OfferPathsRequestType: {4, 0, 2, 0, 1}})
	}
	// The fixture used two of alice's tokens.
	for i := range DefaultBurst - 2 {
		require.Equal(t, OutcomeOfferPathsSent,
			h.srv.Handle(ctx, reg("alice")), i)
	}
	require.Equal(t, OutcomeRateRecipient, h.srv.Handle(ctx, reg("alice")))
	require.Equal(t, OutcomeOfferPathsSent, h.srv.Handle(ctx, reg("bob")))
	h.clock.SetTime(t0.Add(DefaultInterval))
	require.Equal(t, OutcomeOfferPathsSent, h.srv.Handle(ctx, reg("alice")))
	h.sender.take()

	invreq := func(reply *onionmsg.BlindedPath) *onionmsg.Peeled {
		return peeled(h.offerID("alice", 1), reply, map[uint64][]byte{
			onionmsg.InvoiceRequestType: f.invreq})
	}
	flooder, normal := replyPath(t, 0xa0), replyPath(t, 0xb0)
	served, limited := 0, 0
	for range 100 {
		switch h.srv.Handle(ctx, invreq(flooder)) {
		case OutcomeInvoiceServed:
			served++
		case OutcomeRateRequester:
			limited++
		}
	}
	require.Equal(t, DefaultBurst, served)
	require.Equal(t, 100-DefaultBurst, limited)
	require.Equal(t, OutcomeInvoiceServed, h.srv.Handle(ctx, invreq(normal)))
	require.Len(t, h.sender.take(), DefaultBurst+1)
}

// TestAddRecipient checks the API's bounds and renewals.
func TestAddRecipient(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(c *Config) { c.MaxRecipients = 2 })

	tests := []struct {
		name string
		id   []byte
		ttl  time.Duration
		n    int
		want error
	}{
		{"empty id", nil, 0, 1, ErrInvalidRecipientID},
		{"id too long", make([]byte, MaxRecipientIDLen+1), 0, 1,
			ErrInvalidRecipientID},
		{"no paths", []byte("a"), 0, 0, ErrInvalidRequest},
		{"too many paths", []byte("a"), 0, MaxPathsPerCall + 1,
			ErrInvalidRequest},
		{"expiry under a minute", []byte("a"), time.Second, 1,
			ErrInvalidRequest},
		{"negative expiry", []byte("a"), -time.Hour, 1,
			ErrInvalidRequest},
		{"longest id", make([]byte, MaxRecipientIDLen), time.Hour, 1,
			nil},
		{"second", []byte("b"), 0, MaxPathsPerCall, nil},
		{"third is one too many", []byte("c"), 0, 1,
			ErrTooManyRecipients},
		{"renewing is not a new one", []byte("b"), time.Hour, 1, nil},
	}
	for _, tc := range tests {
		r, paths, err := h.srv.AddRecipient(ctx, tc.id, tc.ttl, tc.n)
		if tc.want != nil {
			require.ErrorIs(t, err, tc.want, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		require.Len(t, paths, tc.n, tc.name)
		want := Recipient{ID: tc.id, CreatedAt: t0}
		if tc.ttl > 0 {
			want.ExpiresAt = t0.Add(tc.ttl)
		}
		require.Equal(t, want, r, tc.name)
	}
	list, err := h.srv.ListRecipients(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.NoError(t, h.srv.RemoveRecipient(ctx, []byte("b")))
	require.ErrorIs(t, h.srv.RemoveRecipient(ctx, []byte("b")),
		ErrUnknownRecipient)
}

// TestNewRefusesUnsafeConfig: a server without its parts, without a chain,
// or with bounds past LDK's is refused.
func TestNewRefusesUnsafeConfig(t *testing.T) {
	h := newHarness(t, nil)
	good := h.srv.cfg
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no store", func(c *Config) { c.Store = nil }},
		{"no sender", func(c *Config) { c.Sender = nil }},
		{"no minter", func(c *Config) { c.Minter = nil }},
		{"no authenticator", func(c *Config) { c.Auth = nil }},
		{"no chain", func(c *Config) { c.Chain = [32]byte{} }},
		{"invoice bound over 5 KiB", func(c *Config) {
			c.MaxInvoiceSize = MaxInvoiceSize + 1
		}},
		{"too many offer paths", func(c *Config) {
			c.OfferPaths = MaxPathsPerCall + 1
		}},
	}
	for _, tc := range tests {
		cfg := good
		tc.mod(&cfg)
		_, err := New(cfg)
		require.ErrorIs(t, err, ErrInvalidRequest, tc.name)
	}
	srv, err := New(Config{Auth: good.Auth, Minter: good.Minter,
		Store: good.Store, Sender: good.Sender, Chain: good.Chain})
	require.NoError(t, err)
	require.Equal(t, DefaultMaxRecipients, srv.cfg.MaxRecipients)
	require.Equal(t, uint16(DefaultMaxSlots), srv.cfg.MaxSlots)
	require.Equal(t, MaxInvoiceSize, srv.cfg.MaxInvoiceSize)
	require.Equal(t, DefaultOfferPathTTL, srv.cfg.OfferPathTTL)
	require.Equal(t, 1, srv.cfg.OfferPaths)
}
