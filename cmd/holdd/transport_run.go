package main

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/custommsg"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/peerlink"
	"github.com/holdd/holdd/rpcclient"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/keychain"
)

// ecdhTimeout bounds one DeriveSharedKey call in custom-message mode.
const ecdhTimeout = 10 * time.Second

// newPeeler returns the peeler for the transport's final hop: holdd's own
// key on the peer link; lnd's key, which never leaves lnd, on the
// custom-message API.
func newPeeler(transport string, lnd *rpcclient.Client,
	nodeKey *btcec.PrivateKey) *onionmsg.Peeler {

	var ecdh sphinx.SingleKeyECDH = &keychain.PrivKeyECDH{PrivKey: nodeKey}
	if transport == transportCustomMsg {
		ecdh = custommsg.NewNodeKeyECDH(lnd.Signer, lnd.IdentityKey,
			ecdhTimeout)
	}
	return onionmsg.NewPeeler(ecdh)
}

// startTransport brings onion messages from lnd to the intake and returns
// its stop function. state is kept as the transport's state name.
func startTransport(transport string, lnd *rpcclient.Client,
	nodeKey *btcec.PrivateKey, intake *release.Intake, clk clock.Clock,
	logs *loggers, cfg *config, state *atomic.Value,
	onUp func()) (func(), error) {

	switch transport {
	case transportPeer:
		link, err := peerlink.New(peerlink.Config{
			NodeKey:    nodeKey,
			PeerPubKey: lnd.IdentityKey,
			PeerAddr:   cfg.Lnd.P2PAddr,
			OnMessage:  intake.HandleOnionMessage,
			Clock:      clk,
			Logger:     logs.sub(subPLNK),
			OnStateChange: func(s peerlink.State) {
				state.Store(s.String())
				if s == peerlink.StateConnected {
					onUp()
				}
			},
		})
		if err != nil {
			return nil, err
		}
		if err := link.Start(); err != nil {
			return nil, err
		}
		return func() { _ = link.Stop() }, nil

	case transportCustomMsg:
		tr, err := custommsg.New(custommsg.Config{
			Client:    lnd.Lightning,
			OnMessage: intake.HandleOnionMessage,
			Clock:     clk,
			Logger:    logs.sub(subCMSG),
			OnStateChange: func(up bool) {
				if up {
					state.Store("connected")
					onUp()
				} else {
					state.Store("disconnected")
				}
			},
		})
		if err != nil {
			return nil, err
		}
		if err := tr.Start(); err != nil {
			return nil, err
		}
		return func() { _ = tr.Stop() }, nil
	}
	return nil, fmt.Errorf("unknown transport %q", transport)
}
