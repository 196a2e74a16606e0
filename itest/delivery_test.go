//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/stretchr/testify/require"
)

// nextDelivery waits for a path delivery on sub and checks it is for htlc.
func nextDelivery(t *testing.T, sub *CustomMessages, net *Network,
	htlc *holdrpc.HeldHtlc) (*release.PathDelivery, []byte) {

	t.Helper()
	msg, err := sub.Next(t.Context(), DefaultTimeout)
	require.NoError(t, err)
	require.Equal(t, net.L.PubKey, msg.Peer)
	d, err := release.DecodePathDelivery(msg.Data)
	require.NoError(t, err)
	require.Equal(t, plugin.CircuitKey{ChanID: htlc.Incoming.ChanId,
		HtlcID: htlc.Incoming.HtlcId}, d.Key)
	require.Equal(t, htlc.PaymentHash, d.PaymentHash[:])
	require.True(t, d.ExpiresAt.After(time.Now()), "expired paths")
	return d, msg.Data
}

// TestRedeliveryWhenFirstDeliveryLost: the path delivery made when the hold
// began is lost (S's lnd has no subscriber then, so it drops it). S gets
// the same paths again by asking (release_paths_request naming its HTLC),
// when it reconnects to L, and after holdd restarts; with them the payment
// completes. It also measures the time from S's reconnect to the paths
// arriving.
func TestRedeliveryWhenFirstDeliveryLost(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	logs := markLog(t, holddLogPath(net))

	// The hold; the delivery goes out while nobody on S listens.
	pay, inv := payWithHold(t, net, 21_000)
	h := waitHeld(t, net, inv.RHash, "held")
	key := plugin.CircuitKey{ChanID: h.Incoming.ChanId,
		HtlcID: h.Incoming.HtlcId}
	logs.waitCount(t, 1, fmt.Sprintf("Delivered 2 release paths for %v ",
		key))
	apiPaths := releasePaths(t, net, h)

	sub, err := net.S.SubscribeCustomMessages(ctx,
		release.PathDeliveryMsgType)
	require.NoError(t, err)
	defer sub.Close()

	// 1. S asks for its HTLC by circuit key. lnd registers the
	// subscription asynchronously, and holdd spaces deliveries of one
	// HTLC by 2 s, so S asks until the paths come, as payasync does.
	req, err := (&release.PathsRequest{Key: &key}).Encode()
	require.NoError(t, err)
	var raw []byte
	err = waitFor(ctx, DefaultTimeout, "paths in answer to a request",
		func(ctx context.Context) (bool, error) {
			if err := net.S.SendCustomMessage(ctx, net.L.PubKey,
				release.PathsRequestMsgType, req); err != nil {
				return false, err
			}
			msg, err := sub.Next(ctx, time.Second)
			if err != nil {
				return false, err
			}
			raw = msg.Data
			return true, nil
		})
	require.NoError(t, err)
	// The very delivery the hold produced: same paths, same expiry.
	require.Equal(t, apiPaths.DeliveryMsg, raw)
	logs.waitCount(t, 1, fmt.Sprintf("Redelivered 2 release paths for "+
		"%v ", key), "(request)")

	// 2. S disconnects and reconnects: L's holdd sends the paths again
	// once the channel is active. Measured from S seeing L online.
	peerEvents, err := net.S.Lightning.SubscribePeerEvents(ctx,
		&lnrpc.PeerEventSubscription{})
	require.NoError(t, err)
	online := make(chan time.Time, 4)
	go func() {
		for {
			ev, err := peerEvents.Recv()
			if err != nil {
				return
			}
			if ev.Type == lnrpc.PeerEvent_PEER_ONLINE &&
				ev.PubKey == net.L.PubKeyHex {

				online <- time.Now()
			}
		}
	}()
	_, err = net.S.Lightning.DisconnectPeer(ctx,
		&lnrpc.DisconnectPeerRequest{PubKey: net.L.PubKeyHex})
	require.NoError(t, err)
	// DisconnectPeer returns before the peer is gone. It also makes S
	// forget that L is a persistent peer (no re-dial, now or after L
	// restarts), so S connects again itself, persistently, leaving the
	// network as it found it.
	require.NoError(t, waitFor(ctx, DefaultTimeout, "S to drop L",
		func(ctx context.Context) (bool, error) {
			ok, err := net.S.HasPeer(ctx, net.L.PubKeyHex)
			return !ok, err
		}))
	_, err = net.S.Lightning.ConnectPeer(ctx, &lnrpc.ConnectPeerRequest{
		Addr: &lnrpc.LightningAddress{Pubkey: net.L.PubKeyHex,
			Host: net.L.P2PAddr},
		Perm:    true,
		Timeout: 30,
	})
	require.NoError(t, err)
	require.NoError(t, net.S.ConnectPeer(ctx, net.L))
	var back time.Time
	select {
	case back = <-online:
	case <-time.After(DefaultTimeout):
		t.Fatal("S never saw L online again")
	}
	_, again := nextDelivery(t, sub, net, h)
	elapsed := time.Since(back)
	require.Equal(t, raw, again)
	logs.waitCount(t, 1, fmt.Sprintf("Redelivered 2 release paths for "+
		"%v ", key), "(reconnect)")
	fmt.Printf("itest: reconnect to path delivery: %v (S's PEER_ONLINE "+
		"for L to S's lnd streaming the 48001)\n",
		elapsed.Round(time.Millisecond))

	// 3. holdd restarts: every held HTLC's paths go out again, minted
	// anew (this run has no cache) with the same expiry.
	first, err := release.DecodePathDelivery(raw)
	require.NoError(t, err)
	require.NoError(t, net.RestartHoldd(ctx))
	delivery, _ := nextDelivery(t, sub, net, h)
	require.Equal(t, first.ExpiresAt, delivery.ExpiresAt)
	require.Equal(t, first.AmountMsat, delivery.AmountMsat)
	require.Len(t, delivery.Paths, 2)
	logs.waitCount(t, 1, fmt.Sprintf("Redelivered 2 release paths for "+
		"%v ", key), "(restart)")

	// With the redelivered paths, P's release completes the payment.
	sendOverPath(t, net.P, delivery.Paths[0], releaseMsg)
	final, err := pay.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	require.Equal(t, int64(21_000), final.ValueSat)
	waitHeld(t, net, inv.RHash, "resumed")
}

