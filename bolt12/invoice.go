package bolt12

import (
	"fmt"
	"math"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// DefaultInvoiceRelativeExpiry is an invoice's expiry after
// invoice_created_at when invoice_relative_expiry is absent.
const DefaultInvoiceRelativeExpiry = 7200 * time.Second

// Invoice is a decoded BOLT 12 invoice (one with a payment hash, answering
// an invoice_request).
type Invoice struct {
	// Offer are the offer fields the invoice mirrors.
	Offer OfferFields

	// Request are the invoice_request fields the invoice mirrors.
	Request InvoiceRequestFields

	// Invoice are the invoice's own fields.
	Invoice InvoiceFields

	// Signature is the BIP 340 signature by Invoice.NodeID.
	Signature []byte

	records []Record
}

// DecodeInvoice decodes and checks an invoice as a BOLT 12 reader must, and
// verifies its signature by invoice_node_id: invoice_amount,
// invoice_created_at, invoice_payment_hash and invoice_node_id present;
// invoice_paths present, not empty, with one invoice_blindedpay each; no
// unknown even type or feature; the mirrored invoice_request valid; the
// node id the offer's signing key. It does not check expiry, chain or the
// match with the request sent; see Check and MatchesInvoiceRequest.
func DecodeInvoice(b []byte, opts ...DecodeOption) (*Invoice, error) {
	o := applyOptions(opts)
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: invoice of %d bytes", ErrTooLarge,
			len(b))
	}
	records, f, err := decodeStream(b, invoiceRanges)
	if err != nil {
		return nil, err
	}
	inv := &Invoice{
		Offer:     f.offer,
		Request:   f.invreq,
		Invoice:   f.invoice,
		Signature: f.signature,
		records:   records,
	}
	fi := &inv.Invoice
	switch {
	case fi.MessagePaths != nil:
		return nil, fmt.Errorf("%w: static invoice message paths in "+
			"an invoice with a payment hash", ErrUnexpectedField)
	case fi.Amount == nil:
		return nil, fmt.Errorf("%w: invoice_amount", ErrMissingField)
	case fi.CreatedAt == nil:
		return nil, fmt.Errorf("%w: invoice_created_at",
			ErrMissingField)
	case fi.PaymentHash == nil:
		return nil, fmt.Errorf("%w: invoice_payment_hash",
			ErrMissingField)
	case fi.NodeID == nil:
		return nil, fmt.Errorf("%w: invoice_node_id", ErrMissingField)
	case *fi.Amount > maxValueMsat:
		return nil, fmt.Errorf("%w: invoice_amount %d msat",
			ErrValueOutOfRange, *fi.Amount)
	}
	if err := checkPaymentPaths(fi); err != nil {
		return nil, err
	}
	if err := checkFeatures("invoice_features", fi.Features,
		invoiceFeatureBits...); err != nil {

		return nil, err
	}
	if err := checkInvoiceRequestFields(&inv.Offer,
		&inv.Request); err != nil {

		return nil, err
	}
	if inv.Request.Amount != nil && *inv.Request.Amount != *fi.Amount {
		return nil, fmt.Errorf("%w: invoice_amount %d is not "+
			"invreq_amount %d", ErrMismatch, *fi.Amount,
			*inv.Request.Amount)
	}
	if err := inv.Offer.checkSigningKey(fi.NodeID); err != nil {
		return nil, err
	}
	if inv.Signature == nil {
		return nil, fmt.Errorf("%w: signature", ErrMissingField)
	}
	if !o.skipSignature {
		if err := inv.VerifySignature(); err != nil {
			return nil, err
		}
	}
	return inv, nil
}

// DecodeInvoiceString decodes an `lni` string as an invoice.
func DecodeInvoiceString(s string, opts ...DecodeOption) (*Invoice, error) {
	b, err := decodeStringWithPrefix(s, HRPInvoice)
	if err != nil {
		return nil, err
	}
	return DecodeInvoice(b, opts...)
}

