package asyncoffer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/invoiceserver"
	"github.com/holdd/holdd/release/onionmsg"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_800_000_000, 0).UTC()

// Keys of the test network: L's lnd and holdd (the server), P's lnd and
// holdd (the client).
const (
	keyLLnd   = 0x11
	keyLHoldd = 0x22
	keyPLnd   = 0x33
	keyPHoldd = 0x44
	keyPayer  = 0x66
)

func testKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

func quietLog() logrus.FieldLogger {
	if os.Getenv("AOLOG") != "" {
		l := logrus.New()
		l.SetLevel(logrus.DebugLevel)
		return l
	}
	l := logrus.New()
	l.SetOutput(bytes.NewBuffer(nil))
	return l
}

// decodeHops decrypts every hop of path with the private keys in keys
// (looked up by real node id, following next_node_id, or order when a
// hop names a channel) and returns each hop's data.
func decodeHops(t testing.TB, path *onionmsg.BlindedPath,
	order []*btcec.PrivateKey) []*record.BlindedRouteData {

	t.Helper()
	byNode := make(map[[33]byte]*btcec.PrivateKey)
	for _, k := range order {
		var id [33]byte
		copy(id[:], k.PubKey().SerializeCompressed())
		byNode[id] = k
	}
	require.NotNil(t, path.IntroNode)
	node := path.IntroNode
	e := path.PathKey
	var out []*record.BlindedRouteData
	for i, hop := range path.Hops {
		var id [33]byte
		copy(id[:], node.SerializeCompressed())
		priv, ok := byNode[id]
		if !ok && i < len(order) {
			priv = order[i]
		}
		require.NotNil(t, priv, "hop %d: unknown node", i)
		r := sphinx.NewRouter(&sphinx.PrivKeyECDH{PrivKey: priv},
			sphinx.NewNoOpReplayLog())
		// sphinx decrypts in place: keep the path intact.
		plain, err := r.DecryptBlindedHopData(e,
			bytes.Clone(hop.CipherText))
		require.NoError(t, err, "hop %d", i)
		data, err := record.DecodeBlindedRouteData(
			bytes.NewReader(plain))
		require.NoError(t, err, "hop %d", i)
		out = append(out, data)
		if next := data.NextNodeID.ValOpt(); next.IsSome() {
			node = next.UnwrapOr(nil)
		} else if i+1 < len(order) {
			node = order[i+1].PubKey()
		}
		e, err = r.NextEphemeral(e)
		require.NoError(t, err)
	}
	return out
}

// finalPathID returns the path_id of a message path through the test
// network's nodes.
func finalPathID(t testing.TB, path *onionmsg.BlindedPath) []byte {
	hops := decodeHops(t, path, []*btcec.PrivateKey{
		testKey(keyLLnd), testKey(keyLHoldd), testKey(keyPLnd),
		testKey(keyPHoldd),
	})
	return hops[len(hops)-1].PathID.ValOpt().UnwrapOr(nil)
}

// network delivers messages between the client and a real invoice server,
// in process: it decrypts each path's final path_id (it holds every key)
// and hands the final hop's payload to whoever owns it.
type network struct {
	t testing.TB

	mu       sync.Mutex
	down     bool
	dropToP  bool
	silent   bool
	server   *invoiceserver.Server
	client   *Handler
	sent     []uint64
	outcomes []string
	toPayer  []map[uint64][]byte
}

func (n *network) countSent(typ uint64) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, t := range n.sent {
		if t == typ {
			c++
		}
	}
	return c
}

func (n *network) set(f func(n *network)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n)
}

func (n *network) payerMessages() []map[uint64][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]map[uint64][]byte(nil), n.toPayer...)
}

var errDown = errors.New("server unreachable")

