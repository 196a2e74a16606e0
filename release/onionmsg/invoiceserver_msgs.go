package onionmsg

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/lightningnetwork/lnd/tlv"
)

// The static invoice server messages of LDK v0.2 (rust-lightning v0.2.5,
// lightning/src/onion_message/async_payments.rs lines 22-25 for the types,
// 242-255 for the fields). LDK has no bLIP for them yet; these numbers are
// what its clients (ldk-node's AsyncPaymentsRole::Client) send.
const (
	// OfferPathsRequestType is offer_paths_request, sent by an async
	// recipient over the server's registration paths.
	OfferPathsRequestType uint64 = 75540

	// OfferPathsType is offer_paths, the server's answer: the paths the
	// recipient's offer carries.
	OfferPathsType uint64 = 75542

	// ServeStaticInvoiceType is serve_static_invoice, the recipient's
	// static invoice for the server to persist and serve.
	ServeStaticInvoiceType uint64 = 75544

	// StaticInvoicePersistedType is static_invoice_persisted, the
	// server's confirmation that it persisted the invoice.
	StaticInvoicePersistedType uint64 = 75546

	// InvoiceRequestType is BOLT 12's invoice_request onionmsg TLV.
	InvoiceRequestType uint64 = 64

	// InvoiceType is BOLT 12's invoice onionmsg TLV.
	InvoiceType uint64 = 66

	// InvoiceErrorType is BOLT 12's invoice_error onionmsg TLV.
	InvoiceErrorType uint64 = 68

	// StaticInvoiceType is the onionmsg TLV a static invoice travels in
	// (LDK v0.2 and bolts PR 1149).
	StaticInvoiceType uint64 = 70
)

const (
	// MaxOfferPaths bounds the paths one offer_paths carries. LDK's
	// message router makes at most a handful; an offer with more would
	// not fit a QR code.
	MaxOfferPaths = 16

	// MaxServedInvoiceLen bounds the invoice in serve_static_invoice as
	// the codec reads it: what a 32768-byte onion can carry. The server
	// applies LDK's far smaller MAX_STATIC_INVOICE_SIZE_BYTES (5 KiB).
	MaxServedInvoiceLen = 32768
)

// OfferPathsRequest is offer_paths_request: {0: invoice_slot u16}. LDK
// writes the slot as a fixed two-byte big-endian u16 (util/ser.rs
// impl_writeable_primitive!(u16, 2)), not a truncated integer.
type OfferPathsRequest struct {
	InvoiceSlot uint16
}

// OfferPaths is offer_paths: {0: blinded paths, concatenated without a
// count (LDK's required_vec, i.e. WithoutLength<Vec<_>>); 2:
// paths_absolute_expiry u64, 8 bytes, optional, in seconds since the
// epoch}.
type OfferPaths struct {
	Paths []*BlindedPath

	// PathsAbsoluteExpiry is nil when absent.
	PathsAbsoluteExpiry *uint64
}

// ServeStaticInvoice is serve_static_invoice: {0: the static invoice's TLV
// stream (LDK writes StaticInvoice as WithoutLength(bytes)); 2:
// forward_invoice_request_path, one blinded path}.
type ServeStaticInvoice struct {
	Invoice                   []byte
	ForwardInvoiceRequestPath *BlindedPath
}

// EncodeOfferPathsRequest returns the onionmsg TLV 75540 value.
func EncodeOfferPathsRequest(m OfferPathsRequest) []byte {
	return encodeLDKStruct([]ldkField{{
		typ:   0,
		value: binary.BigEndian.AppendUint16(nil, m.InvoiceSlot),
	}})
}

// DecodeOfferPathsRequest decodes an onionmsg TLV 75540 value. Failures
// wrap ErrBadAsyncMessage.
func DecodeOfferPathsRequest(b []byte) (OfferPathsRequest, error) {
	fields, err := decodeLDKStruct(b, 0)
	if err != nil {
		return OfferPathsRequest{}, err
	}
	slot, ok := fields[0]
	if !ok {
		return OfferPathsRequest{}, fmt.Errorf("%w: no invoice_slot",
			ErrBadAsyncMessage)
	}
	if len(slot) != 2 {
		return OfferPathsRequest{}, fmt.Errorf("%w: invoice_slot of "+
			"%d bytes", ErrBadAsyncMessage, len(slot))
	}
	return OfferPathsRequest{
		InvoiceSlot: binary.BigEndian.Uint16(slot),
	}, nil
}

