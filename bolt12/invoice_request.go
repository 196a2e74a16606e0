package bolt12

import (
	"bytes"
	"fmt"
	"math/bits"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// DecodeOption changes what a decoder of a signed message checks.
type DecodeOption func(*decodeOptions)

type decodeOptions struct {
	skipSignature bool
}

// SkipSignatureCheck decodes a signed message without verifying its
// signature (it must still be present); VerifySignature checks it later.
// For tools that show why a message is invalid.
func SkipSignatureCheck() DecodeOption {
	return func(o *decodeOptions) { o.skipSignature = true }
}

func applyOptions(opts []DecodeOption) decodeOptions {
	var o decodeOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// InvoiceRequest is a decoded (or built) BOLT 12 invoice_request.
type InvoiceRequest struct {
	// Offer are the offer fields the request mirrors.
	Offer OfferFields

	// Request are the request's own fields.
	Request InvoiceRequestFields

	// Signature is the BIP 340 signature by Request.PayerID.
	Signature []byte

	records []Record
}

// DecodeInvoiceRequest decodes and checks an invoice_request as a BOLT 12
// reader must, and verifies its signature by invreq_payer_id: types only in
// 0-159, 240-1000 and 1000000000-2999999999; invreq_metadata and
// invreq_payer_id present; no unknown even type or feature; for a request
// answering an offer, the offer's own rules, invreq_chain among its chains,
// an amount, and the quantity rules; without an offer, invreq_amount and
// none of offer_chains, offer_features, offer_quantity_max. It does not
// check expiry or the node's chain; see Check.
func DecodeInvoiceRequest(b []byte, opts ...DecodeOption) (*InvoiceRequest,
	error) {

	o := applyOptions(opts)
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: invoice_request of %d bytes",
			ErrTooLarge, len(b))
	}
	records, f, err := decodeStream(b, invreqRanges)
	if err != nil {
		return nil, err
	}
	ir := &InvoiceRequest{
		Offer:     f.offer,
		Request:   f.invreq,
		Signature: f.signature,
		records:   records,
	}
	if err := checkInvoiceRequestFields(&ir.Offer, &ir.Request); err != nil {
		return nil, err
	}
	if ir.Signature == nil {
		return nil, fmt.Errorf("%w: signature", ErrMissingField)
	}
	if !o.skipSignature {
		if err := ir.VerifySignature(); err != nil {
			return nil, err
		}
	}
	return ir, nil
}

// DecodeInvoiceRequestString decodes an `lnr` string.
func DecodeInvoiceRequestString(s string,
	opts ...DecodeOption) (*InvoiceRequest, error) {

	b, err := decodeStringWithPrefix(s, HRPInvoiceRequest)
	if err != nil {
		return nil, err
	}
	return DecodeInvoiceRequest(b, opts...)
}

// answersOffer reports whether a request carries an offer (it names the
// offer's issuer id or paths).
func answersOffer(o *OfferFields) bool {
	return o.IssuerID != nil || o.Paths != nil
}

