package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/asyncoffer"
	"github.com/holdd/holdd/invoiceserver"
	"github.com/holdd/holdd/recipient"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
)

// maxOfferSlots bounds recipient.offerslots: each slot is an offer the
// server keeps an invoice for, and servers allow a handful.
const maxOfferSlots = 16

// serverPaths decodes recipient.server.
func (r *recipientConfig) serverPaths() ([]*onionmsg.BlindedPath, error) {
	var out []*onionmsg.BlindedPath
	for _, h := range r.Server {
		raw, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("%w: recipient.server: %v",
				errConfig, err)
		}
		rd := bytes.NewReader(raw)
		p, err := onionmsg.DecodeBlindedPath(rd)
		if err != nil || rd.Len() != 0 {
			return nil, fmt.Errorf("%w: recipient.server is not "+
				"one blinded path: %v", errConfig, err)
		}
		if p.IntroNode == nil {
			return nil, fmt.Errorf("%w: recipient.server's "+
				"introduction node must be a node id (it is "+
				"the LSP of the payment paths)", errConfig)
		}
		out = append(out, p)
	}
	return out, nil
}

// newAsyncOfferClient builds the async offer client of the recipient
// role: nil without recipient.server. Reply paths run [lnd -> holdd] as
// the invoice server's do (finalHop nil: they end at lnd).
func newAsyncOfferClient(cfg *Config, lnd *rpcclient.Client, db *store.Store,
	secret []byte, finalHop *btcec.PublicKey, sender *onionsend.Sender,
	responder *recipient.Responder, clk clock.Clock,
	logs *loggers) (*asyncoffer.Client, error) {

	paths, err := cfg.Recipient.serverPaths()
	if err != nil || len(paths) == 0 {
		return nil, err
	}
	auth, err := asyncoffer.NewPathAuth(secret)
	if err != nil {
		return nil, err
	}
	minter, err := invoiceserver.NewHopMinter(lnd.IdentityKey, finalHop)
	if err != nil {
		return nil, err
	}
	chain, err := networkChain(cfg.Network)
	if err != nil {
		return nil, err
	}
	var amount *uint64
	if cfg.Recipient.OfferAmount > 0 {
		a := cfg.Recipient.OfferAmount
		amount = &a
	}
	return asyncoffer.New(asyncoffer.Config{
		ServerPaths: paths,
		Slots:       cfg.Recipient.OfferSlots,
		AmountMsat:  amount,
		Self:        lnd.IdentityKey,
		Chain:       chain,
		Auth:        auth,
		Store:       db,
		Sender:      offerSender{sender},
		Minter:      minter,
		// Entering at the mailbox where one is configured.
		ForwardMinter: responder,
		ReceivePaths:  receivePaths{r: responder, clk: clk},
		Graph: lndGraph{
			ln: lnd.Lightning, self: lnd.IdentityKey,
		},
		Clock:  clk,
		Logger: logs.sub(subRCPT),
	})
}

// offerSender sends the client's messages through lnd.
type offerSender struct {
	s *onionsend.Sender
}

func (o offerSender) SendMessage(ctx context.Context, path,
	replyPath *onionmsg.BlindedPath, tlvs map[uint64][]byte) error {

	_, err := o.s.Send(ctx, path, replyPath, tlvs)
	return err
}

// receivePaths hands the static invoice this node's receive paths that
// outlive it, minting one when none does.
type receivePaths struct {
	r   *recipient.Responder
	clk clock.Clock
}

// receivePathMargin is how much longer than the invoice a freshly minted
// receive path lives.
const receivePathMargin = 24 * time.Hour