// EncodeOfferPaths returns the onionmsg TLV 75542 value.
func EncodeOfferPaths(m OfferPaths) ([]byte, error) {
	if len(m.Paths) == 0 || len(m.Paths) > MaxOfferPaths {
		return nil, fmt.Errorf("%w: %d offer paths, want 1..%d",
			ErrBadAsyncMessage, len(m.Paths), MaxOfferPaths)
	}
	var paths []byte
	for i, p := range m.Paths {
		raw, err := p.Bytes()
		if err != nil {
			return nil, fmt.Errorf("offer path %d: %w", i, err)
		}
		paths = append(paths, raw...)
	}
	fields := []ldkField{{typ: 0, value: paths}}
	if m.PathsAbsoluteExpiry != nil {
		fields = append(fields, ldkField{
			typ: 2,
			value: binary.BigEndian.AppendUint64(
				nil, *m.PathsAbsoluteExpiry,
			),
		})
	}
	return encodeLDKStruct(fields), nil
}

// DecodeOfferPaths decodes an onionmsg TLV 75542 value. It wants 1 to
// MaxOfferPaths paths: LDK would read an empty list, but an offer without
// paths to the server is of no use to a recipient. Failures wrap
// ErrBadAsyncMessage.
func DecodeOfferPaths(b []byte) (OfferPaths, error) {
	fields, err := decodeLDKStruct(b, 0, 2)
	if err != nil {
		return OfferPaths{}, err
	}
	raw, ok := fields[0]
	if !ok {
		return OfferPaths{}, fmt.Errorf("%w: no paths",
			ErrBadAsyncMessage)
	}
	var m OfferPaths
	r := bytes.NewReader(raw)
	for r.Len() > 0 {
		if len(m.Paths) == MaxOfferPaths {
			return OfferPaths{}, fmt.Errorf("%w: more than %d "+
				"paths", ErrBadAsyncMessage, MaxOfferPaths)
		}
		p, err := DecodeBlindedPath(r)
		if err != nil {
			return OfferPaths{}, fmt.Errorf("%w: path %d: %w",
				ErrBadAsyncMessage, len(m.Paths), err)
		}
		m.Paths = append(m.Paths, p)
	}
	if len(m.Paths) == 0 {
		return OfferPaths{}, fmt.Errorf("%w: no paths",
			ErrBadAsyncMessage)
	}
	if exp, ok := fields[2]; ok {
		if len(exp) != 8 {
			return OfferPaths{}, fmt.Errorf("%w: "+
				"paths_absolute_expiry of %d bytes",
				ErrBadAsyncMessage, len(exp))
		}
		v := binary.BigEndian.Uint64(exp)
		m.PathsAbsoluteExpiry = &v
	}
	return m, nil
}

// EncodeServeStaticInvoice returns the onionmsg TLV 75544 value.
func EncodeServeStaticInvoice(m ServeStaticInvoice) ([]byte, error) {
	if len(m.Invoice) == 0 || len(m.Invoice) > MaxServedInvoiceLen {
		return nil, fmt.Errorf("%w: invoice of %d bytes",
			ErrBadAsyncMessage, len(m.Invoice))
	}
	if m.ForwardInvoiceRequestPath == nil {
		return nil, fmt.Errorf("%w: no forward_invoice_request_path",
			ErrBadAsyncMessage)
	}
	path, err := m.ForwardInvoiceRequestPath.Bytes()
	if err != nil {
		return nil, fmt.Errorf("forward_invoice_request_path: %w", err)
	}
	return encodeLDKStruct([]ldkField{
		{typ: 0, value: m.Invoice},
		{typ: 2, value: path},
	}), nil
}