// TestRequestForForeignHTLCIsIgnored: P asks for S's held HTLC, by key and
// by hash; holdd sends P nothing, and S still gets its own paths.
func TestRequestForForeignHTLCIsIgnored(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	logs := markLog(t, holddLogPath(net))
	held := holdOne(t, net, 22_000, 0)
	h := held.htlc
	key := plugin.CircuitKey{ChanID: h.Incoming.ChanId,
		HtlcID: h.Incoming.HtlcId}
	hash := lntypes.Hash(h.PaymentHash)

	pSub, err := net.P.SubscribeCustomMessages(ctx,
		release.PathDeliveryMsgType)
	require.NoError(t, err)
	defer pSub.Close()
	for _, r := range []release.PathsRequest{{Key: &key},
		{PaymentHash: &hash}} {

		b, err := r.Encode()
		require.NoError(t, err)
		require.NoError(t, net.P.SendCustomMessage(ctx, net.L.PubKey,
			release.PathsRequestMsgType, b))
	}
	// The requests reach holdd (it logs them at debug level only), so
	// wait for S's own request to be answered, which comes after them
	// on L's custom message stream only if sent after; then P must
	// have nothing.
	sSub, err := net.S.SubscribeCustomMessages(ctx,
		release.PathDeliveryMsgType)
	require.NoError(t, err)
	defer sSub.Close()
	b, err := (&release.PathsRequest{PaymentHash: &hash}).Encode()
	require.NoError(t, err)
	err = waitFor(ctx, DefaultTimeout, "S's own paths",
		func(ctx context.Context) (bool, error) {
			if err := net.S.SendCustomMessage(ctx, net.L.PubKey,
				release.PathsRequestMsgType, b); err != nil {
				return false, err
			}
			_, err := sSub.Next(ctx, time.Second)
			return err == nil, err
		})
	require.NoError(t, err)
	_, err = pSub.Next(ctx, 2*time.Second)
	require.ErrorIs(t, err, ErrTimeout, "P got a path delivery")
	require.Zero(t, logs.count(t, "Redelivered", hex.EncodeToString(
		net.P.PubKey)))

	// Clean up: release it.
	d, err := release.DecodePathDelivery(releasePaths(t, net,
		h).DeliveryMsg)
	require.NoError(t, err)
	sendOverPath(t, net.P, d.Paths[0], releaseMsg)
	_, err = held.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
}

