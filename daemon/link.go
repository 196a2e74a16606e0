package daemon

import (
	"context"
	"encoding/hex"
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
	"github.com/lightningnetwork/lnd/lnrpc"
)

// ecdhTimeout bounds one DeriveSharedKey call in custom-message mode.
const ecdhTimeout = 10 * time.Second

// dialRequestTimeout bounds one ConnectPeer call. With perm set lnd
// answers at once and dials in the background.
const dialRequestTimeout = 15 * time.Second

// connectPeerRequest asks lnd to dial holdd's peer link at addr and to
// keep redialling it: a peer lnd dialled itself takes none of its
// restricted slots.
func connectPeerRequest(lnd *rpcclient.Client,
	nodeKey *btcec.PublicKey) peerlink.DialRequestFunc {

	pubKey := hex.EncodeToString(nodeKey.SerializeCompressed())

	return func(ctx context.Context, addr string) error {
		ctx, cancel := context.WithTimeout(ctx, dialRequestTimeout)
		defer cancel()

		_, err := lnd.Lightning.ConnectPeer(ctx,
			&lnrpc.ConnectPeerRequest{
				Addr: &lnrpc.LightningAddress{
					Pubkey: pubKey,
					Host:   addr,
				},
				Perm: true,
			})

		return err
	}
}

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

// linkStatus is the release transport's connection state. The transport
// writes it; GetInfo, the metrics and the mailbox registrar read it. It
// exists before the transport starts, so readers never wait for one.
type linkStatus struct {
	state atomic.Int32
}

func (l *linkStatus) set(s peerlink.State) { l.state.Store(int32(s)) }

// State returns the transport's state; the custom-message stream is
// either connected or disconnected.
func (l *linkStatus) State() peerlink.State {
	return peerlink.State(l.state.Load())
}

// Connected reports whether onion messages can reach holdd now.
func (l *linkStatus) Connected() bool {
	return l.State() == peerlink.StateConnected
}

// releaseTransport brings onion messages from lnd to the intake: the peer
// link or lnd's custom-message stream.
type releaseTransport struct {
	name  string
	start func() error
	stop  func() error
}

func (t *releaseTransport) Name() string { return t.name }

func (t *releaseTransport) Start(context.Context, func(error)) error {
	return t.start()
}

func (t *releaseTransport) Stop() error { return t.stop() }

// newTransport builds the transport that hands onion messages to the
// intake, keeping state up to date and calling onUp each time it connects.
func newTransport(transport string, lnd *rpcclient.Client,
	nodeKey *btcec.PrivateKey, intake *release.Intake, clk clock.Clock,
	logs *loggers, cfg *Config, state *linkStatus,
	onUp func()) (*releaseTransport, error) {

	switch transport {
	case transportPeer:
		var requestDial peerlink.DialRequestFunc
		if cfg.PeerLink.Listen != "" {
			ctx, cancel := context.WithTimeout(
				context.Background(), dialRequestTimeout,
			)
			err := lnd.CheckConnectPeer(ctx)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("peer link: lnd must dial "+
					"holdd (peerlink.listen=%s): %w; or set "+
					"peerlink.listen= to have holdd dial lnd",
					cfg.PeerLink.Listen, err)
			}
			requestDial = connectPeerRequest(lnd, nodeKey.PubKey())
		}
		link, err := peerlink.New(peerlink.Config{
			NodeKey:       nodeKey,
			PeerPubKey:    lnd.IdentityKey,
			PeerAddr:      cfg.Lnd.P2PAddr,
			Listen:        cfg.PeerLink.Listen,
			AdvertiseAddr: cfg.PeerLink.ExternalAddr,
			RequestDial:   requestDial,
			OnMessage:     intake.HandleOnionMessage,
			Clock:         clk,
			Logger:        logs.sub(subPLNK),
			OnStateChange: func(s peerlink.State) {
				state.set(s)
				if s == peerlink.StateConnected {
					onUp()
				}
			},
		})
		if err != nil {
			return nil, err
		}
		return &releaseTransport{
			name: "peer link", start: link.Start, stop: link.Stop,
		}, nil

	case transportCustomMsg:
		tr, err := custommsg.New(custommsg.Config{
			Client:    lnd.Lightning,
			OnMessage: intake.HandleOnionMessage,
			OnDrop:    intake.CountDrop,
			Clock:     clk,
			Logger:    logs.sub(subCMSG),
			OnStateChange: func(up bool) {
				if !up {
					state.set(peerlink.StateDisconnected)
					return
				}
				state.set(peerlink.StateConnected)
				onUp()
			},
		})
		if err != nil {
			return nil, err
		}
		return &releaseTransport{
			name: "custom-message transport", start: tr.Start,
			stop: tr.Stop,
		}, nil
	}
	return nil, fmt.Errorf("unknown transport %q", transport)
}
