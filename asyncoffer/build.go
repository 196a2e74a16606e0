package asyncoffer

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
)

// ErrBuild wraps every failure to build an offer or a static invoice.
var ErrBuild = errors.New("asyncoffer: cannot build")

// OfferParams are what an async offer carries besides its paths.
type OfferParams struct {
	// Paths are the server's offer paths (offer_paths).
	Paths []*onionmsg.BlindedPath

	// SigningKey is the offer's own key: offer_issuer_id is its public
	// key and it signs the static invoice. LDK's async offers use a
	// per-offer derived key, not the node id (rust-lightning v0.2
	// lightning/src/offers/flow.rs create_async_receive_offer_builder:
	// OfferBuilder::deriving_signing_pubkey with a fresh nonce); holdd
	// draws a fresh random key per offer and persists it.
	SigningKey *btcec.PrivateKey

	// AmountMsat is nil for the amount-less offer LDK builds.
	AmountMsat *uint64

	// Description is required by BOLT 12 when an amount is set.
	Description string

	// AbsoluteExpiry is the offer's expiry: the server's
	// paths_absolute_expiry, or zero for none.
	AbsoluteExpiry time.Time

	// Chain is the genesis hash of the offer's chain; the zero hash or
	// bolt12.BitcoinChain leave offer_chains out (mainnet implied).
	Chain chainhash.Hash
}

// BuildOffer builds the offer published for one slot.
func BuildOffer(p OfferParams) (*bolt12.Offer, error) {
	if len(p.Paths) == 0 || p.SigningKey == nil {
		return nil, fmt.Errorf("%w: an offer needs paths and a key",
			ErrBuild)
	}
	f := bolt12.OfferFields{
		Paths:    p.Paths,
		IssuerID: p.SigningKey.PubKey(),
	}
	if p.Chain != (chainhash.Hash{}) && p.Chain != bolt12.BitcoinChain {
		f.Chains = []chainhash.Hash{p.Chain}
	}
	if p.AmountMsat != nil {
		amt := *p.AmountMsat
		f.Amount = &amt
	}
	if p.Description != "" || p.AmountMsat != nil {
		d := p.Description
		f.Description = &d
	}
	if !p.AbsoluteExpiry.IsZero() {
		exp := uint64(p.AbsoluteExpiry.Unix())
		f.AbsoluteExpiry = &exp
	}
	offer, err := bolt12.NewOffer(f)
	if err != nil {
		return nil, fmt.Errorf("%w: offer: %w", ErrBuild, err)
	}
	return offer, nil
}

// ChannelPolicy is the LSP's forwarding policy on its channel to P, as
// P's lnd sees it in the graph (GetChanInfo: the policy of the node that is
// not P).
type ChannelPolicy struct {
	// SCID is the L-P channel, the next hop named in L's blinded data.
	SCID lnwire.ShortChannelID

	FeeBaseMsat     uint32
	FeeRatePPM      uint32
	CltvExpiryDelta uint16
	HtlcMinimumMsat uint64

	// HtlcMaximumMsat is the channel's max_htlc (0 falls back to
	// its capacity upstream).
	HtlcMaximumMsat uint64
}

// PaymentPathParams describe one blinded payment path L -> P -> V.
type PaymentPathParams struct {
	// LSP is L, the introduction node.
	LSP *btcec.PublicKey

	// Self is P, this holdd's lnd.
	Self *btcec.PublicKey

	// Virtual is V, the key only this holdd holds.
	Virtual *btcec.PublicKey

	// Policy is L's policy on the L-P channel.
	Policy ChannelPolicy

	// FakeSCID is the channel P's hop names toward V; P's lnd offers the
	// HTLC to the interceptor because no such channel exists.
	FakeSCID lnwire.ShortChannelID

	// SelfCltvDelta is P's own relay delta toward V (PROTOCOL.md's
	// probe used 40); P charges no fee.
	SelfCltvDelta uint16

	// FinalCltvDelta is the margin V wants above the current height
	// when the HTLC arrives (a blinded path's payinfo carries the
	// recipient's final delta; the sender adds none).
	FinalCltvDelta uint16

	// SelfHtlcMinimumMsat is P's minimum.
	SelfHtlcMinimumMsat uint64

	// MaxCltvExpiry is the highest CLTV V accepts; the hops before it
	// accept their downstream deltas more.
	MaxCltvExpiry uint32

	// PathID is V's path_id.
	PathID []byte

	// SessionKey blinds the path.
	SessionKey *btcec.PrivateKey
}