func checkInvoiceRequestFields(o *OfferFields, r *InvoiceRequestFields) error {
	if r.Metadata == nil {
		return fmt.Errorf("%w: invreq_metadata", ErrMissingField)
	}
	if r.PayerID == nil {
		return fmt.Errorf("%w: invreq_payer_id", ErrMissingField)
	}
	if err := checkFeatures("invreq_features", r.Features,
		invreqFeatureBits...); err != nil {

		return err
	}
	if r.Amount != nil && (*r.Amount == 0 || *r.Amount > maxValueMsat) {
		return fmt.Errorf("%w: invreq_amount %d msat",
			ErrValueOutOfRange, *r.Amount)
	}

	if !answersOffer(o) {
		switch {
		case o.Chains != nil:
			return fmt.Errorf("%w: offer_chains without an offer",
				ErrUnexpectedField)
		case o.Features != nil:
			return fmt.Errorf("%w: offer_features without an offer",
				ErrUnexpectedField)
		case o.QuantityMax != nil:
			return fmt.Errorf("%w: offer_quantity_max without an "+
				"offer", ErrUnexpectedField)
		case r.Amount == nil:
			return fmt.Errorf("%w: invreq_amount (no offer)",
				ErrMissingField)
		}
		return checkOfferFields(o, false)
	}

	if err := checkOfferFields(o, true); err != nil {
		return err
	}
	chain := BitcoinChain
	if r.Chain != nil {
		chain = *r.Chain
	}
	if !o.SupportsChain(chain) {
		return fmt.Errorf("%w: invreq_chain %v is not one of the "+
			"offer's", ErrWrongChain, chain)
	}

	quantity := uint64(1)
	switch {
	case o.QuantityMax == nil && r.Quantity != nil:
		return fmt.Errorf("%w: invreq_quantity for an offer without "+
			"offer_quantity_max", ErrUnexpectedField)

	case o.QuantityMax != nil && r.Quantity == nil:
		return fmt.Errorf("%w: invreq_quantity", ErrMissingField)

	case o.QuantityMax != nil:
		quantity = *r.Quantity
		if quantity == 0 || (*o.QuantityMax != 0 &&
			quantity > *o.QuantityMax) {

			return fmt.Errorf("%w: invreq_quantity %d (max %d)",
				ErrValueOutOfRange, quantity, *o.QuantityMax)
		}
	}

	switch {
	case o.Amount == nil && r.Amount == nil:
		return fmt.Errorf("%w: invreq_amount (the offer has no "+
			"amount)", ErrMissingField)

	// An amount in another currency cannot be converted here.
	case o.Amount != nil && o.Currency == nil && r.Amount != nil:
		hi, expected := bits.Mul64(*o.Amount, quantity)
		if hi != 0 || *r.Amount < expected {
			return fmt.Errorf("%w: invreq_amount %d msat is below "+
				"%d x %d msat", ErrValueOutOfRange, *r.Amount,
				quantity, *o.Amount)
		}
	}
	return nil
}

// Encode returns the request's TLV stream, as it goes into an onion message
// or a payment onion.
func (ir *InvoiceRequest) Encode() []byte {
	return encodeRecords(ir.records)
}

// String returns the request as a lowercase `lnr` string.
func (ir *InvoiceRequest) String() string {
	return EncodeString(HRPInvoiceRequest, ir.Encode())
}

// Records returns a copy of the request's TLV records.
func (ir *InvoiceRequest) Records() []Record {
	return append([]Record(nil), ir.records...)
}

// OfferID returns the id of the offer the request mirrors.
func (ir *InvoiceRequest) OfferID() (OfferID, error) {
	return offerID(ir.records)
}

// VerifySignature checks the signature by invreq_payer_id.
func (ir *InvoiceRequest) VerifySignature() error {
	return verifySignature(InvoiceRequestSignatureTag, ir.records,
		ir.Signature, ir.Request.PayerID)
}

// Chain is the chain the request is for: invreq_chain, or bitcoin.
func (ir *InvoiceRequest) Chain() chainhash.Hash {
	if ir.Request.Chain != nil {
		return *ir.Request.Chain
	}
	return BitcoinChain
}

// Check applies the reader requirements that need the caller's context: the
// request must be for chain, and the offer it answers unexpired at now.
func (ir *InvoiceRequest) Check(now time.Time, chain chainhash.Hash) error {
	if ir.Chain() != chain {
		return fmt.Errorf("%w: request is for chain %v, not %v",
			ErrWrongChain, ir.Chain(), chain)
	}
	return ir.Offer.checkExpiry(now)
}

// MatchesOffer checks that the request mirrors offer exactly: every record
// in the offer ranges, byte for byte.
func (ir *InvoiceRequest) MatchesOffer(offer *Offer) error {
	return matchRecords(ir.records, offer.records, offerIDRanges,
		"offer")
}

// matchRecords checks that a and b have the same records in ranges.
func matchRecords(a, b []Record, ranges []typeRange, what string) error {
	ra, rb := filterRecords(a, ranges), filterRecords(b, ranges)
	if len(ra) != len(rb) {
		return fmt.Errorf("%w: %d %s records, want %d", ErrMismatch,
			len(ra), what, len(rb))
	}
	for i := range ra {
		if !bytes.Equal(ra[i].raw, rb[i].raw) {
			return fmt.Errorf("%w: %s record type %d differs",
				ErrMismatch, what, ra[i].Type)
		}
	}
	return nil
}
