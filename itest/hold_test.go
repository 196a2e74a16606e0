//go:build itest

package itest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/stretchr/testify/require"
)

// defaultFailbackMargin is holdd's default hold.failbackmargin.
const defaultFailbackMargin = 12

// heldPayment is an async payment S -> P that holdd holds at L.
type heldPayment struct {
	payment *Payment
	invoice *lnrpc.AddInvoiceResponse
	htlc    *holdrpc.HeldHtlc
	amtSat  int64
}

// holdPayment pays a fresh invoice of P from S with hold_htlc and waits
// until holdd lists the HTLC as held.
func holdPayment(t *testing.T, net *Network, amtSat int64) *heldPayment {
	t.Helper()
	pay, inv := payWithHold(t, net, amtSat)
	htlc := waitHeld(t, net, inv.RHash, "held")
	return &heldPayment{payment: pay, invoice: inv, htlc: htlc,
		amtSat: amtSat}
}

// payWithHold pays a fresh invoice of P from S with hold_htlc.
func payWithHold(t *testing.T, net *Network, amtSat int64) (*Payment,
	*lnrpc.AddInvoiceResponse) {

	t.Helper()
	ctx := t.Context()
	inv, err := net.P.AddInvoice(ctx, amtSat, t.Name())
	require.NoError(t, err)
	pay, err := net.S.SendPayment(ctx, inv.PaymentRequest, PayOpts{
		FirstHopCustomRecords: HoldHTLCRecords(),
	})
	require.NoError(t, err)
	t.Cleanup(pay.Close)
	return pay, inv
}

// waitHeld waits until holdd lists the HTLC with hash in state.
func waitHeld(t *testing.T, net *Network, hash []byte,
	state string) *holdrpc.HeldHtlc {

	t.Helper()
	var found *holdrpc.HeldHtlc
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("holdd to list HTLC %x as %s", hash, state),
		func(ctx context.Context) (bool, error) {
			client, err := net.HolddClient()
			if err != nil {
				return false, err
			}
			resp, err := client.ListHeld(ctx,
				&holdrpc.ListHeldRequest{})
			if err != nil {
				return false, err
			}
			for _, h := range resp.Htlcs {
				if !bytes.Equal(h.PaymentHash, hash) {
					continue
				}
				found = h
				if h.State == state {
					return true, nil
				}
				return false, fmt.Errorf("state %s", h.State)
			}
			return false, fmt.Errorf("not listed")
		})
	require.NoError(t, err)
	return found
}

// holddInfo returns holdd's GetInfo.
func holddInfo(t *testing.T, net *Network) *holdrpc.GetInfoResponse {
	t.Helper()
	client, err := net.HolddClient()
	require.NoError(t, err)
	info, err := client.GetInfo(t.Context(), &holdrpc.GetInfoRequest{})
	require.NoError(t, err)
	return info
}

// waitReleaseCount waits until holdd counted outcome want times.
func waitReleaseCount(t *testing.T, net *Network, outcome string,
	want uint64) {

	t.Helper()
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("holdd to count %d release(s) %q", want, outcome),
		func(ctx context.Context) (bool, error) {
			got := holddInfo(t, net).Releases[outcome]
			if got == want {
				return true, nil
			}
			return false, fmt.Errorf("count %d", got)
		})
	require.NoError(t, err)
}

// releasePaths returns the release paths holdd minted for an HTLC.
func releasePaths(t *testing.T, net *Network,
	htlc *holdrpc.HeldHtlc) *holdrpc.GetReleasePathsResponse {

	t.Helper()
	client, err := net.HolddClient()
	require.NoError(t, err)
	resp, err := client.GetReleasePaths(t.Context(),
		&holdrpc.GetReleasePathsRequest{Incoming: htlc.Incoming})
	require.NoError(t, err)
	return resp
}

// sendOverPath builds an onion message over path with holdd's own codec
// and sends it from node to the path's introduction node.
func sendOverPath(t *testing.T, from *LndNode, path *onionmsg.BlindedPath,
	tlvs map[uint64][]byte) {

	t.Helper()
	sessionKey, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	msg, err := onionmsg.BuildOnionMessage(sessionKey, path, nil, tlvs)
	require.NoError(t, err)
	require.NotNil(t, path.IntroNode)
	require.NoError(t, from.SendOnionMessage(t.Context(),
		path.IntroNode.SerializeCompressed(),
		msg.PathKey.SerializeCompressed(), msg.OnionBlob))
}

