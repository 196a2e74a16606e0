package bolt12

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/tlv"
)

// TLV types of the offer fields.
const (
	TypeOfferChains         = 2
	TypeOfferMetadata       = 4
	TypeOfferCurrency       = 6
	TypeOfferAmount         = 8
	TypeOfferDescription    = 10
	TypeOfferFeatures       = 12
	TypeOfferAbsoluteExpiry = 14
	TypeOfferPaths          = 16
	TypeOfferIssuer         = 18
	TypeOfferQuantityMax    = 20
	TypeOfferIssuerID       = 22
)

// TLV types of the invoice_request fields.
const (
	TypeInvreqMetadata   = 0
	TypeInvreqChain      = 80
	TypeInvreqAmount     = 82
	TypeInvreqFeatures   = 84
	TypeInvreqQuantity   = 86
	TypeInvreqPayerID    = 88
	TypeInvreqPayerNote  = 89
	TypeInvreqPaths      = 90
	TypeInvreqBIP353Name = 91
)

// TLV types of the invoice fields.
const (
	TypeInvoicePaths          = 160
	TypeInvoiceBlindedPay     = 162
	TypeInvoiceCreatedAt      = 164
	TypeInvoiceRelativeExpiry = 166
	TypeInvoicePaymentHash    = 168
	TypeInvoiceAmount         = 170
	TypeInvoiceFallbacks      = 172
	TypeInvoiceFeatures       = 174
	TypeInvoiceNodeID         = 176

	// TypeStaticInvoiceMessagePathsDraft is where the draft spec (bolts
	// PR 1149) puts a static invoice's held-HTLC message paths.
	TypeStaticInvoiceMessagePathsDraft = 178

	// TypeStaticInvoiceMessagePaths is where LDK v0.2 puts them; holdd
	// writes this one.
	TypeStaticInvoiceMessagePaths = 236

	// TypeSignature is the signature of every signed message.
	TypeSignature = signatureType
)

// maxValueMsat is the most millisatoshis an amount may name: 21 million
// bitcoin, as LDK bounds it.
const maxValueMsat = 21_000_000 * 100_000_000 * 1000

// BitcoinChain is the bitcoin mainnet chain hash, implied when a message
// names no chain.
var BitcoinChain = *chaincfg.MainNetParams.GenesisHash

// OfferFields are the fields an offer defines (types 1-79); invoice
// requests, invoices and static invoices mirror them. A nil pointer or slice
// is an absent field; a present field with an empty value decodes to a
// non-nil empty slice.
type OfferFields struct {
	Chains         []chainhash.Hash
	Metadata       []byte
	Currency       *string
	Amount         *uint64
	Description    *string
	Features       []byte
	AbsoluteExpiry *uint64
	Paths          []*onionmsg.BlindedPath
	Issuer         *string
	QuantityMax    *uint64
	IssuerID       *btcec.PublicKey
}

// BIP353Name is invreq_bip_353_name.
type BIP353Name struct {
	Name   string
	Domain string
}

// InvoiceRequestFields are the fields an invoice_request adds (type 0 and
// 80-159); invoices mirror them.
type InvoiceRequestFields struct {
	Metadata   []byte
	Chain      *chainhash.Hash
	Amount     *uint64
	Features   []byte
	Quantity   *uint64
	PayerID    *btcec.PublicKey
	PayerNote  *string
	Paths      []*onionmsg.BlindedPath
	BIP353Name *BIP353Name
}

// BlindedPayInfo is the blinded_payinfo of one invoice path.
type BlindedPayInfo struct {
	FeeBaseMsat               uint32
	FeeProportionalMillionths uint32
	CltvExpiryDelta           uint16
	HtlcMinimumMsat           uint64
	HtlcMaximumMsat           uint64
	Features                  []byte
}

// FallbackAddress is an on-chain fallback_address.
type FallbackAddress struct {
	Version uint8
	Address []byte
}

// InvoiceFields are the fields an invoice or static invoice adds (160-239).
type InvoiceFields struct {
	Paths          []*onionmsg.BlindedPath
	BlindedPay     []BlindedPayInfo
	CreatedAt      *uint64
	RelativeExpiry *uint32
	PaymentHash    *[32]byte
	Amount         *uint64
	Fallbacks      []FallbackAddress
	Features       []byte
	NodeID         *btcec.PublicKey

	// MessagePaths are a static invoice's held-HTLC message paths, read
	// from type 236 (LDK) or 178 (draft spec); MessagePathsType says
	// which.
	MessagePaths     []*onionmsg.BlindedPath
	MessagePathsType uint64
}

