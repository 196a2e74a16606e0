//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/invoiceserver"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/peerlink"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// payerEndpoint is the payer's message endpoint in the test process: a
// fresh node key with its own brontide link to S's lnd, so that S's lnd
// forwards onion messages for it (the last hop of the reply path), and a
// peeler that reads them.
type payerEndpoint struct {
	key  *btcec.PrivateKey
	link *peerlink.Link
	msgs chan *onionmsg.Peeled
}

// startPayerEndpoint connects a fresh key to S's lnd and waits until the
// link is up.
func startPayerEndpoint(t *testing.T, net *Network) *payerEndpoint {
	t.Helper()
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	sKey, err := btcec.ParsePubKey(net.S.PubKey)
	require.NoError(t, err)
	peeler := onionmsg.NewPeeler(&keychain.PrivKeyECDH{PrivKey: key})
	ep := &payerEndpoint{key: key, msgs: make(chan *onionmsg.Peeled, 16)}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ep.link, err = peerlink.New(peerlink.Config{
		NodeKey:    key,
		PeerPubKey: sKey,
		PeerAddr:   net.S.P2PAddr,
		OnMessage: func(_ context.Context, msg *lnwire.OnionMessage) {
			p, err := peeler.Peel(msg)
			if err != nil {
				t.Logf("payer endpoint: peel: %v", err)
				return
			}
			select {
			case ep.msgs <- p:
			default:
			}
		},
		Logger: log,
	})
	require.NoError(t, err)
	require.NoError(t, ep.link.Start())
	t.Cleanup(func() { _ = ep.link.Stop() })
	require.Eventually(t, func() bool {
		has, err := net.S.HasPeer(t.Context(),
			hex.EncodeToString(key.PubKey().SerializeCompressed()))
		return err == nil && has
	}, DefaultTimeout, 100*time.Millisecond)
	return ep
}

// replyPath mints the reply path [S's lnd: next_node_id = endpoint] ->
// [endpoint: path_id].
func (ep *payerEndpoint) replyPath(t *testing.T, net *Network,
	pathID []byte) *onionmsg.BlindedPath {

	t.Helper()
	sKey, err := btcec.ParsePubKey(net.S.PubKey)
	require.NoError(t, err)
	minter, err := invoiceserver.NewHopMinter(sKey, ep.key.PubKey())
	require.NoError(t, err)
	session, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	path, err := minter.MintPath(session, pathID)
	require.NoError(t, err)
	return path
}

// requestInvoice builds an invoice_request for offer with a fresh payer
// key and has S's lnd send it over the offer's first path with a reply
// path to the endpoint.
func (ep *payerEndpoint) requestInvoice(t *testing.T, net *Network,
	offer *bolt12.Offer, chain chainhash.Hash,
	pathID []byte) *bolt12.InvoiceRequest {

	t.Helper()
	payer, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	amount := uint64(21_000)
	ir, err := bolt12.NewInvoiceRequest(offer, bolt12.InvoiceRequestParams{
		PayerKey: payer,
		Chain:    &chain,
		Amount:   &amount,
	})
	require.NoError(t, err)
	require.NotEmpty(t, offer.Paths)
	path := offer.Paths[0]
	require.NotNil(t, path.IntroNode)
	session, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	msg, err := onionmsg.BuildOnionMessage(session, path,
		ep.replyPath(t, net, pathID), map[uint64][]byte{
			onionmsg.InvoiceRequestType: ir.Encode(),
		})
	require.NoError(t, err)
	require.NoError(t, net.S.SendOnionMessage(t.Context(),
		path.IntroNode.SerializeCompressed(),
		msg.PathKey.SerializeCompressed(), msg.OnionBlob))
	return ir
}

// receive waits for the endpoint's next final-hop message with path_id.
func (ep *payerEndpoint) receive(t *testing.T,
	pathID []byte) *onionmsg.Peeled {

	t.Helper()
	deadline := time.After(DefaultTimeout)
	for {
		select {
		case p := <-ep.msgs:
			if !p.Final || p.Data == nil {
				t.Logf("payer endpoint: not a final hop: %+v", p)
				continue
			}
			id := p.Data.PathID.ValOpt()
			if id.IsNone() ||
				string(id.UnwrapOr(nil)) != string(pathID) {

				t.Logf("payer endpoint: other path_id")
				continue
			}
			return p
		case <-deadline:
			t.Fatalf("payer endpoint: nothing on path_id %q within "+
				"%v", pathID, DefaultTimeout)
			return nil
		}
	}
}

