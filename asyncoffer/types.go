package asyncoffer

import (
	"context"
	"errors"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release/onionmsg"
)

// Phase is where a slot is in the exchange with the server.
type Phase string

const (
	// PhaseRequesting: offer_paths_request sent (or due), no usable offer
	// paths yet.
	PhaseRequesting Phase = "requesting"

	// PhaseServing: an offer is built and serve_static_invoice sent (or
	// due); static_invoice_persisted not yet received for it.
	PhaseServing Phase = "serving"

	// PhaseLive: the server persisted the current invoice.
	PhaseLive Phase = "live"
)

// ErrNoSlot is what a Store returns for a slot it does not have.
var ErrNoSlot = errors.New("asyncoffer: slot not found")

// Slot is one offer slot's persisted state.
type Slot struct {
	Slot  uint16
	Phase Phase

	// Server names the server the slot was built against (a hash of
	// the configured recipient.server paths); a slot of another server
	// starts over.
	Server []byte

	// Live is set once the server persisted an invoice for Offer; it
	// stays set while a refreshed invoice is being served.
	Live bool

	// Offer is the encoded offer (nil before offer_paths arrived).
	Offer []byte

	// OfferKey is the offer's signing key (32 bytes).
	OfferKey []byte

	// VirtualKey is V's private key (32 bytes), made once per slot.
	VirtualKey []byte

	// FakeSCID is the channel P's hop names toward V.
	FakeSCID uint64

	// PathsExpiresAt is the server's paths_absolute_expiry (zero: none).
	PathsExpiresAt time.Time

	// ServePath is the reply path the server attached to offer_paths:
	// serve_static_invoice goes along it, now and on refresh.
	ServePath []byte

	// Invoice is the last static invoice sent, InvoiceExpiresAt its
	// expiry, ServedAt when the server last confirmed it.
	Invoice          []byte
	InvoiceExpiresAt time.Time
	ServedAt         time.Time

	UpdatedAt time.Time
}

// ForwardedRequest is an invoice_request the server forwarded to us.
type ForwardedRequest struct {
	Slot       uint16
	Request    []byte
	ReplyPath  []byte
	ReceivedAt time.Time
}

// Store persists slots and forwarded requests.
type Store interface {
	ListAsyncOfferSlots(ctx context.Context) ([]Slot, error)
	PutAsyncOfferSlot(ctx context.Context, s Slot) error
	InsertForwardedInvoiceRequest(ctx context.Context,
		r ForwardedRequest) error
}

// Sender sends an onion message along path with a reply path and final
// TLVs (release/onionsend.Sender in the daemon).
type Sender interface {
	SendMessage(ctx context.Context, path, replyPath *onionmsg.BlindedPath,
		tlvs map[uint64][]byte) error
}

// PathMinter mints a blinded message path to this holdd that ends in
// pathID (invoiceserver.HopMinter: [lnd -> holdd]).
type PathMinter interface {
	MintPath(sessionKey *btcec.PrivateKey,
		pathID []byte) (*onionmsg.BlindedPath, error)
}

// ReceivePaths returns this holdd's receive paths usable until at least
// until: the static invoice's held-HTLC message paths.
type ReceivePaths interface {
	MessagePaths(ctx context.Context,
		until time.Time) ([]*onionmsg.BlindedPath, error)
}

// Graph tells the client the chain height and the LSP's channel policies
// toward this node.
type Graph interface {
	BestHeight(ctx context.Context) (uint32, error)
	PoliciesFrom(ctx context.Context,
		lsp *btcec.PublicKey) ([]ChannelPolicy, error)
}
