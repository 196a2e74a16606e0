//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/holdd/holdd/release/peerlink"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/stretchr/testify/require"
)

// restrictedSlots is how many channel-less inbound peers L admits in
// TestPeerLinkRestrictedSlots.
const restrictedSlots = 3

// findPeer returns L's view of the peer with key hexKey, nil if it is not
// connected.
func findPeer(ctx context.Context, node *LndNode,
	hexKey string) (*lnrpc.Peer, error) {

	resp, err := node.Lightning.ListPeers(ctx, &lnrpc.ListPeersRequest{})
	if err != nil {
		return nil, err
	}
	for _, p := range resp.Peers {
		if p.PubKey == hexKey {
			return p, nil
		}
	}
	return nil, nil
}

// fillRestrictedSlots connects channel-less peers to L until L refuses
// one, and returns how many it admitted.
func fillRestrictedSlots(t *testing.T, net *Network) int {
	t.Helper()
	for admitted := 0; admitted <= restrictedSlots; admitted++ {
		link := testPeer(t, net)
		var stats peerlink.Stats
		err := waitFor(t.Context(), DefaultTimeout, "a channel-less "+
			"peer connected to L or refused by it",
			func(context.Context) (bool, error) {
				stats = link.Stats()
				return stats.Connects > 0 ||
					stats.FailedAttempts >= 2, nil
			})
		require.NoError(t, err)
		if stats.Connects == 0 {
			return admitted
		}
	}
	t.Fatalf("L admitted more than %d channel-less peers",
		restrictedSlots)
	return 0
}

// TestPeerLinkRestrictedSlots: whoever holds all of lnd's restricted slots
// (channel-less inbound peers) cannot cut holdd off. L runs with 3 slots,
// the test fills them, then L drops holdd's link (DisconnectPeer, which
// also makes lnd forget to redial it); holdd has lnd dial it again, the
// link is an outbound peer of L, and a release over it resumes a held
// HTLC. A holdd that dials L (peerlink.listen=) frees its own slot when
// dropped and races the attacker for it: it fails here either way.
func TestPeerLinkRestrictedSlots(t *testing.T) {
	net := Net(t)
	if net.Transport() != TransportPeer {
		t.Skipf("L runs lnd %s: no peer link (transport %s)",
			net.LSPVersion, net.Transport())
	}
	ctx := t.Context()
	keepRunning(t, net, net.S, net.L, net.P)

	slotsFlag := fmt.Sprintf("--num-restricted-slots=%d", restrictedSlots)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			3*DefaultTimeout)
		defer cancel()
		if err := net.L.RestartWithFlags(ctx,
			[]string{slotsFlag}); err != nil {

			t.Errorf("cleanup: restart L: %v", err)
			return
		}
		if err := net.WaitChannelsActive(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := net.WaitHolddReady(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	require.NoError(t, net.L.RestartWithFlags(ctx, nil, slotsFlag))
	require.NoError(t, net.WaitChannelsActive(ctx))
	require.NoError(t, net.WaitHolddReady(ctx))

	holddKey := hex.EncodeToString(holddInfo(t, net).NodeKey)
	admitted := fillRestrictedSlots(t, net)
	require.LessOrEqual(t, admitted, restrictedSlots)

	hLog := markLog(t, holddLogPath(net))
	_, err := net.L.Lightning.DisconnectPeer(ctx,
		&lnrpc.DisconnectPeerRequest{PubKey: holddKey})
	require.NoError(t, err)
	dropped := time.Now()
	hLog.waitCount(t, 1, "Peer link to lnd lost")

	// The attacker tries for a slot at once: holdd's link freed none (a
	// holdd that dialled L would have freed its own, and raced for it).
	require.Zero(t, fillRestrictedSlots(t, net))

	// holdd asked L to dial it again, and L did, with every restricted
	// slot taken.
	hLog.waitCount(t, 1, "Peer link to lnd up")
	t.Logf("peer link up again %v after DisconnectPeer",
		time.Since(dropped).Round(100*time.Millisecond))
	require.NoError(t, net.WaitHolddReady(ctx))
	var peer *lnrpc.Peer
	err = waitFor(ctx, DefaultTimeout, "holdd listed as L's peer",
		func(ctx context.Context) (bool, error) {
			peer, err = findPeer(ctx, net.L, holddKey)
			return peer != nil, err
		})
	require.NoError(t, err)
	require.False(t, peer.Inbound, "L should have dialled holdd")

	// Still full: one more channel-less peer is refused.
	require.Zero(t, fillRestrictedSlots(t, net))

	h := holdOne(t, net, 23_000, 0)
	paths := pathsOf(t, net, h.htlc)
	sendOverPath(t, net.P, paths[0], releaseMsg)
	requireResumed(t, net, h, "onion")

	// The cleanup restarts L: let the payment's last commitment
	// updates finish first.
	require.NoError(t, net.WaitClean(ctx))
}
