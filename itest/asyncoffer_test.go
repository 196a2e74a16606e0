//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/holdrpc"
	"github.com/stretchr/testify/require"
)

// TestAsyncOfferClient: P's holdd, configured with a registration path of
// L's static invoice server, gets offer paths, builds its offer and static
// invoice, and L persists it; the offer goes live. L keeps the invoice
// across a restart of its holdd, and P's re-serve after its own restart
// keeps the same offer.
func TestAsyncOfferClient(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	startServerLSP(t, net)

	lc, err := net.HolddClient()
	require.NoError(t, err)
	reg, err := lc.AddAsyncRecipient(ctx, &holdrpc.AddAsyncRecipientRequest{
		Id: []byte("phone"),
	})
	require.NoError(t, err)
	require.NotEmpty(t, reg.Paths)
	// Later tests on the shared network see only their own recipients.
	t.Cleanup(func() {
		lc, err := net.HolddClient()
		require.NoError(t, err)
		_, err = lc.RemoveAsyncRecipient(context.Background(),
			&holdrpc.RemoveAsyncRecipientRequest{Id: []byte("phone")})
		require.NoError(t, err)
	})
	server := "--recipient.server=" + hex.EncodeToString(reg.Paths[0])

	p := startRecipient(t, net, server)
	offer := waitOfferLive(t, p)
	o, err := bolt12.DecodeOfferString(offer.Offer)
	require.NoError(t, err)
	require.Nil(t, o.Amount)
	require.NotEmpty(t, o.Paths)
	require.Equal(t, net.L.PubKeyHex, hex.EncodeToString(
		o.Paths[0].IntroNode.SerializeCompressed()))

	// L stores the static invoice for P's slot 0.
	list, err := lc.ListAsyncRecipients(ctx,
		&holdrpc.ListAsyncRecipientsRequest{})
	require.NoError(t, err)
	require.Len(t, list.Recipients, 1)
	require.Len(t, list.Recipients[0].Invoices, 1)
	require.Zero(t, list.Recipients[0].Invoices[0].Slot)

	// L's holdd restarts (still the server) and keeps the invoice; P
	// restarts, re-serves, and stays live with the same offer.
	require.NoError(t, net.RestartHoldd(ctx, "--role=lsp,server"))
	lc, err = net.HolddClient()
	require.NoError(t, err)
	list, err = lc.ListAsyncRecipients(ctx,
		&holdrpc.ListAsyncRecipientsRequest{})
	require.NoError(t, err)
	require.Len(t, list.Recipients[0].Invoices, 1)

	require.NoError(t, net.StopRecipientHoldd())
	p, err = net.StartRecipientHoldd(ctx, server)
	require.NoError(t, err)
	again := waitOfferLive(t, p)
	require.Equal(t, offer.Offer, again.Offer)
	require.GreaterOrEqual(t, again.ServedAtUnix, offer.ServedAtUnix)
}

func waitOfferLive(t *testing.T, p *Holdd) *holdrpc.AsyncOffer {
	t.Helper()
	var got *holdrpc.AsyncOffer
	require.Eventually(t, func() bool {
		resp, err := p.Client.GetOffer(t.Context(),
			&holdrpc.GetOfferRequest{})
		if err != nil || len(resp.Offers) == 0 {
			return false
		}
		got = resp.Offers[0]
		return got.Live && got.Phase == "live"
	}, DefaultTimeout, 200*time.Millisecond)
	return got
}