// DecodeServeStaticInvoice decodes an onionmsg TLV 75544 value. The
// invoice is returned as bytes, unparsed: the server decodes and checks it
// with package bolt12. Failures wrap ErrBadAsyncMessage.
func DecodeServeStaticInvoice(b []byte) (ServeStaticInvoice, error) {
	fields, err := decodeLDKStruct(b, 0, 2)
	if err != nil {
		return ServeStaticInvoice{}, err
	}
	inv, ok := fields[0]
	if !ok || len(inv) == 0 {
		return ServeStaticInvoice{}, fmt.Errorf("%w: no invoice",
			ErrBadAsyncMessage)
	}
	if len(inv) > MaxServedInvoiceLen {
		return ServeStaticInvoice{}, fmt.Errorf("%w: invoice of %d "+
			"bytes", ErrBadAsyncMessage, len(inv))
	}
	raw, ok := fields[2]
	if !ok {
		return ServeStaticInvoice{}, fmt.Errorf("%w: no "+
			"forward_invoice_request_path", ErrBadAsyncMessage)
	}
	r := bytes.NewReader(raw)
	path, err := DecodeBlindedPath(r)
	if err != nil {
		return ServeStaticInvoice{}, fmt.Errorf("%w: "+
			"forward_invoice_request_path: %w", ErrBadAsyncMessage,
			err)
	}
	if r.Len() != 0 {
		return ServeStaticInvoice{}, fmt.Errorf("%w: %d bytes after "+
			"forward_invoice_request_path", ErrBadAsyncMessage,
			r.Len())
	}
	return ServeStaticInvoice{
		Invoice:                   bytes.Clone(inv),
		ForwardInvoiceRequestPath: path,
	}, nil
}

// EncodeStaticInvoicePersisted returns the onionmsg TLV 75546 value: the
// empty length-prefixed stream, one byte 00.
func EncodeStaticInvoicePersisted() []byte {
	return encodeLDKStruct(nil)
}

// DecodeStaticInvoicePersisted checks an onionmsg TLV 75546 value: an empty
// stream, or one of unknown odd fields only. Failures wrap
// ErrBadAsyncMessage.
func DecodeStaticInvoicePersisted(b []byte) error {
	_, err := decodeLDKStruct(b)
	return err
}

// ldkField is one record of an LDK struct's TLV stream.
type ldkField struct {
	typ   uint64
	value []byte
}

// encodeLDKStruct writes what LDK's impl_writeable_tlv_based! writes
// (util/ser_macros.rs _encode_varint_length_prefixed_tlv!): the BigSize
// length of the TLV stream, then the stream. fields must be in ascending
// type order.
func encodeLDKStruct(fields []ldkField) []byte {
	var stream bytes.Buffer
	var buf [8]byte
	for _, f := range fields {
		// Writes to a bytes.Buffer do not fail.
		_ = tlv.WriteVarInt(&stream, f.typ, &buf)
		_ = tlv.WriteVarInt(&stream, uint64(len(f.value)), &buf)
		stream.Write(f.value)
	}
	var out bytes.Buffer
	out.Grow(9 + stream.Len())
	_ = tlv.WriteVarInt(&out, uint64(stream.Len()), &buf)
	out.Write(stream.Bytes())
	return out.Bytes()
}

// decodeLDKStruct reads what encodeLDKStruct writes, strictly: a canonical
// BigSize length equal to the rest of b (nothing after it), then a
// canonical TLV stream in ascending type order. Known types are returned;
// unknown odd types are skipped (LDK's "it's OK to be odd") and an unknown
// even type fails, as LDK's _decode_tlv_stream_range! does.
func decodeLDKStruct(b []byte, known ...uint64) (map[uint64][]byte, error) {
	r := bytes.NewReader(b)
	var buf [8]byte
	n, err := tlv.ReadVarInt(r, &buf)
	if err != nil {
		return nil, fmt.Errorf("%w: length: %w", ErrBadAsyncMessage,
			err)
	}
	if n != uint64(r.Len()) {
		return nil, fmt.Errorf("%w: length %d, %d bytes follow",
			ErrBadAsyncMessage, n, r.Len())
	}
	stream, err := tlv.NewStream()
	if err != nil {
		return nil, err
	}
	records, err := stream.DecodeWithParsedTypesP2P(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAsyncMessage, err)
	}
	out := make(map[uint64][]byte, len(known))
	for t, v := range records {
		typ := uint64(t)
		isKnown := false
		for _, k := range known {
			if k == typ {
				isKnown = true
				break
			}
		}
		switch {
		case isKnown:
			out[typ] = v
		case typ%2 == 0:
			return nil, fmt.Errorf("%w: unknown even field %d",
				ErrBadAsyncMessage, typ)
		}
	}
	return out, nil
}
