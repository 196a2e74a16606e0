//go:build itest

package itest

import (
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/stretchr/testify/require"
)

// TestAdmissionPublicChannelNotHeld: a payment that asks for a hold but
// reaches L over a public channel (here from P, over L-P, as a routing
// node forwarding somebody else's payment would) is not held: holdd
// forwards it at once, counts it as not_client, stores nothing, and it
// settles. With hold.allowpeer naming P the same payment is held, as is,
// all along, one from S over its private channel.
func TestAdmissionPublicChannelNotHeld(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	keepRunning(t, net)

	sl, err := net.L.ChannelByID(ctx, net.ChanSL)
	require.NoError(t, err)
	require.True(t, sl.Private)
	lp, err := net.L.ChannelByID(ctx, net.ChanLP)
	require.NoError(t, err)
	require.False(t, lp.Private)

	// P needs a balance on L-P to pay over it.
	inv, err := net.P.AddInvoice(ctx, 400_000, t.Name()+" funding")
	require.NoError(t, err)
	fund, err := net.S.SendPayment(ctx, inv.PaymentRequest, PayOpts{})
	require.NoError(t, err)
	defer fund.Close()
	_, err = fund.WaitStatus(ctx, DefaultTimeout, lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)

	before := holddInfo(t, net)
	pub := payFlagged(t, net.P, net.S, 70_000, 0)
	final, err := pub.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	require.Equal(t, int64(70_000), final.ValueSat)
	inv2 := requireInvoiceOf(t, net.S, pub.invoice.RHash,
		lnrpc.Invoice_SETTLED)
	require.Equal(t, int64(70_000_000), inv2.AmtPaidMsat)

	after := holddInfo(t, net)
	require.Equal(t, map[string]uint64{"not_client": 1},
		countsDelta(before.Decisions, after.Decisions))
	require.Equal(t, before.HeldCount, after.HeldCount)
	require.Empty(t, recordsByHash(t, net)[string(pub.invoice.RHash)])

	// The same over S's private channel is held.
	s := holdOne(t, net, 71_000, 0)
	require.Equal(t, net.ChanSL, s.htlc.Incoming.ChanId)
	require.Equal(t, "matched", manualRelease(t, net,
		s.htlc.Incoming).Outcome)
	requireResumed(t, net, s, "manual")

	// With P on the allowlist, P's flagged payment is held too.
	require.NoError(t, net.RestartHoldd(ctx,
		"--hold.allowpeer="+net.P.PubKeyHex))
	t.Cleanup(func() { restoreHoldd(t, net) })
	allowed := payFlagged(t, net.P, net.S, 72_000, 0)
	h := waitHeld(t, net, allowed.invoice.RHash, "held")
	t.Cleanup(func() { failIfStillHeld(t, net, h.Incoming) })
	require.Equal(t, net.ChanLP, h.Incoming.ChanId)
	require.Equal(t, net.P.PubKey, h.IncomingPeer)
	require.NoError(t, allowed.payment.RequireInFlightFor(ctx, time.Second))
	require.Equal(t, "matched", manualRelease(t, net, h.Incoming).Outcome)
	requireResumedTo(t, net, net.S, &heldPayment{payment: allowed.payment,
		invoice: allowed.invoice, htlc: h, amtSat: 72_000}, "manual")
}
