package invoiceserver

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/record"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_800_000_000, 0).UTC()

func testKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

// memStore is an in-memory Store.
type memStore struct {
	mu         sync.Mutex
	recipients map[string]Recipient
	invoices   map[string]map[uint16]StaticInvoice
	failPut    error
}

func newMemStore() *memStore {
	return &memStore{
		recipients: make(map[string]Recipient),
		invoices:   make(map[string]map[uint16]StaticInvoice),
	}
}

func (m *memStore) PutAsyncRecipient(_ context.Context, r Recipient,
	maxRecipients int) (Recipient, error) {

	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.recipients[string(r.ID)]
	if !ok && len(m.recipients) >= maxRecipients {
		return Recipient{}, ErrTooManyRecipients
	}
	if ok {
		r.CreatedAt = old.CreatedAt
	}
	m.recipients[string(r.ID)] = r
	return r, nil
}

func (m *memStore) GetAsyncRecipient(_ context.Context,
	id []byte) (Recipient, error) {

	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recipients[string(id)]
	if !ok {
		return Recipient{}, ErrUnknownRecipient
	}
	return r, nil
}

func (m *memStore) RemoveAsyncRecipient(_ context.Context, id []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recipients[string(id)]; !ok {
		return ErrUnknownRecipient
	}
	delete(m.recipients, string(id))
	delete(m.invoices, string(id))
	return nil
}

func (m *memStore) ListAsyncRecipients(context.Context) ([]Recipient,
	error) {

	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Recipient
	for _, r := range m.recipients {
		out = append(out, r)
	}
	return out, nil
}

func (m *memStore) PutStaticInvoice(_ context.Context,
	inv StaticInvoice) error {

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		return m.failPut
	}
	if _, ok := m.recipients[string(inv.RecipientID)]; !ok {
		return ErrUnknownRecipient
	}
	slots := m.invoices[string(inv.RecipientID)]
	if slots == nil {
		slots = make(map[uint16]StaticInvoice)
		m.invoices[string(inv.RecipientID)] = slots
	}
	slots[inv.Slot] = inv
	return nil
}

func (m *memStore) GetStaticInvoice(_ context.Context, id []byte,
	slot uint16) (StaticInvoice, error) {

	m.mu.Lock()
	defer m.mu.Unlock()
	inv, ok := m.invoices[string(id)][slot]
	if !ok {
		return StaticInvoice{}, ErrNoInvoice
	}
	inv.RecipientExpiresAt = m.recipients[string(id)].ExpiresAt
	return inv, nil
}

func (m *memStore) invoiceCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, s := range m.invoices {
		n += len(s)
	}
	return n
}

// sent is one message the fake sender or forwarder was given.
type sent struct {
	path, reply *onionmsg.BlindedPath
	tlvs        map[uint64][]byte
}

type fakeSender struct {
	mu   sync.Mutex
	msgs []sent
	fail error
}

func (f *fakeSender) Send(_ context.Context, path,
	reply *onionmsg.BlindedPath, tlvs map[uint64][]byte) error {

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.msgs = append(f.msgs, sent{path: path, reply: reply, tlvs: tlvs})
	return nil
}

func (f *fakeSender) ForwardInvoiceRequest(_ context.Context, path,
	reply *onionmsg.BlindedPath, invreq []byte) error {

	return f.Send(context.Background(), path, reply,
		map[uint64][]byte{onionmsg.InvoiceRequestType: invreq})
}

func (f *fakeSender) take() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.msgs
	f.msgs = nil
	return out
}

var errSend = errors.New("send failed")

// harness is a server with fakes, an LSP (lnd key 0x11, holdd key 0x22)
// and a test clock at t0.
type harness struct {
	t         testing.TB
	srv       *Server
	auth      *Authenticator
	store     *memStore
	sender    *fakeSender
	forwarder *fakeSender
	clock     *clock.TestClock
}

func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	auth, err := NewAuthenticator(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	minter, err := NewHopMinter(testKey(0x11).PubKey(),
		testKey(0x22).PubKey())
	require.NoError(t, err)
	h := &harness{
		t:         t,
		auth:      auth,
		store:     newMemStore(),
		sender:    &fakeSender{},
		forwarder: &fakeSender{},
		clock:     clock.NewTestClock(t0),
	}
	log := logrus.New()
	log.SetOutput(bytes.NewBuffer(nil))
	cfg := Config{
		Auth: auth, Minter: minter, Store: h.store, Sender: h.sender,
		Forwarder: h.forwarder, Chain: bolt12.BitcoinChain,
		Clock: h.clock, Log: log,
	}
	if mod != nil {
		mod(&cfg)
	}
	h.srv, err = New(cfg)
	require.NoError(t, err)
	keys := byte(0x60)
	h.srv.newSessionKey = func() (*btcec.PrivateKey, error) {
		keys++
		return testKey(keys), nil
	}
	return h
}