func decodePath(t *testing.T, raw []byte) *onionmsg.BlindedPath {
	t.Helper()
	p, err := onionmsg.DecodeBlindedPath(bytes.NewReader(raw))
	require.NoError(t, err)
	return p
}

// releaseHops is how many hops holdd's release paths have on transport:
// [L: next_node_id=holdd] -> [holdd: path_id] over holdd's peer link, one hop
// [L: path_id] over lnd's custom-message API, where holdd reads L's final hop.
func releaseHops(t *testing.T, transport string) int {
	t.Helper()
	switch transport {
	case TransportPeer:
		return 2
	case TransportCustomMsg:
		return 1
	}
	t.Fatalf("holdd reports unknown transport %q", transport)
	return 0
}

// releaseMsg is the final-hop payload of a release_held_htlc as LDK writes
// it.
var releaseMsg = map[uint64][]byte{onionmsg.ReleaseHeldHTLCType: {0x00}}

// TestHoldAndRelease is the core flow: a payment with hold_htlc stays in
// flight at L across time and blocks, the sender receives the release paths
// over the peer custom message, and P's release_held_htlc over one of them
// makes the payment succeed.
func TestHoldAndRelease(t *testing.T) {
	net := Net(t)
	ctx := t.Context()

	deliveries, err := net.S.SubscribeCustomMessages(ctx,
		release.PathDeliveryMsgType)
	require.NoError(t, err)
	defer deliveries.Close()
	before := holddInfo(t, net)

	held := holdPayment(t, net, 20_000)
	h := held.htlc
	require.Equal(t, net.ChanSL, h.Incoming.ChanId)
	require.Equal(t, "held", h.State)
	require.Equal(t, uint64(20_000_000), h.OutgoingAmtMsat)
	require.Equal(t, h.AutoFailHeight-defaultFailbackMargin,
		h.FailbackHeight)
	require.Equal(t, net.ChanLP, h.OutgoingChanId)
	require.Equal(t, net.S.PubKey, h.IncomingPeer)

	// The sender gets the paths over the custom message, and they are the
	// ones the API returns.
	msg, err := deliveries.Next(ctx, DefaultTimeout)
	require.NoError(t, err)
	require.Equal(t, net.L.PubKey, msg.Peer)
	delivery, err := release.DecodePathDelivery(msg.Data)
	require.NoError(t, err)
	require.Equal(t, plugin.CircuitKey{ChanID: h.Incoming.ChanId,
		HtlcID: h.Incoming.HtlcId}, delivery.Key)
	require.Equal(t, held.invoice.RHash, delivery.PaymentHash[:])
	require.Equal(t, h.IncomingAmtMsat, delivery.AmountMsat)
	require.Len(t, delivery.Paths, 2)
	apiPaths := releasePaths(t, net, h)
	require.Equal(t, msg.Data, apiPaths.DeliveryMsg)
	info := holddInfo(t, net)
	require.Equal(t, net.Transport(), info.Transport)
	for i, p := range delivery.Paths {
		raw, err := p.Bytes()
		require.NoError(t, err)
		require.Equal(t, apiPaths.Paths[i], raw)
		require.Equal(t, net.L.PubKey,
			p.IntroNode.SerializeCompressed())
		require.Len(t, p.Hops, releaseHops(t, info.Transport))
	}
	require.Equal(t, info.LndPubkey, net.L.PubKey)

	// Held across time and blocks.
	_, err = net.MineBlocks(ctx, 3)
	require.NoError(t, err)
	require.NoError(t, held.payment.RequireInFlightFor(ctx, 3*time.Second))
	require.Equal(t, "held", waitHeld(t, net, held.invoice.RHash,
		"held").State)
	inv, err := net.P.Lightning.LookupInvoice(ctx,
		&lnrpc.PaymentHash{RHash: held.invoice.RHash})
	require.NoError(t, err)
	require.Equal(t, lnrpc.Invoice_OPEN, inv.State)

	// P releases it over the first path.
	sendOverPath(t, net.P, delivery.Paths[0], releaseMsg)
	final, err := held.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	require.Equal(t, int64(20_000), final.ValueSat)

	rec := waitHeld(t, net, held.invoice.RHash, "resumed")
	require.Equal(t, "onion", rec.ReleaseSource)
	require.NotZero(t, rec.ReleasedAtUnixNs)
	waitReleaseCount(t, net, "matched", before.Releases["matched"]+1)

	inv, err = net.P.Lightning.LookupInvoice(ctx,
		&lnrpc.PaymentHash{RHash: held.invoice.RHash})
	require.NoError(t, err)
	require.Equal(t, lnrpc.Invoice_SETTLED, inv.State)
	require.Equal(t, int64(20_000), inv.AmtPaidSat)

	// A second release over the other path changes nothing.
	sendOverPath(t, net.P, delivery.Paths[1], releaseMsg)
	waitReleaseCount(t, net, "duplicate", before.Releases["duplicate"]+1)
}