// BuildPaymentPath builds the blinded payment path and its payinfo.
//
// Hops' encrypted data (record.BlindedRouteData): L {2: L-P scid, 10:
// payment_relay from L's policy, 12: payment_constraints}; P {2: fake scid,
// 10: payment_relay {P's delta, no fees}, 12: payment_constraints}; V {6:
// path_id, 12: payment_constraints}. The payinfo aggregates the two
// forwarding hops as BOLT 4 (route blinding) prescribes.
func BuildPaymentPath(p PaymentPathParams) (bolt12.PaymentPath, error) {
	if p.LSP == nil || p.Self == nil || p.Virtual == nil ||
		p.SessionKey == nil || len(p.PathID) == 0 {

		return bolt12.PaymentPath{}, fmt.Errorf("%w: payment path "+
			"needs L, P, V, a path_id and a session key", ErrBuild)
	}
	// max_cltv_expiry is checked against each hop's incoming expiry,
	// which carries every delta downstream of it.
	vMax := p.MaxCltvExpiry
	pMax := vMax + uint32(p.SelfCltvDelta)
	lMax := pMax + uint32(p.Policy.CltvExpiryDelta)
	if lMax < vMax {
		return bolt12.PaymentPath{}, fmt.Errorf("%w: max_cltv_expiry "+
			"overflows", ErrBuild)
	}
	selfMin := lnwire.MilliSatoshi(p.SelfHtlcMinimumMsat)
	lData := record.NewNonFinalBlindedRouteData(
		p.Policy.SCID, nil, record.PaymentRelayInfo{
			CltvExpiryDelta: p.Policy.CltvExpiryDelta,
			FeeRate:         p.Policy.FeeRatePPM,
			BaseFee: lnwire.MilliSatoshi(
				p.Policy.FeeBaseMsat,
			),
		}, &record.PaymentConstraints{
			MaxCltvExpiry: lMax,
			HtlcMinimumMsat: lnwire.MilliSatoshi(
				p.Policy.HtlcMinimumMsat,
			),
		}, nil,
	)
	pData := record.NewNonFinalBlindedRouteData(
		p.FakeSCID, nil, record.PaymentRelayInfo{
			CltvExpiryDelta: p.SelfCltvDelta,
		}, &record.PaymentConstraints{
			MaxCltvExpiry:   pMax,
			HtlcMinimumMsat: selfMin,
		}, nil,
	)
	vData := record.NewFinalHopBlindedRouteData(&record.PaymentConstraints{
		MaxCltvExpiry:   vMax,
		HtlcMinimumMsat: selfMin,
	}, p.PathID)

	// Payment paths are not padded here: onionmsg's padding is for
	// message paths, and lnd's own blinded payment paths pad with
	// dummy hops instead. Built with sphinx.BuildBlindedPath inside.
	path, err := onionmsg.BuildBlindedPath(p.SessionKey, []onionmsg.Hop{
		{NodeID: p.LSP, Data: lData},
		{NodeID: p.Self, Data: pData},
		{NodeID: p.Virtual, Data: vData},
	}, false)
	if err != nil {
		return bolt12.PaymentPath{}, fmt.Errorf("%w: payment path: %w",
			ErrBuild, err)
	}

	// Aggregate from the hop nearest V back to L (BOLT 4): P, then L.
	base, ppm := aggregateFees(0, 0, 0, 0)
	base, ppm = aggregateFees(base, ppm, uint64(p.Policy.FeeBaseMsat),
		uint64(p.Policy.FeeRatePPM))
	if base > math.MaxUint32 || ppm > math.MaxUint32 {
		return bolt12.PaymentPath{}, fmt.Errorf("%w: fees overflow",
			ErrBuild)
	}
	cltv := uint32(p.Policy.CltvExpiryDelta) + uint32(p.SelfCltvDelta) +
		uint32(p.FinalCltvDelta)
	if cltv > math.MaxUint16 {
		return bolt12.PaymentPath{}, fmt.Errorf("%w: cltv delta %d",
			ErrBuild, cltv)
	}
	htlcMin := max(p.Policy.HtlcMinimumMsat, p.SelfHtlcMinimumMsat)
	return bolt12.PaymentPath{
		Path: path,
		PayInfo: bolt12.BlindedPayInfo{
			FeeBaseMsat:               uint32(base),
			FeeProportionalMillionths: uint32(ppm),
			CltvExpiryDelta:           uint16(cltv),
			HtlcMinimumMsat:           htlcMin,
			HtlcMaximumMsat:           p.Policy.HtlcMaximumMsat,
			Features:                  []byte{},
		},
	}, nil
}

// aggregateFees folds one more hop (further from the recipient) with fee
// base and ppm into the aggregate (BOLT 4, route blinding):
//
//	base' = ceil((base_hop*1e6 + base*(1e6 + ppm_hop)) / 1e6)
//	ppm'  = ceil(((ppm + ppm_hop)*1e6 + ppm*ppm_hop) / 1e6)
func aggregateFees(base, ppm, hopBase, hopPPM uint64) (uint64, uint64) {
	const m = 1_000_000
	newBase := (hopBase*m + base*(m+hopPPM) + m - 1) / m
	newPPM := ((ppm+hopPPM)*m + ppm*hopPPM + m - 1) / m
	return newBase, newPPM
}

// InvoiceParams are what a static invoice adds to its offer.
type InvoiceParams struct {
	// SigningKey is the offer's key.
	SigningKey *btcec.PrivateKey

	// PaymentPaths are the L -> P -> V paths.
	PaymentPaths []bolt12.PaymentPath

	// MessagePaths are this holdd's receive paths, where
	// held_htlc_available reaches it (through the mailbox if set).
	MessagePaths []*onionmsg.BlindedPath

	CreatedAt time.Time

	// RelativeExpiry is the invoice's lifetime.
	RelativeExpiry time.Duration
}

// BuildStaticInvoice builds and signs the static invoice for offer.
func BuildStaticInvoice(offer *bolt12.Offer,
	p InvoiceParams) (*bolt12.StaticInvoice, error) {

	exp := p.RelativeExpiry
	si, err := bolt12.NewStaticInvoice(offer, bolt12.StaticInvoiceParams{
		InvoiceParams: bolt12.InvoiceParams{
			SigningKey:     p.SigningKey,
			Paths:          p.PaymentPaths,
			CreatedAt:      p.CreatedAt,
			RelativeExpiry: &exp,
		},
		MessagePaths: p.MessagePaths,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: static invoice: %w", ErrBuild, err)
	}
	if len(si.Encode()) > MaxStaticInvoiceSize {
		return nil, fmt.Errorf("%w: static invoice of %d bytes, the "+
			"server takes at most %d", ErrBuild, len(si.Encode()),
			MaxStaticInvoiceSize)
	}
	return si, nil
}

// MaxStaticInvoiceSize is what LDK's server accepts
// (MAX_STATIC_INVOICE_SIZE_BYTES, 5 KiB).
const MaxStaticInvoiceSize = 5 * 1024
