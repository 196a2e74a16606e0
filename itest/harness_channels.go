//go:build itest

package itest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/lnrpc"
)

// ErrPendingHTLCs is returned when a channel still carries HTLCs although a
// test is over.
var ErrPendingHTLCs = errors.New("pending HTLCs left on channels")

// ErrPaymentsInFlight is returned when a node still has payments in flight
// although a test is over.
var ErrPaymentsInFlight = errors.New("payments left in flight")

// ConnectPeer connects n to other's p2p address and waits until each lists
// the other as a peer.
func (n *LndNode) ConnectPeer(ctx context.Context, other *LndNode) error {
	_, err := n.Lightning.ConnectPeer(ctx, &lnrpc.ConnectPeerRequest{
		Addr: &lnrpc.LightningAddress{
			Pubkey: other.PubKeyHex,
			Host:   other.P2PAddr,
		},
		Timeout: 30,
	})
	if err != nil && !strings.Contains(err.Error(), "already connected") {
		return fmt.Errorf("lnd %s: connect to %s: %w", n.Name,
			other.Name, err)
	}

	for _, pair := range [][2]*LndNode{{n, other}, {other, n}} {
		a, b := pair[0], pair[1]
		err := waitFor(ctx, DefaultTimeout,
			fmt.Sprintf("lnd %s to list %s as peer", a.Name, b.Name),
			func(ctx context.Context) (bool, error) {
				ok, err := a.HasPeer(ctx, b.PubKeyHex)
				return ok, err
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// HasPeer reports whether pubKeyHex is a connected peer of n.
func (n *LndNode) HasPeer(ctx context.Context, pubKeyHex string) (bool,
	error) {

	peers, err := n.Lightning.ListPeers(ctx, &lnrpc.ListPeersRequest{})
	if err != nil {
		return false, err
	}
	for _, p := range peers.Peers {
		if p.PubKey == pubKeyHex {
			return true, nil
		}
	}
	return false, nil
}

// Peer returns n's view of the connected peer pubKeyHex (its init features
// among others).
func (n *LndNode) Peer(ctx context.Context, pubKeyHex string) (*lnrpc.Peer,
	error) {

	peers, err := n.Lightning.ListPeers(ctx, &lnrpc.ListPeersRequest{})
	if err != nil {
		return nil, err
	}
	for _, p := range peers.Peers {
		if p.PubKey == pubKeyHex {
			return p, nil
		}
	}
	return nil, fmt.Errorf("lnd %s: %s is not a peer", n.Name, pubKeyHex)
}

// OpenChannel opens a public channel of capacity sat from n to other and
// returns once the funding transaction is broadcast.
func (n *LndNode) OpenChannel(ctx context.Context, other *LndNode,
	capacity int64) (*lnrpc.ChannelPoint, error) {

	return n.openChannel(ctx, other, capacity, false)
}

// OpenPrivateChannel opens a private (unannounced) channel, as a wallet
// client of an LSP has.
func (n *LndNode) OpenPrivateChannel(ctx context.Context, other *LndNode,
	capacity int64) (*lnrpc.ChannelPoint, error) {

	return n.openChannel(ctx, other, capacity, true)
}

func (n *LndNode) openChannel(ctx context.Context, other *LndNode,
	capacity int64, private bool) (*lnrpc.ChannelPoint, error) {

	cp, err := n.Lightning.OpenChannelSync(ctx, &lnrpc.OpenChannelRequest{
		NodePubkey:         other.PubKey,
		LocalFundingAmount: capacity,
		Private:            private,
	})
	if err != nil {
		return nil, fmt.Errorf("lnd %s: open channel to %s: %w", n.Name,
			other.Name, err)
	}
	return cp, nil
}

// channelPointString formats a channel point the way ListChannels does.
func channelPointString(cp *lnrpc.ChannelPoint) (string, error) {
	if s := cp.GetFundingTxidStr(); s != "" {
		return fmt.Sprintf("%s:%d", s, cp.OutputIndex), nil
	}
	txid, err := chainhash.NewHash(cp.GetFundingTxidBytes())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%v:%d", txid, cp.OutputIndex), nil
}

// WaitChannelActive waits until n lists the channel at cp as active and
// returns it.
func (n *LndNode) WaitChannelActive(ctx context.Context,
	cp *lnrpc.ChannelPoint) (*lnrpc.Channel, error) {

	point, err := channelPointString(cp)
	if err != nil {
		return nil, err
	}

	var found *lnrpc.Channel
	err = waitFor(ctx, DefaultTimeout,
		fmt.Sprintf("lnd %s: channel %s active", n.Name, point),
		func(ctx context.Context) (bool, error) {
			ch, err := n.Channel(ctx, point)
			if err != nil {
				return false, err
			}
			if !ch.Active {
				return false, fmt.Errorf("channel inactive")
			}
			found = ch
			return true, nil
		})
	return found, err
}

// Channel returns n's open channel with channel point point ("txid:idx").
func (n *LndNode) Channel(ctx context.Context, point string) (*lnrpc.Channel,
	error) {

	resp, err := n.Lightning.ListChannels(ctx, &lnrpc.ListChannelsRequest{})
	if err != nil {
		return nil, err
	}
	for _, ch := range resp.Channels {
		if ch.ChannelPoint == point {
			return ch, nil
		}
	}
	return nil, fmt.Errorf("lnd %s: no open channel %s", n.Name, point)
}

// ChannelByID returns n's open channel with short channel id scid.
func (n *LndNode) ChannelByID(ctx context.Context, scid uint64) (
	*lnrpc.Channel, error) {

	resp, err := n.Lightning.ListChannels(ctx, &lnrpc.ListChannelsRequest{})
	if err != nil {
		return nil, err
	}
	for _, ch := range resp.Channels {
		if ch.ChanId == scid {
			return ch, nil
		}
	}
	return nil, fmt.Errorf("lnd %s: no open channel %d", n.Name, scid)
}

// checkClean returns ErrPendingHTLCs if any of n's channels carries an
// HTLC, and ErrPaymentsInFlight if any of its recent payments is not final.
func (n *LndNode) checkClean(ctx context.Context) error {
	chans, err := n.Lightning.ListChannels(ctx,
		&lnrpc.ListChannelsRequest{})
	if err != nil {
		return err
	}
	for _, ch := range chans.Channels {
		if len(ch.PendingHtlcs) > 0 {
			return fmt.Errorf("%w: lnd %s channel %d has %d",
				ErrPendingHTLCs, n.Name, ch.ChanId,
				len(ch.PendingHtlcs))
		}
	}

	// Payments left in flight are the newest ones, so the last page is
	// enough.
	pays, err := n.Lightning.ListPayments(ctx, &lnrpc.ListPaymentsRequest{
		IncludeIncomplete: true,
		Reversed:          true,
		MaxPayments:       100,
	})
	if err != nil {
		return err
	}
	for _, p := range pays.Payments {
		switch p.Status {
		case lnrpc.Payment_SUCCEEDED, lnrpc.Payment_FAILED:
		default:
			return fmt.Errorf("%w: lnd %s payment %s is %v",
				ErrPaymentsInFlight, n.Name, p.PaymentHash,
				p.Status)
		}
	}
	return nil
}

// WaitClean waits until no channel of S, L or P carries an HTLC, no node
// has a payment in flight and holdd (if running) holds nothing: the state
// every test must leave behind.
func (n *Network) WaitClean(ctx context.Context) error {
	err := waitFor(ctx, DefaultTimeout, "holdd to hold no HTLC",
		func(ctx context.Context) (bool, error) {
			err := n.checkHolddClean(ctx)
			return err == nil, err
		})
	if err != nil {
		return err
	}

	return n.forEachNode(func(node *LndNode) error {
		return waitFor(ctx, DefaultTimeout,
			"lnd "+node.Name+" without pending HTLCs or in-flight "+
				"payments",
			func(ctx context.Context) (bool, error) {
				err := node.checkClean(ctx)
				return err == nil, err
			})
	})
}

// WaitChannelsActive waits until S, L and P all see S->L and L->P active,
// e.g. after a node restarted.
func (n *Network) WaitChannelsActive(ctx context.Context) error {
	views := []struct {
		node *LndNode
		scid uint64
	}{
		{n.S, n.ChanSL}, {n.L, n.ChanSL}, {n.L, n.ChanLP}, {n.P, n.ChanLP},
	}
	for _, v := range views {
		err := waitFor(ctx, DefaultTimeout,
			fmt.Sprintf("lnd %s: channel %d active", v.node.Name,
				v.scid),
			func(ctx context.Context) (bool, error) {
				ch, err := v.node.ChannelByID(ctx, v.scid)
				if err != nil {
					return false, err
				}
				return ch.Active, nil
			})
		if err != nil {
			return err
		}
	}
	return nil
}