func (n *network) deliver(path, reply *onionmsg.BlindedPath,
	tlvs map[uint64][]byte) error {

	n.mu.Lock()
	down, dropToP, silent := n.down, n.dropToP, n.silent
	for typ := range tlvs {
		n.sent = append(n.sent, typ)
	}
	if path.IntroNode.IsEqual(testKey(keyPayer).PubKey()) {
		n.toPayer = append(n.toPayer, tlvs)
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()
	pathID := finalPathID(n.t, path)
	p := &onionmsg.Peeled{
		Final:     true,
		Data:      record.NewFinalHopBlindedRouteData(nil, pathID),
		ReplyPath: reply,
		FinalTLVs: tlvs,
	}
	var out string
	switch {
	case n.client.Match(pathID):
		if dropToP {
			return nil
		}
		out = n.client.Handle(context.Background(), p)
	case down:
		return errDown
	case silent:
		return nil
	default:
		out = n.server.Handle(context.Background(), p)
	}
	n.mu.Lock()
	n.outcomes = append(n.outcomes, out)
	n.mu.Unlock()
	return nil
}

// SendMessage is the client's Sender.
func (n *network) SendMessage(_ context.Context, path,
	reply *onionmsg.BlindedPath, tlvs map[uint64][]byte) error {

	return n.deliver(path, reply, tlvs)
}

// Send is the server's Sender.
func (n *network) Send(_ context.Context, path,
	reply *onionmsg.BlindedPath, tlvs map[uint64][]byte) error {

	return n.deliver(path, reply, tlvs)
}

// ForwardInvoiceRequest is the server's Forwarder.
func (n *network) ForwardInvoiceRequest(_ context.Context, path,
	reply *onionmsg.BlindedPath, invreq []byte) error {

	return n.deliver(path, reply,
		map[uint64][]byte{onionmsg.InvoiceRequestType: invreq})
}

// srvStore is an in-memory invoiceserver.Store.
type srvStore struct {
	mu         sync.Mutex
	recipients map[string]invoiceserver.Recipient
	invoices   map[string]invoiceserver.StaticInvoice
}

func (m *srvStore) PutAsyncRecipient(_ context.Context,
	r invoiceserver.Recipient, _ int) (invoiceserver.Recipient, error) {

	m.mu.Lock()
	defer m.mu.Unlock()
	m.recipients[string(r.ID)] = r
	return r, nil
}

func (m *srvStore) GetAsyncRecipient(_ context.Context,
	id []byte) (invoiceserver.Recipient, error) {

	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recipients[string(id)]
	if !ok {
		return r, invoiceserver.ErrUnknownRecipient
	}
	return r, nil
}

func (m *srvStore) RemoveAsyncRecipient(context.Context, []byte) error {
	return nil
}

func (m *srvStore) ListAsyncRecipients(context.Context) (
	[]invoiceserver.Recipient, error) {

	return nil, nil
}

func key(id []byte, slot uint16) string {
	return string(id) + "/" + string(rune(slot))
}

func (m *srvStore) PutStaticInvoice(_ context.Context,
	inv invoiceserver.StaticInvoice) error {

	m.mu.Lock()
	defer m.mu.Unlock()
	m.invoices[key(inv.RecipientID, inv.Slot)] = inv
	return nil
}

func (m *srvStore) GetStaticInvoice(_ context.Context, id []byte,
	slot uint16) (invoiceserver.StaticInvoice, error) {

	m.mu.Lock()
	defer m.mu.Unlock()
	inv, ok := m.invoices[key(id, slot)]
	if !ok {
		return inv, invoiceserver.ErrNoInvoice
	}
	return inv, nil
}

func (m *srvStore) invoice(id string, slot uint16) (
	invoiceserver.StaticInvoice, bool) {

	m.mu.Lock()
	defer m.mu.Unlock()
	inv, ok := m.invoices[key([]byte(id), slot)]
	return inv, ok
}

// memStore is an in-memory client Store.
type memStore struct {
	mu       sync.Mutex
	slots    map[uint16]Slot
	requests []ForwardedRequest
}

func (m *memStore) ListAsyncOfferSlots(context.Context) ([]Slot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Slot
	for _, s := range m.slots {
		out = append(out, s)
	}
	return out, nil
}

func (m *memStore) PutAsyncOfferSlot(_ context.Context, s Slot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slots[s.Slot] = s
	return nil
}

func (m *memStore) InsertForwardedInvoiceRequest(_ context.Context,
	r ForwardedRequest) error {

	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, r)
	return nil
}

func (m *memStore) slot(n uint16) Slot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.slots[n]
}

func (m *memStore) forwarded() []ForwardedRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ForwardedRequest(nil), m.requests...)
}

// fakeReceive returns one fixed receive path [P lnd -> P holdd].
type fakeReceive struct{ path *onionmsg.BlindedPath }

