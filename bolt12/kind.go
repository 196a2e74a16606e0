package bolt12

import (
	"fmt"
	"strings"
)

// Kind is the kind of a BOLT 12 message.
type Kind string

// The kinds DetectKind tells apart.
const (
	KindOffer          Kind = "offer"
	KindInvoiceRequest Kind = "invoice_request"
	KindInvoice        Kind = "invoice"
	KindStaticInvoice  Kind = "static_invoice"
)

// DetectKind tells from a TLV stream's types which message it is meant to
// be, for input that carries no prefix (hex): invoice fields (160-239 or
// 3000000000 and up) make an invoice, a static invoice when it has no
// invoice_request fields (0, 80-159, 2000000000-2999999999); else
// invoice_request fields or a signature make an invoice_request; else an
// offer. It only reads the framing; the decoder for the kind checks the
// rest.
func DetectKind(b []byte) (Kind, error) {
	if len(b) > MaxMessageSize {
		return "", fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	records, err := parseRecords(b)
	if err != nil {
		return "", err
	}
	var invreq, invoice, sig bool
	for _, r := range records {
		switch {
		case r.Type == 0 || invreqRange.contains(r.Type) ||
			(r.Type >= experimentalInvreqStart &&
				r.Type <= experimentalInvreqEnd):

			invreq = true

		case invoiceRange.contains(r.Type) ||
			r.Type >= experimentalInvoiceStart:

			invoice = true

		case signatureRange.contains(r.Type):
			sig = true
		}
	}
	switch {
	case invoice && invreq:
		return KindInvoice, nil
	case invoice:
		return KindStaticInvoice, nil
	case invreq || sig:
		return KindInvoiceRequest, nil
	default:
		return KindOffer, nil
	}
}

// KindOfPrefix returns the kind a string prefix names; lni is an invoice or
// a static invoice, told apart by DetectKind.
func KindOfPrefix(hrp string) (Kind, bool) {
	switch strings.ToLower(hrp) {
	case HRPOffer:
		return KindOffer, true
	case HRPInvoiceRequest:
		return KindInvoiceRequest, true
	case HRPInvoice:
		return KindInvoice, true
	}
	return "", false
}