// requireFailedByL waits until the payment FAILED and checks that its last
// attempt was failed by L (hop 1) with TEMPORARY_CHANNEL_FAILURE, which is
// how holdd fails an HTLC back.
func requireFailedByL(t *testing.T, p *Payment) {
	t.Helper()
	final, err := p.WaitStatus(t.Context(), DefaultTimeout,
		lnrpc.Payment_FAILED)
	require.NoError(t, err)
	require.NotEmpty(t, final.Htlcs)
	attempt := final.Htlcs[len(final.Htlcs)-1]
	require.Equal(t, lnrpc.HTLCAttempt_FAILED, attempt.Status)
	require.Equal(t, lnrpc.Failure_TEMPORARY_CHANNEL_FAILURE,
		attempt.Failure.Code)
	require.Equal(t, uint32(1), attempt.Failure.FailureSourceIndex)
}

// TestPassThrough checks that a payment without hold_htlc goes straight
// through and leaves no record.
func TestPassThrough(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	before := holddInfo(t, net)

	inv, err := net.P.AddInvoice(ctx, 15_000, t.Name())
	require.NoError(t, err)
	pay, err := net.S.SendPayment(ctx, inv.PaymentRequest, PayOpts{})
	require.NoError(t, err)
	defer pay.Close()
	final, err := pay.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	require.Equal(t, int64(15_000), final.ValueSat)

	after := holddInfo(t, net)
	require.Equal(t, before.Decisions["pass"]+1, after.Decisions["pass"])
	require.Equal(t, before.Decisions["hold"], after.Decisions["hold"])

	client, err := net.HolddClient()
	require.NoError(t, err)
	resp, err := client.ListHeld(ctx, &holdrpc.ListHeldRequest{})
	require.NoError(t, err)
	for _, h := range resp.Htlcs {
		require.NotEqual(t, inv.RHash, h.PaymentHash)
	}
}