func (f fakeReceive) MessagePaths(context.Context,
	time.Time) ([]*onionmsg.BlindedPath, error) {

	return []*onionmsg.BlindedPath{f.path}, nil
}

// testPolicy is L's policy on the L-P channel.
var testPolicy = ChannelPolicy{
	SCID: lnwire.ShortChannelID{
		BlockHeight: 500, TxIndex: 1, TxPosition: 0,
	},
	FeeBaseMsat:     1000,
	FeeRatePPM:      100,
	CltvExpiryDelta: 80,
	HtlcMinimumMsat: 1000,
	HtlcMaximumMsat: 990_000_000,
}

type fakeGraph struct{}

func (fakeGraph) BestHeight(context.Context) (uint32, error) {
	return 800_000, nil
}

func (fakeGraph) PoliciesFrom(_ context.Context,
	lsp *btcec.PublicKey) ([]ChannelPolicy, error) {

	if !lsp.IsEqual(testKey(keyLLnd).PubKey()) {
		return nil, nil
	}
	return []ChannelPolicy{testPolicy}, nil
}

// harness is a client (P) and a real invoice server (L) on a network.
type harness struct {
	t      *testing.T
	clock  *clock.TestClock
	net    *network
	srv    *invoiceserver.Server
	sstore *srvStore
	store  *memStore
	client *Client
	auth   *PathAuth
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		clock: clock.NewTestClock(t0),
		sstore: &srvStore{
			recipients: map[string]invoiceserver.Recipient{},
			invoices:   map[string]invoiceserver.StaticInvoice{},
		},
		store: &memStore{slots: map[uint16]Slot{}},
	}
	h.net = &network{t: t}

	sauth, err := invoiceserver.NewAuthenticator(
		bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	sminter, err := invoiceserver.NewHopMinter(testKey(keyLLnd).PubKey(),
		testKey(keyLHoldd).PubKey())
	require.NoError(t, err)
	h.srv, err = invoiceserver.New(invoiceserver.Config{
		Auth: sauth, Minter: sminter, Store: h.sstore, Sender: h.net,
		Forwarder: h.net, Chain: bolt12.BitcoinChain,
		Clock: h.clock, Log: quietLog(),
	})
	require.NoError(t, err)
	h.net.server = h.srv
	_, serverPaths, err := h.srv.AddRecipient(context.Background(),
		[]byte("phone"), 0, 1)
	require.NoError(t, err)

	h.auth, err = NewPathAuth(bytes.Repeat([]byte{9}, 32))
	require.NoError(t, err)
	cminter, err := invoiceserver.NewHopMinter(testKey(keyPLnd).PubKey(),
		testKey(keyPHoldd).PubKey())
	require.NoError(t, err)
	recv, err := onionmsg.BuildBlindedPath(testKey(0x55), []onionmsg.Hop{{
		NodeID: testKey(keyPLnd).PubKey(),
		Data:   record.NewFinalHopBlindedRouteData(nil, []byte{1}),
	}}, true)
	require.NoError(t, err)

	cfg := Config{
		ServerPaths:  serverPaths,
		Slots:        1,
		Self:         testKey(keyPLnd).PubKey(),
		Auth:         h.auth,
		Store:        h.store,
		Sender:       h.net,
		Minter:       cminter,
		ReceivePaths: fakeReceive{path: recv},
		Graph:        fakeGraph{},
		Jitter:       func(n int64) int64 { return 0 },
		Clock:        h.clock,
		Logger:       quietLog(),
	}
	if mod != nil {
		mod(&cfg)
	}
	h.client, err = New(cfg)
	require.NoError(t, err)
	h.net.client = h.client.Handler()
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(func() {
		cancel()
		h.client.Stop()
	})
	require.NoError(h.t, h.client.Start(ctx))
}

// waitPhase waits until slot 0 reaches phase.
func (h *harness) waitPhase(phase Phase) Slot {
	h.t.Helper()
	var s Slot
	require.Eventually(h.t, func() bool {
		s = h.store.slot(0)
		return s.Phase == phase
	}, 5*time.Second, 5*time.Millisecond, "want phase %s", phase)
	return s
}

// advance moves the clock on by d.
func (h *harness) advance(d time.Duration) {
	h.clock.SetTime(h.clock.Now().Add(d))
}
