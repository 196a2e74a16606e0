package invoiceserver

import (
	"context"
	"errors"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release/onionmsg"
)

var (
	// ErrInvalidRecipientID is returned for a recipient id that is empty
	// or longer than MaxRecipientIDLen.
	ErrInvalidRecipientID = errors.New("invoiceserver: invalid " +
		"recipient id")

	// ErrUnknownRecipient is returned by a Store for a recipient it does
	// not hold.
	ErrUnknownRecipient = errors.New("invoiceserver: unknown recipient")

	// ErrTooManyRecipients is returned by a Store when adding a new
	// recipient would exceed the bound.
	ErrTooManyRecipients = errors.New("invoiceserver: too many " +
		"recipients")

	// ErrNoInvoice is returned by a Store for a slot without a static
	// invoice.
	ErrNoInvoice = errors.New("invoiceserver: no static invoice")

	// ErrInvalidRequest is returned for an API call the server refuses.
	ErrInvalidRequest = errors.New("invoiceserver: invalid request")
)

// Recipient is an async recipient the server serves static invoices for.
type Recipient struct {
	ID        []byte
	CreatedAt time.Time

	// ExpiresAt is zero when the registration never expires.
	ExpiresAt time.Time
}

// Expired reports whether the registration has expired at now.
func (r Recipient) Expired(now time.Time) bool {
	return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)
}

// StaticInvoice is a recipient's persisted static invoice for one slot.
type StaticInvoice struct {
	RecipientID []byte
	Slot        uint16

	// Invoice is the static invoice's TLV stream, as the recipient sent
	// it; it is served as onionmsg TLV 70.
	Invoice []byte

	// OfferID is the id of the offer the invoice is for.
	OfferID [32]byte

	// ForwardPath is the recipient's forward_invoice_request_path in its
	// wire form.
	ForwardPath []byte

	// ExpiresAt is the invoice's expiry.
	ExpiresAt time.Time

	// StoredAt is when the server persisted it.
	StoredAt time.Time

	// RecipientExpiresAt is the recipient's registration expiry (zero:
	// never), filled in by GetStaticInvoice so that answering takes one
	// lookup.
	RecipientExpiresAt time.Time
}

// Store persists recipients and their static invoices.
type Store interface {
	// PutAsyncRecipient adds a recipient, or updates the expiry of one
	// it holds. A new recipient beyond maxRecipients fails with
	// ErrTooManyRecipients and nothing is written.
	PutAsyncRecipient(ctx context.Context, r Recipient,
		maxRecipients int) (Recipient, error)

	// GetAsyncRecipient fails with ErrUnknownRecipient.
	GetAsyncRecipient(ctx context.Context, id []byte) (Recipient, error)

	// RemoveAsyncRecipient removes a recipient and its invoices; it
	// fails with ErrUnknownRecipient.
	RemoveAsyncRecipient(ctx context.Context, id []byte) error

	// ListAsyncRecipients returns every recipient, by id.
	ListAsyncRecipients(ctx context.Context) ([]Recipient, error)

	// PutStaticInvoice stores inv for (RecipientID, Slot), replacing any
	// invoice there in one statement. It fails with ErrUnknownRecipient
	// when the recipient is gone.
	PutStaticInvoice(ctx context.Context, inv StaticInvoice) error

	// GetStaticInvoice fails with ErrNoInvoice.
	GetStaticInvoice(ctx context.Context, recipientID []byte,
		slot uint16) (StaticInvoice, error)
}

// Sender sends an onion message along path carrying replyPath (may be nil)
// and finalTLVs. release/onionsend's Sender does, behind an adapter that
// drops its Route.
type Sender interface {
	Send(ctx context.Context, path, replyPath *onionmsg.BlindedPath,
		finalTLVs map[uint64][]byte) error
}

// Forwarder passes an invoice_request on to its recipient along the
// recipient's forward_invoice_request_path, carrying the payer's reply
// path so an online recipient answers the payer itself (LDK:
// OffersMessageFlow::enqueue_invoice_request_to_forward). The wiring sends
// it through the mailbox when the recipient is offline.
type Forwarder interface {
	ForwardInvoiceRequest(ctx context.Context, path,
		replyPath *onionmsg.BlindedPath, invoiceRequest []byte) error
}

// PathMinter builds one blinded message path that ends at holdd with
// pathID in its final hop, blinded with sessionKey. It must be
// deterministic in its arguments: the server mints an offer's paths again
// to check that a static invoice is for one of its offers.
type PathMinter interface {
	MintPath(sessionKey *btcec.PrivateKey,
		pathID []byte) (*onionmsg.BlindedPath, error)
}

// InvoiceSlot describes a stored static invoice for the API, without its
// bytes.
type InvoiceSlot struct {
	RecipientID []byte
	Slot        uint16
	OfferID     [32]byte
	Size        int
	ExpiresAt   time.Time
	StoredAt    time.Time
}

// SlotLister lists the static invoices a Store keeps; the store holdd runs
// on implements it, for the API's listing.
type SlotLister interface {
	ListStaticInvoiceSlots(ctx context.Context) ([]InvoiceSlot, error)
}