// checkPaymentPaths applies LDK's construct_payment_paths rules:
// invoice_paths present and not empty, invoice_blindedpay present with one
// entry per path; and BOLT 12's: at least one path whose payinfo features
// have no unknown even bit.
func checkPaymentPaths(fi *InvoiceFields) error {
	switch {
	case len(fi.Paths) == 0:
		return fmt.Errorf("%w: invoice_paths", ErrMissingField)
	case fi.BlindedPay == nil:
		return fmt.Errorf("%w: invoice_blindedpay", ErrMissingField)
	case len(fi.BlindedPay) != len(fi.Paths):
		return fmt.Errorf("%w: %d invoice_blindedpay for %d "+
			"invoice_paths", ErrInvalidField, len(fi.BlindedPay),
			len(fi.Paths))

	case len(fi.UsablePaymentPaths()) == 0:
		return fmt.Errorf("%w: every invoice path's payinfo has an "+
			"unknown even feature", ErrUnknownFeature)
	}
	return nil
}

// UsablePaymentPaths returns the invoice's payment paths with their payinfo,
// in the invoice's order, leaving out those whose payinfo features have an
// unknown even bit (BOLT 12: the payer must not use them).
func (fi *InvoiceFields) UsablePaymentPaths() []PaymentPath {
	var out []PaymentPath
	for i, p := range fi.Paths {
		if i >= len(fi.BlindedPay) {
			break
		}
		info := fi.BlindedPay[i]
		if checkFeatures("payinfo", info.Features) != nil {
			continue
		}
		out = append(out, PaymentPath{Path: p, PayInfo: info})
	}
	return out
}

// expiresAt is invoice_created_at + invoice_relative_expiry (or def).
func (fi *InvoiceFields) expiresAt(def time.Duration) uint64 {
	rel := uint64(def / time.Second)
	if fi.RelativeExpiry != nil {
		rel = uint64(*fi.RelativeExpiry)
	}
	if *fi.CreatedAt > math.MaxUint64-rel {
		return math.MaxUint64
	}
	return *fi.CreatedAt + rel
}

// Encode returns the invoice's TLV stream.
func (inv *Invoice) Encode() []byte {
	return encodeRecords(inv.records)
}

// String returns the invoice as a lowercase `lni` string.
func (inv *Invoice) String() string {
	return EncodeString(HRPInvoice, inv.Encode())
}

// Records returns a copy of the invoice's TLV records.
func (inv *Invoice) Records() []Record {
	return append([]Record(nil), inv.records...)
}

// OfferID returns the id of the offer the invoice mirrors.
func (inv *Invoice) OfferID() (OfferID, error) {
	return offerID(inv.records)
}

// VerifySignature checks the signature by invoice_node_id.
func (inv *Invoice) VerifySignature() error {
	return verifySignature(InvoiceSignatureTag, inv.records,
		inv.Signature, inv.Invoice.NodeID)
}

// ExpiresAt is the unix time after which the invoice must not be paid.
func (inv *Invoice) ExpiresAt() uint64 {
	return inv.Invoice.expiresAt(DefaultInvoiceRelativeExpiry)
}

// Check applies the reader requirements that need the caller's context: the
// invoice must be for chain and unexpired at now.
func (inv *Invoice) Check(now time.Time, chain chainhash.Hash) error {
	c := BitcoinChain
	if inv.Request.Chain != nil {
		c = *inv.Request.Chain
	}
	if c != chain {
		return fmt.Errorf("%w: invoice is for chain %v, not %v",
			ErrWrongChain, c, chain)
	}
	if uint64(now.Unix()) > inv.ExpiresAt() {
		return fmt.Errorf("%w: invoice expired at %d", ErrExpired,
			inv.ExpiresAt())
	}
	return nil
}

// MatchesInvoiceRequest checks that the invoice mirrors ir exactly: every
// record in 0-159 and 1000000000-2999999999, byte for byte.
func (inv *Invoice) MatchesInvoiceRequest(ir *InvoiceRequest) error {
	return matchRecords(inv.records, ir.records, invreqMirrorRanges,
		"invoice_request")
}
