package main

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/plugin"
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

// startTransport starts the release intake on the chosen transport and
// returns its stop function. state is kept as "<transport>:<state>".
func startTransport(transport string, lnd *rpcclient.Client,
	nodeKey *btcec.PrivateKey, auth *release.Authenticator,
	engine *plugin.Engine, clk clock.Clock, logs *loggers,
	cfg *config, state *atomic.Value,
	intakeRef *atomic.Pointer[release.Intake]) (func(), error) {

	var ecdh sphinx.SingleKeyECDH = &keychain.PrivKeyECDH{PrivKey: nodeKey}
	if transport == transportCustomMsg {
		// Release paths end at lnd, so the final hop is peeled with
		// lnd's node key, which never leaves lnd.
		ecdh = custommsg.NewNodeKeyECDH(lnd.Signer, lnd.IdentityKey,
			ecdhTimeout)
	}
	intake := release.NewIntake(onionmsg.NewPeeler(ecdh), auth, engine,
		clk, logs.sub("RLSE"))
	intakeRef.Store(intake)

	switch transport {
	case transportPeer:
		link, err := peerlink.New(peerlink.Config{
			NodeKey:    nodeKey,
			PeerPubKey: lnd.IdentityKey,
			PeerAddr:   cfg.Lnd.P2PAddr,
			OnMessage:  intake.HandleOnionMessage,
			Clock:      clk,
			Logger:     logs.sub("PLNK"),
			OnStateChange: func(s peerlink.State) {
				state.Store(s.String())
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
			Logger:    logs.sub("CMSG"),
			OnStateChange: func(up bool) {
				if up {
					state.Store("connected")
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
