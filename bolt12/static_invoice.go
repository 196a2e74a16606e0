package bolt12

import (
	"fmt"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// DefaultStaticInvoiceRelativeExpiry is a static invoice's expiry after
// invoice_created_at when invoice_relative_expiry is absent (LDK and the
// draft spec: two weeks).
const DefaultStaticInvoiceRelativeExpiry = 14 * 24 * time.Hour

// StaticInvoice is a decoded (or built) static invoice as LDK v0.2 writes
// it: the offer's fields, then invoice_paths, invoice_blindedpay,
// invoice_created_at, invoice_relative_expiry, invoice_features,
// invoice_node_id and the held-HTLC message paths (type 236), signed with
// tag "lightning" || "static_invoice" || "signature". It has no payment
// hash and no amount.
type StaticInvoice struct {
	// Offer are the offer's fields, mirrored.
	Offer OfferFields

	// Invoice are the invoice's own fields.
	Invoice InvoiceFields

	// Signature is the BIP 340 signature by Invoice.NodeID.
	Signature []byte

	records []Record
}

// DecodeStaticInvoice decodes and checks a static invoice the way LDK v0.2
// reads one, and verifies its signature: at most MaxStaticInvoiceSize
// bytes; types only in 1-79, 160-239, 240-1000, 1000000000-1999999999 and
// 3000000000 and up (no invoice_request fields); no invoice_payment_hash
// and no invoice_amount; invoice_paths with one invoice_blindedpay each;
// message paths (236, or the draft's 178) present and not empty;
// invoice_created_at and invoice_node_id present; the node id the offer's
// signing key; offer_paths present; at most one offer chain; and the
// offer's own rules. It does not check expiry or chain; see Check.
func DecodeStaticInvoice(b []byte, opts ...DecodeOption) (*StaticInvoice,
	error) {

	o := applyOptions(opts)
	if len(b) > MaxStaticInvoiceSize {
		return nil, fmt.Errorf("%w: static invoice of %d bytes, at "+
			"most %d", ErrTooLarge, len(b), MaxStaticInvoiceSize)
	}
	records, f, err := decodeStream(b, staticInvoiceRanges)
	if err != nil {
		return nil, err
	}
	si := &StaticInvoice{
		Offer:     f.offer,
		Invoice:   f.invoice,
		Signature: f.signature,
		records:   records,
	}
	fi := &si.Invoice

	// LDK's order of checks.
	switch {
	case fi.PaymentHash != nil:
		return nil, fmt.Errorf("%w: invoice_payment_hash in a static "+
			"invoice", ErrUnexpectedField)
	case fi.Amount != nil:
		return nil, fmt.Errorf("%w: invoice_amount in a static "+
			"invoice", ErrUnexpectedField)
	}
	if err := checkPaymentPaths(fi); err != nil {
		return nil, err
	}
	switch {
	case len(fi.MessagePaths) == 0:
		return nil, fmt.Errorf("%w: static invoice message paths",
			ErrMissingField)
	case fi.CreatedAt == nil:
		return nil, fmt.Errorf("%w: invoice_created_at",
			ErrMissingField)
	case fi.NodeID == nil:
		return nil, fmt.Errorf("%w: invoice_node_id", ErrMissingField)
	}
	if err := si.Offer.checkSigningKey(fi.NodeID); err != nil {
		return nil, err
	}
	switch {
	case len(si.Offer.Paths) == 0:
		return nil, fmt.Errorf("%w: offer_paths (a static invoice's "+
			"offer needs them)", ErrMissingField)
	case len(si.Offer.Chains) > 1:
		return nil, fmt.Errorf("%w: a static invoice's offer names "+
			"%d chains", ErrWrongChain, len(si.Offer.Chains))
	}
	if err := checkOfferFields(&si.Offer, true); err != nil {
		return nil, err
	}
	if err := checkFeatures("invoice_features", fi.Features,
		invoiceFeatureBits...); err != nil {

		return nil, err
	}
	if si.Signature == nil {
		return nil, fmt.Errorf("%w: signature", ErrMissingField)
	}
	if !o.skipSignature {
		if err := si.VerifySignature(); err != nil {
			return nil, err
		}
	}
	return si, nil
}

// DecodeStaticInvoiceString decodes an `lni` string as a static invoice.
func DecodeStaticInvoiceString(s string,
	opts ...DecodeOption) (*StaticInvoice, error) {

	b, err := decodeStringWithPrefix(s, HRPInvoice)
	if err != nil {
		return nil, err
	}
	return DecodeStaticInvoice(b, opts...)
}

// Encode returns the static invoice's TLV stream.
func (si *StaticInvoice) Encode() []byte {
	return encodeRecords(si.records)
}

// String returns the static invoice as a lowercase `lni` string.
func (si *StaticInvoice) String() string {
	return EncodeString(HRPInvoice, si.Encode())
}

// Records returns a copy of the static invoice's TLV records.
func (si *StaticInvoice) Records() []Record {
	return append([]Record(nil), si.records...)
}

// OfferID returns the id of the offer the static invoice mirrors.
func (si *StaticInvoice) OfferID() (OfferID, error) {
	return offerID(si.records)
}

// VerifySignature checks the signature by invoice_node_id.
func (si *StaticInvoice) VerifySignature() error {
	return verifySignature(StaticInvoiceSignatureTag, si.records,
		si.Signature, si.Invoice.NodeID)
}

// ExpiresAt is the unix time after which the invoice must not be paid.
func (si *StaticInvoice) ExpiresAt() uint64 {
	return si.Invoice.expiresAt(DefaultStaticInvoiceRelativeExpiry)
}

// Check applies the reader requirements that need the caller's context: the
// invoice must be for chain, it and its offer unexpired at now.
func (si *StaticInvoice) Check(now time.Time, chain chainhash.Hash) error {
	if err := si.Offer.check(now, chain); err != nil {
		return err
	}
	if uint64(now.Unix()) > si.ExpiresAt() {
		return fmt.Errorf("%w: static invoice expired at %d",
			ErrExpired, si.ExpiresAt())
	}
	return nil
}

// IsFromOffer reports whether the static invoice mirrors offer exactly
// (LDK's is_from_same_offer): every record in the offer ranges, byte for
// byte.
func (si *StaticInvoice) IsFromOffer(offer *Offer) error {
	return matchRecords(si.records, offer.records, offerIDRanges, "offer")
}