// replyPath is a payer's or recipient's reply path with intro node key b.
func replyPath(t testing.TB, b byte) *onionmsg.BlindedPath {
	t.Helper()
	p, err := onionmsg.BuildBlindedPath(testKey(b+1), []onionmsg.Hop{{
		NodeID: testKey(b).PubKey(),
		Data:   record.NewFinalHopBlindedRouteData(nil, []byte{b}),
	}}, true)
	require.NoError(t, err)
	return p
}

func (h *harness) pathID(c Claim) []byte {
	id, err := h.auth.Mint(c)
	require.NoError(h.t, err)
	return id
}

func peeled(pathID []byte, reply *onionmsg.BlindedPath,
	tlvs map[uint64][]byte) *onionmsg.Peeled {

	return &onionmsg.Peeled{
		Final:     true,
		Data:      record.NewFinalHopBlindedRouteData(nil, pathID),
		ReplyPath: reply,
		FinalTLVs: tlvs,
	}
}

// register adds recipient id without expiry and returns its registration
// path_id.
func (h *harness) register(id string) []byte {
	_, paths, err := h.srv.AddRecipient(context.Background(), []byte(id),
		0, 1)
	require.NoError(h.t, err)
	require.Len(h.t, paths, 1)
	return h.pathID(Claim{Kind: KindRegistration, RecipientID: []byte(id)})
}

// offerPaths runs offer_paths_request for (id, slot) and returns the
// offer paths and the serve path_id.
func (h *harness) offerPaths(id string, slot uint16) []*onionmsg.BlindedPath {
	h.t.Helper()
	out := h.srv.Handle(context.Background(), peeled(h.register(id),
		replyPath(h.t, 0x30), map[uint64][]byte{
			onionmsg.OfferPathsRequestType: onionmsg.
				EncodeOfferPathsRequest(onionmsg.OfferPathsRequest{
					InvoiceSlot: slot}),
		}))
	require.Equal(h.t, OutcomeOfferPathsSent, out)
	msgs := h.sender.take()
	require.Len(h.t, msgs, 1)
	m, err := onionmsg.DecodeOfferPaths(
		msgs[0].tlvs[onionmsg.OfferPathsType])
	require.NoError(h.t, err)
	return m.Paths
}

func (h *harness) serveID(id string, slot uint16) []byte {
	return h.pathID(Claim{Kind: KindServe, RecipientID: []byte(id),
		Slot: slot, ExpiresAt: t0.Add(DefaultOfferPathTTL)})
}

func (h *harness) offerID(id string, slot uint16) []byte {
	return h.pathID(Claim{Kind: KindOffer, RecipientID: []byte(id),
		Slot: slot, ExpiresAt: t0.Add(DefaultOfferPathTTL)})
}

// offerAndInvoice builds an async offer over paths and its static invoice,
// signed by key 0x40 and created at t0.
func offerAndInvoice(t testing.TB, paths []*onionmsg.BlindedPath,
	desc string) (*bolt12.Offer, *bolt12.StaticInvoice) {

	t.Helper()
	offer, err := bolt12.NewOffer(bolt12.OfferFields{
		Description: &desc,
		Paths:       paths,
		IssuerID:    testKey(0x40).PubKey(),
	})
	require.NoError(t, err)
	inv, err := bolt12.NewStaticInvoice(offer, bolt12.StaticInvoiceParams{
		InvoiceParams: bolt12.InvoiceParams{
			SigningKey: testKey(0x40),
			Paths: []bolt12.PaymentPath{{
				Path: replyPath(t, 0x50),
				PayInfo: bolt12.BlindedPayInfo{
					FeeBaseMsat:     1000,
					CltvExpiryDelta: 144,
					HtlcMinimumMsat: 1,
					HtlcMaximumMsat: 1_000_000_000,
				},
			}},
			CreatedAt: t0,
		},
		MessagePaths: []*onionmsg.BlindedPath{replyPath(t, 0x55)},
	})
	require.NoError(t, err)
	return offer, inv
}

func serveValue(t testing.TB, inv []byte) []byte {
	t.Helper()
	b, err := onionmsg.EncodeServeStaticInvoice(onionmsg.ServeStaticInvoice{
		Invoice:                   inv,
		ForwardInvoiceRequestPath: replyPath(t, 0x70),
	})
	require.NoError(t, err)
	return b
}

func invoiceRequest(t testing.TB, offer *bolt12.Offer) []byte {
	t.Helper()
	amt := uint64(50_000)
	ir, err := bolt12.NewInvoiceRequest(offer, bolt12.InvoiceRequestParams{
		PayerKey: testKey(0x45), Metadata: []byte{1, 2, 3},
		Amount: &amt,
	})
	require.NoError(t, err)
	return ir.Encode()
}