// fields is every known field of every BOLT 12 message, as decoded from
// one stream.
type fields struct {
	offer     OfferFields
	invreq    InvoiceRequestFields
	invoice   InvoiceFields
	signature []byte
}

// KnownType reports whether holdd understands t in any BOLT 12 message.
func KnownType(t uint64) bool {
	return knownType(t)
}

func knownType(t uint64) bool {
	switch t {
	case TypeOfferChains, TypeOfferMetadata, TypeOfferCurrency,
		TypeOfferAmount, TypeOfferDescription, TypeOfferFeatures,
		TypeOfferAbsoluteExpiry, TypeOfferPaths, TypeOfferIssuer,
		TypeOfferQuantityMax, TypeOfferIssuerID,

		TypeInvreqMetadata, TypeInvreqChain, TypeInvreqAmount,
		TypeInvreqFeatures, TypeInvreqQuantity, TypeInvreqPayerID,
		TypeInvreqPayerNote, TypeInvreqPaths, TypeInvreqBIP353Name,

		TypeInvoicePaths, TypeInvoiceBlindedPay, TypeInvoiceCreatedAt,
		TypeInvoiceRelativeExpiry, TypeInvoicePaymentHash,
		TypeInvoiceAmount, TypeInvoiceFallbacks, TypeInvoiceFeatures,
		TypeInvoiceNodeID, TypeStaticInvoiceMessagePathsDraft,
		TypeStaticInvoiceMessagePaths,

		TypeSignature:

		return true
	}
	return false
}

// decodeStream parses b as a TLV stream of a message kind allowed ranges
// and decodes every known field, in stream order: the first bad record,
// field or type is the error, as for BOLT 12's reference readers.
func decodeStream(b []byte, ranges []typeRange) ([]Record, *fields, error) {
	records, parseErr := parseRecordsChecked(
		b, typeChecker(ranges, knownType),
	)
	var f fields
	for _, r := range records {
		if err := f.decode(r); err != nil {
			return nil, nil, fmt.Errorf("%w: type %d: %w",
				ErrInvalidField, r.Type, err)
		}
	}
	if parseErr != nil {
		return nil, nil, parseErr
	}
	return records, &f, nil
}

func (f *fields) decode(r Record) error {
	v := r.Value
	var err error
	switch r.Type {
	case TypeOfferChains:
		f.offer.Chains, err = decodeChains(v)
	case TypeOfferMetadata:
		f.offer.Metadata = clone(v)
	case TypeOfferCurrency:
		f.offer.Currency, err = decodeCurrency(v)
	case TypeOfferAmount:
		f.offer.Amount, err = decodeTU64(v)
	case TypeOfferDescription:
		f.offer.Description, err = decodeUTF8(v)
	case TypeOfferFeatures:
		f.offer.Features = clone(v)
	case TypeOfferAbsoluteExpiry:
		f.offer.AbsoluteExpiry, err = decodeTU64(v)
	case TypeOfferPaths:
		f.offer.Paths, err = decodePaths(v)
	case TypeOfferIssuer:
		f.offer.Issuer, err = decodeUTF8(v)
	case TypeOfferQuantityMax:
		f.offer.QuantityMax, err = decodeTU64(v)
	case TypeOfferIssuerID:
		f.offer.IssuerID, err = decodePoint(v)

	case TypeInvreqMetadata:
		f.invreq.Metadata = clone(v)
	case TypeInvreqChain:
		f.invreq.Chain, err = decodeChain(v)
	case TypeInvreqAmount:
		f.invreq.Amount, err = decodeTU64(v)
	case TypeInvreqFeatures:
		f.invreq.Features = clone(v)
	case TypeInvreqQuantity:
		f.invreq.Quantity, err = decodeTU64(v)
	case TypeInvreqPayerID:
		f.invreq.PayerID, err = decodePoint(v)
	case TypeInvreqPayerNote:
		f.invreq.PayerNote, err = decodeUTF8(v)
	case TypeInvreqPaths:
		f.invreq.Paths, err = decodePaths(v)
	case TypeInvreqBIP353Name:
		f.invreq.BIP353Name, err = decodeBIP353(v)

	case TypeInvoicePaths:
		f.invoice.Paths, err = decodePaths(v)
	case TypeInvoiceBlindedPay:
		f.invoice.BlindedPay, err = decodePayInfos(v)
	case TypeInvoiceCreatedAt:
		f.invoice.CreatedAt, err = decodeTU64(v)
	case TypeInvoiceRelativeExpiry:
		f.invoice.RelativeExpiry, err = decodeTU32(v)
	case TypeInvoicePaymentHash:
		if len(v) != 32 {
			return fmt.Errorf("payment hash of %d bytes", len(v))
		}
		var h [32]byte
		copy(h[:], v)
		f.invoice.PaymentHash = &h
	case TypeInvoiceAmount:
		f.invoice.Amount, err = decodeTU64(v)
	case TypeInvoiceFallbacks:
		f.invoice.Fallbacks, err = decodeFallbacks(v)
	case TypeInvoiceFeatures:
		f.invoice.Features = clone(v)
	case TypeInvoiceNodeID:
		f.invoice.NodeID, err = decodePoint(v)
	case TypeStaticInvoiceMessagePathsDraft, TypeStaticInvoiceMessagePaths:
		if f.invoice.MessagePaths != nil {
			return fmt.Errorf("message paths under both 178 and 236")
		}
		f.invoice.MessagePaths, err = decodePaths(v)
		f.invoice.MessagePathsType = r.Type

	case TypeSignature:
		if len(v) != 64 {
			return fmt.Errorf("signature of %d bytes", len(v))
		}
		f.signature = clone(v)
	}
	return err
}