// TestForgedReleasesReleaseNothing sends releases with a forged path_id,
// with an altered path and for another HTLC: none releases the held HTLC.
func TestForgedReleasesReleaseNothing(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	before := holddInfo(t, net)

	a := holdPayment(t, net, 11_000)
	b := holdPayment(t, net, 12_000)
	pathsA := releasePaths(t, net, a.htlc)
	pathsB := releasePaths(t, net, b.htlc)
	holddKey, err := btcec.ParsePubKey(before.NodeKey)
	require.NoError(t, err)
	lndKey, err := btcec.ParsePubKey(net.L.PubKey)
	require.NoError(t, err)

	// A path built like holdd's, for A, with a path_id under another
	// secret: its final hop decrypts (at holdd, or at L whose key holdd
	// uses) but the path_id's MAC does not verify.
	var secret [32]byte
	_, err = rand.Read(secret[:])
	require.NoError(t, err)
	forger, err := release.NewAuthenticator(secret[:])
	require.NoError(t, err)
	var hashA [32]byte
	copy(hashA[:], a.invoice.RHash)
	forgedID := forger.Mint(release.Claim{
		Key: plugin.CircuitKey{ChanID: a.htlc.Incoming.ChanId,
			HtlcID: a.htlc.Incoming.HtlcId},
		PaymentHash: hashA,
		ExpiresAt:   time.Now().Add(time.Hour),
	})
	final := onionmsg.Hop{
		NodeID: holddKey,
		Data:   record.NewFinalHopBlindedRouteData(nil, forgedID),
	}
	var hops []onionmsg.Hop
	switch before.Transport {
	case TransportPeer:
		toHoldd := fn.NewLeft[*btcec.PublicKey, lnwire.ShortChannelID](
			holddKey)
		hops = []onionmsg.Hop{{
			NodeID: lndKey,
			Data: record.NewNonFinalBlindedRouteDataOnionMessage(
				toHoldd, nil, nil),
		}, final}

	case TransportCustomMsg:
		// L is introduction and final node.
		final.NodeID = lndKey
		hops = []onionmsg.Hop{final}

	default:
		t.Fatalf("holdd reports unknown transport %q", before.Transport)
	}
	require.Len(t, decodePath(t, pathsA.Paths[0]).Hops, len(hops))
	sessionKey, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	forged, err := onionmsg.BuildBlindedPath(sessionKey, hops, true)
	require.NoError(t, err)
	sendOverPath(t, net.P, forged, releaseMsg)
	waitReleaseCount(t, net, release.OutcomeForged,
		before.Releases[release.OutcomeForged]+1)

	// A's real path with one byte of holdd's encrypted data flipped: the
	// final hop no longer decrypts.
	altered := decodePath(t, pathsA.Paths[0])
	last := altered.Hops[len(altered.Hops)-1]
	last.CipherText = append([]byte(nil), last.CipherText...)
	last.CipherText[len(last.CipherText)/2] ^= 0x01
	sendOverPath(t, net.P, altered, releaseMsg)
	waitReleaseCount(t, net, release.OutcomeUndecodable,
		before.Releases[release.OutcomeUndecodable]+1)

	// A's real path with held_htlc_available instead of a release.
	sendOverPath(t, net.P, decodePath(t, pathsA.Paths[1]),
		map[uint64][]byte{onionmsg.HeldHTLCAvailableType: {0x00}})
	waitReleaseCount(t, net, release.OutcomeNoRelease,
		before.Releases[release.OutcomeNoRelease]+1)

	// Nothing was released.
	require.NoError(t, a.payment.RequireInFlightFor(ctx, time.Second))
	require.Equal(t, "held", waitHeld(t, net, a.invoice.RHash, "held").State)
	require.Equal(t, before.Releases["matched"],
		holddInfo(t, net).Releases["matched"])

	// B's release releases B, and only B.
	sendOverPath(t, net.P, decodePath(t, pathsB.Paths[0]), releaseMsg)
	_, err = b.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	require.NoError(t, a.payment.RequireInFlightFor(ctx, time.Second))
	require.Equal(t, "held", waitHeld(t, net, a.invoice.RHash, "held").State)

	// Leave the network clean: release A the real way.
	sendOverPath(t, net.P, decodePath(t, pathsA.Paths[1]), releaseMsg)
	_, err = a.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	waitReleaseCount(t, net, "matched", before.Releases["matched"]+2)
}

// TestFailBackBeforeAutoFail mines blocks under a held HTLC that is never
// released: holdd fails it back at auto_fail_height - margin, the sender
// sees TEMPORARY_CHANNEL_FAILURE from L, and no channel closes.
func TestFailBackBeforeAutoFail(t *testing.T) {
	net := Net(t)
	ctx := t.Context()

	held := holdPayment(t, net, 13_000)
	h := held.htlc
	require.Less(t, h.FailbackHeight, h.AutoFailHeight)

	height, err := net.BlockHeight()
	require.NoError(t, err)
	toJustBefore := h.FailbackHeight - 1 - height
	require.Positive(t, toJustBefore)
	height, err = net.MineBlocks(ctx, uint32(toJustBefore))
	require.NoError(t, err)
	require.Equal(t, h.FailbackHeight-1, height)
	require.NoError(t, held.payment.RequireInFlightFor(ctx, time.Second))
	require.Equal(t, "held", waitHeld(t, net, held.invoice.RHash,
		"held").State)

	height, err = net.MineBlocks(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, h.FailbackHeight, height)
	requireFailedByL(t, held.payment)

	rec := waitHeld(t, net, held.invoice.RHash, "failed")
	require.Equal(t, "expiry", rec.FailReason)
	require.Less(t, height, h.AutoFailHeight)

	// Nothing went on chain: both of L's channels are still open.
	requireChannelsIdle(t, net, net.ChanSL, net.ChanLP)
}