// TestUnprovenSenderNotHeld: a sender that never sent
// release_paths_request (an lnd paying with first_hop_custom_records
// {75537: ""} directly, as an LDK sender that cannot read holdd's delivery
// would) is not held: by default its HTLC is forwarded at once and the
// payment settles because the recipient is online; with
// hold.unprovensender=fail it is failed back at once. Each moves its
// counter by exactly one. P is the unproven sender here: it pays S.
func TestUnprovenSenderNotHeld(t *testing.T) {
	net := Net(t)
	ctx := t.Context()

	// L needs balance on its side of S-L, above the channel reserve, to
	// forward P -> S.
	inv, err := net.P.AddInvoice(ctx, 200_000, "liquidity")
	require.NoError(t, err)
	fund, err := net.S.SendPayment(ctx, inv.PaymentRequest, PayOpts{})
	require.NoError(t, err)
	defer fund.Close()
	_, err = fund.WaitStatus(ctx, DefaultTimeout, lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)

	payUnproven := func(amt int64) (*Payment, *lnrpc.AddInvoiceResponse) {
		// S has only its private channel with L: the invoice carries
		// the route hint.
		inv, err := net.S.Lightning.AddInvoice(ctx, &lnrpc.Invoice{
			Value: amt, Memo: t.Name(), Private: true,
		})
		require.NoError(t, err)
		pay, err := net.P.SendPayment(ctx, inv.PaymentRequest, PayOpts{
			FirstHopCustomRecords: HoldHTLCRecords(),
			Unproven:              true,
		})
		require.NoError(t, err)
		t.Cleanup(pay.Close)
		return pay, inv
	}
	// P reaches L over the public L-P channel, so holdd would forward it
	// as not a client before asking whether P reads deliveries: list P
	// as a client. Earlier tests may have proved P (its payments greet
	// L); forget that, so P is the unproven sender here whatever ran
	// before.
	allowP := "--hold.allowpeer=" + net.P.PubKeyHex
	require.NoError(t, net.ForgetDeliveryPeer(ctx, net.P, allowP))
	t.Cleanup(func() { restoreHoldd(t, net) })
	requireNotHeld := func(hash []byte) {
		client, err := net.HolddClient()
		require.NoError(t, err)
		resp, err := client.ListHeld(ctx, &holdrpc.ListHeldRequest{})
		require.NoError(t, err)
		for _, h := range resp.Htlcs {
			require.NotEqual(t, hash, h.PaymentHash,
				"holdd recorded the unproven sender's HTLC")
		}
	}

	t.Run("resume", func(t *testing.T) {
		before := holddInfo(t, net).Decisions
		pay, inv := payUnproven(9_000)
		final, err := pay.WaitStatus(ctx, DefaultTimeout,
			lnrpc.Payment_SUCCEEDED)
		require.NoError(t, err)
		require.Equal(t, int64(9_000), final.ValueSat)
		after := holddInfo(t, net).Decisions
		require.Equal(t, before["resume_sender_not_capable"]+1,
			after["resume_sender_not_capable"])
		require.Equal(t, before["hold"], after["hold"])
		requireNotHeld(inv.RHash)
	})

	t.Run("fail", func(t *testing.T) {
		require.NoError(t, net.ForgetDeliveryPeer(ctx, net.P, allowP,
			"--hold.unprovensender=fail"))
		resetMissionControl(t, net.P)
		pay, inv := payUnproven(9_500)
		requireFailedByL(t, pay)
		after := holddInfo(t, net).Decisions
		require.Equal(t, uint64(1), after["fail_sender_not_capable"])
		require.Zero(t, after["hold"])
		requireNotHeld(inv.RHash)
		invoice, err := net.S.Lightning.LookupInvoice(ctx,
			&lnrpc.PaymentHash{RHash: inv.RHash})
		require.NoError(t, err)
		require.Equal(t, lnrpc.Invoice_OPEN, invoice.State)
		resetMissionControl(t, net.P)
	})
}