func clone(b []byte) []byte {
	return append([]byte{}, b...)
}

func decodeTU64(v []byte) (*uint64, error) {
	var (
		x   uint64
		buf [8]byte
	)
	err := tlv.DTUint64(bytes.NewReader(v), &x, &buf, uint64(len(v)))
	if err != nil {
		return nil, err
	}
	return &x, nil
}

func decodeTU32(v []byte) (*uint32, error) {
	var (
		x   uint32
		buf [8]byte
	)
	err := tlv.DTUint32(bytes.NewReader(v), &x, &buf, uint64(len(v)))
	if err != nil {
		return nil, err
	}
	return &x, nil
}

func decodeUTF8(v []byte) (*string, error) {
	if !utf8.Valid(v) {
		return nil, fmt.Errorf("not UTF-8")
	}
	s := string(v)
	return &s, nil
}

// decodeCurrency reads an ISO 4217 code: three uppercase ASCII letters.
func decodeCurrency(v []byte) (*string, error) {
	if !utf8.Valid(v) {
		return nil, fmt.Errorf("currency is not UTF-8")
	}
	if len(v) != 3 {
		return nil, fmt.Errorf("currency of %d bytes", len(v))
	}
	for _, c := range v {
		if c < 'A' || c > 'Z' {
			return nil, fmt.Errorf("currency %q is not an ISO "+
				"4217 code", v)
		}
	}
	s := string(v)
	return &s, nil
}

func decodePoint(v []byte) (*btcec.PublicKey, error) {
	if len(v) != btcec.PubKeyBytesLenCompressed {
		return nil, fmt.Errorf("point of %d bytes", len(v))
	}
	return btcec.ParsePubKey(v)
}

func decodeChain(v []byte) (*chainhash.Hash, error) {
	if len(v) != chainhash.HashSize {
		return nil, fmt.Errorf("chain hash of %d bytes", len(v))
	}
	var h chainhash.Hash
	copy(h[:], v)
	return &h, nil
}

func decodeChains(v []byte) ([]chainhash.Hash, error) {
	if len(v)%chainhash.HashSize != 0 {
		return nil, fmt.Errorf("%d bytes is not a list of chain "+
			"hashes", len(v))
	}
	out := make([]chainhash.Hash, len(v)/chainhash.HashSize)
	for i := range out {
		copy(out[i][:], v[i*chainhash.HashSize:])
	}
	return out, nil
}

// decodePaths reads blinded paths back to back until v ends.
func decodePaths(v []byte) ([]*onionmsg.BlindedPath, error) {
	r := bytes.NewReader(v)
	out := []*onionmsg.BlindedPath{}
	for r.Len() > 0 {
		p, err := onionmsg.DecodeBlindedPath(r)
		if err != nil {
			return nil, fmt.Errorf("path %d: %w", len(out), err)
		}
		out = append(out, p)
	}
	return out, nil
}