// TestStaticInvoiceServedWhileOffline is issue 15's end to end. L's holdd
// runs the lsp, server and mailbox roles; P's holdd registers with L's
// static invoice server and L's mailbox, and its offer goes live. L's
// holdd restarts; P (its holdd and lnd) goes offline. The test, as a payer
// behind S, sends an invoice_request built with bolt12/ over the offer's
// path with a reply path ending at its own key (through S's lnd): L
// answers with P's static invoice (onionmsg 70), whose signature verifies
// and which mirrors the offer, and forwards the request along P's
// forward_invoice_request_path, which runs through L's mailbox, so it
// waits there. P comes back and its holdd records the forwarded request.
func TestStaticInvoiceServedWhileOffline(t *testing.T) {
	net := Net(t)
	if net.LndVersion.Less(nativeOnionMessages) {
		t.Skipf("S runs lnd %s: it forwards no onion messages to a "+
			"peer", net.LndVersion)
	}
	ctx := t.Context()
	start := time.Now()
	const lspRoles = "--role=lsp,server,mailbox"
	require.NoError(t, net.RestartHoldd(ctx, lspRoles))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			2*DefaultTimeout)
		defer cancel()
		require.NoError(t, net.RestartHoldd(ctx))
	})

	lc, err := net.HolddClient()
	require.NoError(t, err)
	reg, err := lc.AddAsyncRecipient(ctx, &holdrpc.AddAsyncRecipientRequest{
		Id: []byte("offline-phone"),
	})
	require.NoError(t, err)
	require.NotEmpty(t, reg.Paths)
	// Before the roles are restored: later tests expect no recipient.
	t.Cleanup(func() {
		lc, err := net.HolddClient()
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		_, err = lc.RemoveAsyncRecipient(context.Background(),
			&holdrpc.RemoveAsyncRecipientRequest{
				Id: []byte("offline-phone"),
			})
		if err != nil {
			t.Errorf("cleanup: remove async recipient: %v", err)
		}
	})
	recipientArgs := []string{
		"--recipient.server=" + hex.EncodeToString(reg.Paths[0]),
		"--recipient.mailbox=" + net.L.PubKeyHex,
	}

	p := startRecipient(t, net, recipientArgs...)
	waitMailboxRegistered(t, p, net)
	live := waitOfferLive(t, p)
	offer, err := bolt12.DecodeOfferString(live.Offer)
	require.NoError(t, err)
	require.Nil(t, offer.Amount)
	t.Logf("offer live after %v", time.Since(start).Round(time.Second))

	// L's holdd restarts between the registration and the request.
	require.NoError(t, net.RestartHoldd(ctx, lspRoles))
	lc, err = net.HolddClient()
	require.NoError(t, err)
	list, err := lc.ListAsyncRecipients(ctx,
		&holdrpc.ListAsyncRecipientsRequest{})
	require.NoError(t, err)
	// L still has the invoice for P's offer (an earlier test's
	// recipient may be listed too).
	offerID := offer.ID()
	require.True(t, slices.ContainsFunc(list.Recipients,
		func(r *holdrpc.AsyncRecipient) bool {
			return slices.ContainsFunc(r.Invoices,
				func(i *holdrpc.StaticInvoiceSlot) bool {
					return string(i.OfferId) ==
						string(offerID[:])
				})
		}), "L lists no invoice for offer %v", offerID)

	// P goes offline, its holdd and its lnd.
	before := mailboxStats(t, net)
	startP := stopP(t, net)

	chain, err := bolt12.NetworkChain("regtest")
	require.NoError(t, err)
	ep := startPayerEndpoint(t, net)

	sent := time.Now()
	ir := ep.requestInvoice(t, net, offer, chain, []byte("offline"))
	got := ep.receive(t, []byte("offline"))
	t.Logf("static invoice served %v after the request, P offline",
		time.Since(sent).Round(time.Millisecond))

	raw, ok := got.FinalTLVs[onionmsg.StaticInvoiceType]
	require.True(t, ok, "final TLVs %v", got.FinalTLVs)
	require.Len(t, got.FinalTLVs, 1)
	si, err := bolt12.DecodeStaticInvoice(raw)
	require.NoError(t, err)
	require.NoError(t, si.VerifySignature())
	require.NoError(t, si.IsFromOffer(offer))
	require.NoError(t, si.Check(time.Now(), chain))
	id, err := si.OfferID()
	require.NoError(t, err)
	require.Equal(t, offer.ID(), id)
	irID, err := ir.OfferID()
	require.NoError(t, err)
	require.Equal(t, offer.ID(), irID)
	require.NotEmpty(t, si.Invoice.Paths)
	require.Len(t, si.Invoice.BlindedPay, len(si.Invoice.Paths))
	require.NotEmpty(t, si.Invoice.MessagePaths)
	require.Nil(t, si.Invoice.PaymentHash)
	require.Nil(t, si.Invoice.Amount)
	require.NotNil(t, si.Invoice.NodeID)
	require.True(t, slices.ContainsFunc(offer.SigningKeys(),
		si.Invoice.NodeID.IsEqual), "signed by the offer's key")
	// Payment paths L -> P's lnd -> V; held-HTLC paths through L's
	// mailbox.
	require.Equal(t, net.L.PubKeyHex, hex.EncodeToString(
		si.Invoice.Paths[0].IntroNode.SerializeCompressed()))
	require.Equal(t, net.L.PubKeyHex, hex.EncodeToString(
		si.Invoice.MessagePaths[0].IntroNode.SerializeCompressed()))

	// L forwarded the request into its mailbox, where it waits for P.
	waitMailbox(t, net, "the forwarded invoice_request kept for P",
		func(s *holdrpc.MailboxStats) bool {
			return s.Stored >= before.Stored+1 &&
				s.StoredMessages >= 1
		})

	// P comes back: the mailbox delivers, P's holdd records it.
	require.NoError(t, startP(ctx))
	require.NoError(t, net.WaitChannelsActive(ctx))
	p, err = net.StartRecipientHoldd(ctx, recipientArgs...)
	require.NoError(t, err)
	waitMailboxRegistered(t, p, net)
	require.Eventually(t, func() bool {
		resp, err := p.Client.GetOffer(ctx, &holdrpc.GetOfferRequest{})
		return err == nil &&
			resp.Counts["forwarded_invoice_request"] == 1
	}, DefaultTimeout, 200*time.Millisecond)
	waitMailbox(t, net, "the mailbox delivered",
		func(s *holdrpc.MailboxStats) bool {
			return s.Delivered >= before.Delivered+1 &&
				s.StoredMessages == 0
		})
	t.Logf("whole test %v", time.Since(start).Round(time.Second))
}
