package invoiceserver

import (
	"context"
	"fmt"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release/onionmsg"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/stretchr/testify/require"
)

// onionSender builds the real onion message for every send, as
// release/onionsend does, and drops it: the EC work of a reply.
type onionSender struct{}

func (onionSender) Send(_ context.Context, path,
	reply *onionmsg.BlindedPath, tlvs map[uint64][]byte) error {

	key, err := btcec.NewPrivateKey()
	if err != nil {
		return err
	}
	_, err = onionmsg.BuildOnionMessage(key, path, reply, tlvs)
	return err
}

func (s onionSender) ForwardInvoiceRequest(ctx context.Context, path,
	reply *onionmsg.BlindedPath, invreq []byte) error {

	return s.Send(ctx, path, reply,
		map[uint64][]byte{onionmsg.InvoiceRequestType: invreq})
}

// BenchmarkAnswerInvoiceRequest measures holdd's answer to one
// invoice_request on an offer path with 1k stored invoices: peel at holdd,
// checks, the static invoice's reply onion and the forwarded request's
// onion. The store is in memory, so this is the codec and EC share; compare
// with BenchmarkScalarMult for the floor (one answer needs about three
// multiplications per hop of each onion).
func BenchmarkAnswerInvoiceRequest(b *testing.B) {
	for _, stored := range []int{1_000} {
		b.Run(fmt.Sprintf("stored=%d", stored), func(b *testing.B) {
			benchAnswer(b, stored)
		})
	}
}

func benchAnswer(b *testing.B, stored int) {
	ctx := context.Background()
	h := newHarness(b, func(c *Config) {
		c.RequesterBurst = 1 << 30
		c.InvoiceRequestBurst = 1 << 30
	})
	f := h.fixture()
	offerPath := h.offerPaths("alice", 1)[0]
	h.srv.cfg.Sender = onionSender{}
	h.srv.cfg.Forwarder = onionSender{}
	// Fill the store with other recipients' invoices.
	inv := h.store.invoices["alice"][1]
	for i := range stored - 1 {
		id := []byte(fmt.Sprintf("r%06d", i))
		h.store.recipients[string(id)] = Recipient{ID: id}
		cp := inv
		cp.RecipientID = id
		require.NoError(b, h.store.PutStaticInvoice(ctx, cp))
	}

	// The payer's message over alice's offer path, peeled once at lnd
	// (outside the timing) so the loop peels holdd's layer.
	msg, err := onionmsg.BuildOnionMessage(testKey(0x99), offerPath,
		f.reply, map[uint64][]byte{onionmsg.InvoiceRequestType: f.invreq})
	require.NoError(b, err)
	lnd := onionmsg.NewPeeler(&sphinx.PrivKeyECDH{PrivKey: testKey(0x11)})
	atLnd, err := lnd.Peel(msg)
	require.NoError(b, err)
	holdd := onionmsg.NewPeeler(&sphinx.PrivKeyECDH{
		PrivKey: testKey(0x22)})

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := holdd.Peel(atLnd.NextMessage)
		if err != nil {
			b.Fatal(err)
		}
		if out := h.srv.Handle(ctx, p); out != OutcomeInvoiceServed {
			b.Fatal(out)
		}
	}
}

// BenchmarkScalarMult is one variable-base scalar multiplication, the unit
// of an answer's EC work.
func BenchmarkScalarMult(b *testing.B) {
	var k btcec.ModNScalar
	k.SetByteSlice(testKey(0x42).Serialize())
	var p, r btcec.JacobianPoint
	testKey(0x43).PubKey().AsJacobian(&p)
	for b.Loop() {
		btcec.ScalarMultNonConst(&k, &p, &r)
	}
}