func decodePayInfos(v []byte) ([]BlindedPayInfo, error) {
	r := bytes.NewReader(v)
	out := []BlindedPayInfo{}
	for r.Len() > 0 {
		var (
			p     BlindedPayInfo
			fixed [4 + 4 + 2 + 8 + 8 + 2]byte
		)
		if _, err := io.ReadFull(r, fixed[:]); err != nil {
			return nil, fmt.Errorf("payinfo %d truncated", len(out))
		}
		p.FeeBaseMsat = binary.BigEndian.Uint32(fixed[0:])
		p.FeeProportionalMillionths = binary.BigEndian.Uint32(fixed[4:])
		p.CltvExpiryDelta = binary.BigEndian.Uint16(fixed[8:])
		p.HtlcMinimumMsat = binary.BigEndian.Uint64(fixed[10:])
		p.HtlcMaximumMsat = binary.BigEndian.Uint64(fixed[18:])
		flen := int(binary.BigEndian.Uint16(fixed[26:]))
		if flen > r.Len() {
			return nil, fmt.Errorf("payinfo %d features truncated",
				len(out))
		}
		p.Features = make([]byte, flen)
		_, _ = io.ReadFull(r, p.Features)
		out = append(out, p)
	}
	return out, nil
}

func encodePayInfos(infos []BlindedPayInfo) []byte {
	var b []byte
	for _, p := range infos {
		b = binary.BigEndian.AppendUint32(b, p.FeeBaseMsat)
		b = binary.BigEndian.AppendUint32(b, p.FeeProportionalMillionths)
		b = binary.BigEndian.AppendUint16(b, p.CltvExpiryDelta)
		b = binary.BigEndian.AppendUint64(b, p.HtlcMinimumMsat)
		b = binary.BigEndian.AppendUint64(b, p.HtlcMaximumMsat)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.Features)))
		b = append(b, p.Features...)
	}
	return b
}

func decodeFallbacks(v []byte) ([]FallbackAddress, error) {
	out := []FallbackAddress{}
	for len(v) > 0 {
		if len(v) < 3 {
			return nil, fmt.Errorf("fallback %d truncated", len(out))
		}
		l := int(binary.BigEndian.Uint16(v[1:3]))
		if len(v) < 3+l {
			return nil, fmt.Errorf("fallback %d truncated", len(out))
		}
		out = append(out, FallbackAddress{
			Version: v[0], Address: clone(v[3 : 3+l]),
		})
		v = v[3+l:]
	}
	return out, nil
}

func decodeBIP353(v []byte) (*BIP353Name, error) {
	readPart := func() (string, error) {
		if len(v) < 1 || len(v) < 1+int(v[0]) {
			return "", fmt.Errorf("bip_353_name truncated")
		}
		s := v[1 : 1+int(v[0])]
		v = v[1+int(v[0]):]
		for _, c := range s {
			ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' ||
				c >= 'A' && c <= 'Z' || c == '-' || c == '_' ||
				c == '.'
			if !ok {
				return "", fmt.Errorf("bip_353_name byte %#x",
					c)
			}
		}
		return string(s), nil
	}
	name, err := readPart()
	if err != nil {
		return nil, err
	}
	domain, err := readPart()
	if err != nil {
		return nil, err
	}
	if len(v) != 0 {
		return nil, fmt.Errorf("%d bytes after bip_353_name", len(v))
	}
	return &BIP353Name{Name: name, Domain: domain}, nil
}

// encodeTU64 is a tu64 value.
func encodeTU64(x uint64) []byte {
	var (
		b   bytes.Buffer
		buf [8]byte
	)
	_ = tlv.ETUint64T(&b, x, &buf)
	return append([]byte{}, b.Bytes()...)
}

func encodeTU32(x uint32) []byte {
	var (
		b   bytes.Buffer
		buf [8]byte
	)
	_ = tlv.ETUint32T(&b, x, &buf)
	return append([]byte{}, b.Bytes()...)
}

func encodePaths(paths []*onionmsg.BlindedPath) ([]byte, error) {
	var b []byte
	for i, p := range paths {
		pb, err := p.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: path %d: %w", ErrInvalidBuild,
				i, err)
		}
		b = append(b, pb...)
	}
	return b, nil
}

// checkFeatures rejects a feature bitmap with an unknown even bit set. known
// lists the bits holdd understands (both of each pair).
func checkFeatures(name string, features []byte, known ...int) error {
	n := len(features)
	for i, byt := range features {
		for bit := 0; bit < 8; bit++ {
			if byt&(1<<bit) == 0 {
				continue
			}
			idx := (n-1-i)*8 + bit
			if idx%2 != 0 {
				continue
			}
			isKnown := false
			for _, k := range known {
				if k == idx {
					isKnown = true
				}
			}
			if !isKnown {
				return fmt.Errorf("%w: %s bit %d", ErrUnknownFeature,
					name, idx)
			}
		}
	}
	return nil
}
