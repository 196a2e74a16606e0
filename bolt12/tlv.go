package bolt12

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/lightningnetwork/lnd/tlv"
)

const (
	// MaxMessageSize bounds every encoded message holdd decodes: the
	// largest onion message payload (32834-byte packets) is smaller, and
	// so is anything a QR code or a command line carries.
	MaxMessageSize = 32 * 1024

	// MaxStaticInvoiceSize is the largest static invoice holdd accepts or
	// builds; LDK's static invoice server refuses bigger ones.
	MaxStaticInvoiceSize = 5 * 1024
)

// TLV type ranges (inclusive) of BOLT 12.
const (
	// experimentalOfferStart .. experimentalOfferEnd are the offer's
	// experimental types.
	experimentalOfferStart = 1_000_000_000
	experimentalOfferEnd   = 1_999_999_999

	// experimentalInvreqStart .. experimentalInvreqEnd are the invoice
	// request's experimental types.
	experimentalInvreqStart = 2_000_000_000
	experimentalInvreqEnd   = 2_999_999_999

	// experimentalInvoiceStart is where the invoice's experimental
	// types begin; like LDK, holdd sets no upper end.
	experimentalInvoiceStart = 3_000_000_000

	// signatureStart .. signatureEnd are the signature types, left out
	// of the Merkle tree.
	signatureStart = 240
	signatureEnd   = 1000
)

type typeRange struct {
	lo, hi uint64
}

func (r typeRange) contains(t uint64) bool {
	return t >= r.lo && t <= r.hi
}

var (
	offerRange = typeRange{1, 79}
	// offerIDRanges are the types an offer id hashes: the offer's own.
	offerIDRanges = []typeRange{
		offerRange, {experimentalOfferStart, experimentalOfferEnd},
	}
	invreqRange    = typeRange{80, 159}
	invoiceRange   = typeRange{160, 239}
	signatureRange = typeRange{signatureStart, signatureEnd}

	offerRanges = offerIDRanges

	invreqRanges = []typeRange{
		{0, 159}, signatureRange,
		{experimentalOfferStart, experimentalInvreqEnd},
	}

	invoiceRanges = []typeRange{
		{0, 239}, signatureRange,
		{experimentalOfferStart, math.MaxUint64},
	}

	// staticInvoiceRanges are LDK's: the offer, invoice and signature
	// ranges and the offer's and invoice's experimental ranges. A static
	// invoice carries no invoice_request fields (type 0, 80-159 and
	// 2000000000-2999999999).
	staticInvoiceRanges = []typeRange{
		offerRange, invoiceRange, signatureRange,
		{experimentalOfferStart, experimentalOfferEnd},
		{experimentalInvoiceStart, math.MaxUint64},
	}

	// invreqMirrorRanges are the types an invoice copies from its
	// invoice_request.
	invreqMirrorRanges = []typeRange{
		{0, 159}, {experimentalOfferStart, experimentalInvreqEnd},
	}
)

func inRanges(t uint64, ranges []typeRange) bool {
	for _, r := range ranges {
		if r.contains(t) {
			return true
		}
	}
	return false
}

// Record is one TLV record of a BOLT 12 stream, kept as its wire bytes so
// that unknown fields survive a decode and encode and the Merkle tree hashes
// exactly what was received.
type Record struct {
	// Type is the record's type.
	Type uint64

	// Value is the record's value.
	Value []byte

	// raw is the whole record: BigSize type, BigSize length, value.
	raw []byte

	// typeBytes is the BigSize encoding of Type, a prefix of raw.
	typeBytes []byte
}

// NewRecord builds a record from a type and a value.
func NewRecord(typ uint64, value []byte) Record {
	var (
		buf [8]byte
		b   bytes.Buffer
	)
	// Writes to a bytes.Buffer do not fail.
	_ = tlv.WriteVarInt(&b, typ, &buf)
	typeLen := b.Len()
	_ = tlv.WriteVarInt(&b, uint64(len(value)), &buf)
	b.Write(value)
	raw := b.Bytes()
	return Record{
		Type:      typ,
		Value:     raw[len(raw)-len(value):],
		raw:       raw,
		typeBytes: raw[:typeLen],
	}
}

// Bytes returns the record's wire form.
func (r Record) Bytes() []byte {
	return append([]byte(nil), r.raw...)
}

// parseRecords splits b into records. It is strict: every BigSize must be
// canonical, types strictly ascending, and no record may run past the end.
// The records point into a private copy of b. On an error it also returns
// the records before the bad one.
func parseRecords(b []byte) ([]Record, error) {
	return parseRecordsChecked(b, nil)
}

// parseRecordsChecked is parseRecords calling checkType on each type as soon
// as it is read, before its length: a reader that meets a type it must
// reject stops there, as BOLT 12's readers do.
func parseRecordsChecked(b []byte,
	checkType func(uint64) error) ([]Record, error) {

	b = append([]byte(nil), b...)
	var (
		records []Record
		buf     [8]byte
		off     int
	)
	for off < len(b) {
		r := bytes.NewReader(b[off:])
		typ, err := tlv.ReadVarInt(r, &buf)
		if err != nil {
			return records, tlvErr("type", off, err)
		}
		typeLen := len(b) - off - r.Len()
		if len(records) > 0 && typ <= records[len(records)-1].Type {
			return records, fmt.Errorf("%w: type %d after type %d at "+
				"byte %d: types must ascend", ErrMalformedTLV,
				typ, records[len(records)-1].Type, off)
		}
		if checkType != nil {
			if err := checkType(typ); err != nil {
				return records, err
			}
		}
		length, err := tlv.ReadVarInt(r, &buf)
		if err != nil {
			return records, tlvErr(fmt.Sprintf("length of type %d", typ),
				off, err)
		}
		if length > uint64(r.Len()) {
			return records, fmt.Errorf("%w: type %d at byte %d has "+
				"length %d but only %d bytes follow",
				ErrMalformedTLV, typ, off, length, r.Len())
		}
		start := len(b) - r.Len()
		end := start + int(length)
		records = append(records, Record{
			Type:      typ,
			Value:     b[start:end:end],
			raw:       b[off:end:end],
			typeBytes: b[off : off+typeLen : off+typeLen],
		})
		off = end
	}
	return records, nil
}

func tlvErr(what string, off int, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated %s at byte %d",
			ErrMalformedTLV, what, off)
	}
	return fmt.Errorf("%w: %s at byte %d: %w", ErrMalformedTLV, what,
		off, err)
}

// encodeRecords concatenates records in their order.
func encodeRecords(records []Record) []byte {
	n := 0
	for _, r := range records {
		n += len(r.raw)
	}
	out := make([]byte, 0, n)
	for _, r := range records {
		out = append(out, r.raw...)
	}
	return out
}

// filterRecords returns the records whose type is in ranges.
func filterRecords(records []Record, ranges []typeRange) []Record {
	var out []Record
	for _, r := range records {
		if inRanges(r.Type, ranges) {
			out = append(out, r)
		}
	}
	return out
}

// typeChecker rejects a type outside ranges, and an unknown even one inside
// them. known reports the types the message kind understands.
func typeChecker(ranges []typeRange, known func(uint64) bool) func(uint64) error {
	return func(t uint64) error {
		if !inRanges(t, ranges) {
			return fmt.Errorf("%w: type %d", ErrTypeOutOfRange, t)
		}
		if t%2 == 0 && !known(t) {
			return fmt.Errorf("%w: type %d", ErrUnknownEvenType, t)
		}
		return nil
	}
}