func (p receivePaths) MessagePaths(ctx context.Context,
	until time.Time) ([]*onionmsg.BlindedPath, error) {

	stored, err := p.r.ListPaths(ctx, false)
	if err != nil {
		return nil, err
	}
	// Only paths that reach this node the way it is configured now: with
	// a mailbox, through that mailbox (a held_htlc_available must reach
	// an offline recipient); without one, straight to this node.
	mb, wantMB := p.r.MailboxState()
	if wantMB && mb == nil {
		return nil, recipient.ErrMailboxPending
	}
	var via []byte
	if mb != nil {
		via = mb.LSPKey.SerializeCompressed()
	}
	var usable []recipient.ReceivePath
	for _, rp := range stored {
		if !rp.ExpiresAt.Before(until) &&
			bytes.Equal(rp.MailboxLSP, via) {

			usable = append(usable, rp)
		}
	}
	if len(usable) == 0 {
		ttl := until.Sub(p.clk.Now()) + receivePathMargin
		usable, err = p.r.AddPaths(ctx, 1, ttl)
		if err != nil {
			return nil, err
		}
	}
	// A static invoice carries a few: more add size, not reach.
	if len(usable) > 3 {
		usable = usable[:3]
	}
	out := make([]*onionmsg.BlindedPath, 0, len(usable))
	for _, rp := range usable {
		path, err := onionmsg.DecodeBlindedPath(bytes.NewReader(rp.Path))
		if err != nil {
			return nil, fmt.Errorf("receive path %x: %w", rp.ID, err)
		}
		out = append(out, path)
	}
	return out, nil
}

// lndGraph reads the chain height and the LSP's policies toward us from
// our lnd.
type lndGraph struct {
	ln   lnrpc.LightningClient
	self *btcec.PublicKey
}

func (g lndGraph) BestHeight(ctx context.Context) (uint32, error) {
	info, err := g.ln.GetInfo(ctx, &lnrpc.GetInfoRequest{})
	if err != nil {
		return 0, err
	}
	return info.BlockHeight, nil
}

// PoliciesFrom returns L's policy on each active channel between L and
// us: the policy of the node that is not us (GetChanInfo).
func (g lndGraph) PoliciesFrom(ctx context.Context,
	lsp *btcec.PublicKey) ([]asyncoffer.ChannelPolicy, error) {

	chans, err := g.ln.ListChannels(ctx, &lnrpc.ListChannelsRequest{
		ActiveOnly: true,
		Peer:       lsp.SerializeCompressed(),
	})
	if err != nil {
		return nil, err
	}
	lspHex := hex.EncodeToString(lsp.SerializeCompressed())
	var out []asyncoffer.ChannelPolicy
	for _, ch := range chans.Channels {
		edge, err := g.ln.GetChanInfo(ctx, &lnrpc.ChanInfoRequest{
			ChanId: ch.ChanId,
		})
		if err != nil {
			continue
		}
		pol := edge.Node1Policy
		if edge.Node2Pub == lspHex {
			pol = edge.Node2Policy
		}
		if pol == nil || pol.Disabled {
			continue
		}
		maxHTLC := pol.MaxHtlcMsat
		if maxHTLC == 0 {
			maxHTLC = uint64(ch.Capacity) * 1000
		}
		out = append(out, asyncoffer.ChannelPolicy{
			SCID:            lnwire.NewShortChanIDFromInt(ch.ChanId),
			FeeBaseMsat:     uint32(pol.FeeBaseMsat),
			FeeRatePPM:      uint32(pol.FeeRateMilliMsat),
			CltvExpiryDelta: uint16(pol.TimeLockDelta),
			HtlcMinimumMsat: uint64(pol.MinHtlc),
			HtlcMaximumMsat: maxHTLC,
		})
	}
	return out, nil
}

// networkChain is the BOLT 12 chain hash (genesis block) of a network.
func networkChain(network string) (chainhash.Hash, error) {
	params := map[string]*chaincfg.Params{
		"mainnet":  &chaincfg.MainNetParams,
		"testnet":  &chaincfg.TestNet3Params,
		"testnet4": &chaincfg.TestNet4Params,
		"signet":   &chaincfg.SigNetParams,
		"regtest":  &chaincfg.RegressionNetParams,
		"simnet":   &chaincfg.SimNetParams,
	}[network]
	if params == nil {
		return chainhash.Hash{}, fmt.Errorf("%w: network %q has no "+
			"chain hash", errConfig, network)
	}
	return *params.GenesisHash, nil
}
