//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/rpcclient"
)

// lspFeatureBit is the experimental hold_htlc feature bit L advertises.
const lspFeatureBit = 153

// TestSmoke checks the network TestMain built: chain, channels, L's
// feature bit in every place a sender can see it, and (with holdd) that a
// plain payment passes through L.
func TestSmoke(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	t.Logf("network setup took %v", net.SetupDuration)

	t.Run("chain", func(t *testing.T) {
		height, err := net.BlockHeight()
		require.NoError(t, err)
		require.GreaterOrEqual(t, height,
			int32(SegwitHeight+announceConfs))

		// Each node runs the release the harness meant:
		// HOLDD_ITEST_LSP_LND changes L alone, and
		// HOLDD_ITEST_RECIPIENT_LND P alone.
		wantL, wantP := net.LndVersion, net.LndVersion
		if tag := os.Getenv("HOLDD_ITEST_LSP_LND"); tag != "" {
			v, err := parseLndVersion(tag)
			require.NoError(t, err)
			wantL = v
		}
		if tag := os.Getenv("HOLDD_ITEST_RECIPIENT_LND"); tag != "" {
			v, err := parseLndVersion(tag)
			require.NoError(t, err)
			wantP = v
		}
		for _, node := range net.Nodes() {
			info, err := node.Lightning.GetInfo(ctx,
				&lnrpc.GetInfoRequest{})
			require.NoError(t, err)
			require.Equal(t, uint32(height), info.BlockHeight,
				node.Name)
			require.True(t, info.SyncedToChain, node.Name)
			require.Equal(t, "regtest", info.Chains[0].Network)

			want := net.LndVersion
			switch node {
			case net.L:
				want = wantL
			case net.P:
				want = wantP
			}
			got, err := rpcclient.ParseVersion(info.Version)
			require.NoError(t, err, node.Name)
			require.Equal(t, want, got, node.Name)
		}
	})

	t.Run("channels", func(t *testing.T) {
		// The funding transactions were mined in the first block
		// after the funding height.
		for _, scid := range []uint64{net.ChanSL, net.ChanLP} {
			require.Equal(t, uint32(SegwitHeight+1),
				lnwire.NewShortChanIDFromInt(scid).BlockHeight)
		}

		cases := []struct {
			node      *LndNode
			scid      uint64
			remote    *LndNode
			initiator bool
		}{
			{net.S, net.ChanSL, net.L, true},
			{net.L, net.ChanSL, net.S, false},
			{net.L, net.ChanLP, net.P, true},
			{net.P, net.ChanLP, net.L, false},
		}
		for _, c := range cases {
			name := fmt.Sprintf("%s:%d", c.node.Name, c.scid)
			ch, err := c.node.ChannelByID(ctx, c.scid)
			require.NoError(t, err, name)
			require.True(t, ch.Active, name)
			// S is L's wallet client: its channel is private.
			require.Equal(t, c.scid == net.ChanSL, ch.Private, name)
			require.Equal(t, c.remote.PubKeyHex, ch.RemotePubkey,
				name)
			require.Equal(t, int64(ChannelCapacity), ch.Capacity,
				name)
			require.Equal(t, c.initiator, ch.Initiator, name)
			require.Empty(t, ch.PendingHtlcs, name)
		}
	})

	t.Run("route S to P", func(t *testing.T) {
		resp, err := net.S.Lightning.QueryRoutes(ctx,
			&lnrpc.QueryRoutesRequest{
				PubKey: net.P.PubKeyHex,
				Amt:    10_000,
			})
		require.NoError(t, err)
		require.NotEmpty(t, resp.Routes)
		hops := resp.Routes[0].Hops
		require.Len(t, hops, 2)
		require.Equal(t, net.L.PubKeyHex, hops[0].PubKey)
		require.Equal(t, net.ChanSL, hops[0].ChanId)
		require.Equal(t, net.P.PubKeyHex, hops[1].PubKey)
		require.Equal(t, net.ChanLP, hops[1].ChanId)
	})

	t.Run("feature 153", func(t *testing.T) {
		// lnd names bits it does not know "unknown"; 153 is odd, so
		// optional.
		want := &lnrpc.Feature{Name: "unknown"}
		requireFeature := func(t *testing.T,
			features map[uint32]*lnrpc.Feature, where string) {

			got, ok := features[lspFeatureBit]
			require.True(t, ok, "bit %d missing in %s",
				lspFeatureBit, where)
			require.Equal(t, want.Name, got.Name, where)
			require.Equal(t, want.IsRequired, got.IsRequired, where)
			require.Equal(t, want.IsKnown, got.IsKnown, where)
		}

		// L's own view.
		info, err := net.L.Lightning.GetInfo(ctx,
			&lnrpc.GetInfoRequest{})
		require.NoError(t, err)
		requireFeature(t, info.Features, "L GetInfo")

		// Only L advertises it.
		for _, node := range []*LndNode{net.S, net.P} {
			info, err := node.Lightning.GetInfo(ctx,
				&lnrpc.GetInfoRequest{})
			require.NoError(t, err)
			require.NotContains(t, info.Features,
				uint32(lspFeatureBit), node.Name)
		}

		// L's init message, as its peers received it: what an LDK
		// sender checks before setting hold_htlc.
		for _, node := range []*LndNode{net.S, net.P} {
			peer, err := node.Peer(ctx, net.L.PubKeyHex)
			require.NoError(t, err)
			requireFeature(t, peer.Features,
				node.Name+"'s init from L")
		}
		peer, err := net.L.Peer(ctx, net.S.PubKeyHex)
		require.NoError(t, err)
		require.NotContains(t, peer.Features, uint32(lspFeatureBit))

		// L's node_announcement, once gossiped to S.
		var features map[uint32]*lnrpc.Feature
		err = waitFor(ctx, DefaultTimeout,
			"S to have L's node announcement",
			func(ctx context.Context) (bool, error) {
				resp, err := net.S.Lightning.GetNodeInfo(ctx,
					&lnrpc.NodeInfoRequest{
						PubKey: net.L.PubKeyHex,
					})
				if err != nil {
					return false, err
				}
				features = resp.Node.Features
				return len(features) > 0, nil
			})
		require.NoError(t, err)
		requireFeature(t, features, "S's node_announcement of L")
	})

	t.Run("holdd ready", func(t *testing.T) {
		client, err := net.HolddClient()
		if err != nil {
			t.Skipf("holdd not running: %v", err)
		}
		info, err := client.GetInfo(ctx, &holdrpc.GetInfoRequest{})
		require.NoError(t, err)
		require.Equal(t, net.L.PubKey, info.LndPubkey)
		require.Equal(t, "regtest", info.Network)
		require.True(t, info.InterceptorConnected)
		require.Equal(t, "connected", info.PeerLinkState)
		require.Zero(t, info.HeldCount)
		require.Len(t, info.NodeKey, 33)

		// holdd picks the transport by L's version: its own peer
		// link from lnd 0.21, lnd's custom-message API before.
		want := net.Transport()
		require.Equal(t, want, info.Transport)

		// The peer link, as L sees it: only the peer transport
		// connects to L's p2p port.
		ok, err := net.L.HasPeer(ctx, hex.EncodeToString(info.NodeKey))
		require.NoError(t, err)
		require.Equal(t, want == TransportPeer, ok,
			"holdd's node key as L's peer")
	})

	t.Run("plain payment through L", func(t *testing.T) {
		const amt = 20_000
		inv, err := net.P.AddInvoice(ctx, amt, "smoke")
		require.NoError(t, err)

		pay, err := net.S.SendPayment(ctx, inv.PaymentRequest,
			PayOpts{})
		require.NoError(t, err)
		defer pay.Close()
		final, err := pay.WaitFinal(ctx, DefaultTimeout)
		require.NoError(t, err)

		invoice, err := net.P.Lightning.LookupInvoice(ctx,
			&lnrpc.PaymentHash{RHash: inv.RHash})
		require.NoError(t, err)

		if !net.HolddRunning() {
			// L requires an interceptor: with none attached it
			// fails every forward.
			require.Equal(t, lnrpc.Payment_FAILED, final.Status)
			require.Equal(t, lnrpc.Invoice_OPEN, invoice.State)
			return
		}

		require.Equal(t, lnrpc.Payment_SUCCEEDED, final.Status,
			final.FailureReason.String())
		require.Equal(t, lnrpc.Invoice_SETTLED, invoice.State)
		require.Equal(t, int64(amt*1000), invoice.AmtPaidMsat)
		require.Equal(t, inv.RHash, pay.Hash)
	})
}
