package bolt12

import (
	"crypto/rand"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/release/onionmsg"
)

// The builders write records for the typed fields they are given, add the
// caller's extra (odd, unknown) records, sign where the message is signed,
// and then decode the result with the strict decoder: what they return is
// exactly what a reader accepts, or an error.

// recordSet collects the records of a message being built.
type recordSet struct {
	records []Record
	err     error
}

func (s *recordSet) add(typ uint64, value []byte) {
	s.records = append(s.records, NewRecord(typ, value))
}

func (s *recordSet) addPaths(typ uint64, paths []*onionmsg.BlindedPath) {
	if paths == nil {
		return
	}
	b, err := encodePaths(paths)
	if err != nil && s.err == nil {
		s.err = err
	}
	s.add(typ, b)
}

// addExtra adds caller-supplied records: each must be odd, unknown and in
// ranges.
func (s *recordSet) addExtra(extra []Record, ranges []typeRange) {
	for _, r := range extra {
		switch {
		case r.raw == nil:
			s.err = fmt.Errorf("%w: extra record type %d was not "+
				"made with NewRecord", ErrInvalidBuild, r.Type)
		case r.Type%2 == 0 || knownType(r.Type):
			s.err = fmt.Errorf("%w: extra record type %d must be "+
				"odd and unknown", ErrInvalidBuild, r.Type)
		case !inRanges(r.Type, ranges):
			s.err = fmt.Errorf("%w: extra record type %d is outside "+
				"the message's ranges", ErrInvalidBuild, r.Type)
		}
		s.records = append(s.records, r)
	}
}

// sorted returns the records in type order, refusing duplicates.
func (s *recordSet) sorted() ([]Record, error) {
	if s.err != nil {
		return nil, s.err
	}
	out := append([]Record(nil), s.records...)
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Type < out[j].Type
	})
	for i := 1; i < len(out); i++ {
		if out[i].Type == out[i-1].Type {
			return nil, fmt.Errorf("%w: two records of type %d",
				ErrInvalidBuild, out[i].Type)
		}
	}
	return out, nil
}

func (s *recordSet) addOfferFields(o *OfferFields) {
	if o.Chains != nil {
		var b []byte
		for _, c := range o.Chains {
			b = append(b, c[:]...)
		}
		s.add(TypeOfferChains, b)
	}
	if o.Metadata != nil {
		s.add(TypeOfferMetadata, o.Metadata)
	}
	if o.Currency != nil {
		s.add(TypeOfferCurrency, []byte(*o.Currency))
	}
	if o.Amount != nil {
		s.add(TypeOfferAmount, encodeTU64(*o.Amount))
	}
	if o.Description != nil {
		s.add(TypeOfferDescription, []byte(*o.Description))
	}
	if o.Features != nil {
		s.add(TypeOfferFeatures, o.Features)
	}
	if o.AbsoluteExpiry != nil {
		s.add(TypeOfferAbsoluteExpiry, encodeTU64(*o.AbsoluteExpiry))
	}
	s.addPaths(TypeOfferPaths, o.Paths)
	if o.Issuer != nil {
		s.add(TypeOfferIssuer, []byte(*o.Issuer))
	}
	if o.QuantityMax != nil {
		s.add(TypeOfferQuantityMax, encodeTU64(*o.QuantityMax))
	}
	if o.IssuerID != nil {
		s.add(TypeOfferIssuerID, o.IssuerID.SerializeCompressed())
	}
}

// NewOffer builds an offer from its fields and extra odd records in the
// offer ranges (e.g. experimental ones, 1000000000 and up).
func NewOffer(fields OfferFields, extra ...Record) (*Offer, error) {
	var s recordSet
	s.addOfferFields(&fields)
	s.addExtra(extra, offerRanges)
	records, err := s.sorted()
	if err != nil {
		return nil, err
	}
	offer, err := DecodeOffer(encodeRecords(records))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBuild, err)
	}
	return offer, nil
}

// InvoiceRequestParams are what a payer chooses in an invoice_request for
// an offer.
type InvoiceRequestParams struct {
	// PayerKey signs the request; its public key is invreq_payer_id.
	// BOLT 12 wants a transient key per request.
	PayerKey *btcec.PrivateKey

	// Metadata is invreq_metadata; nil draws 32 random bytes.
	Metadata []byte

	// Chain is invreq_chain; nil or bitcoin leaves it out.
	Chain *chainhash.Hash

	// Amount is invreq_amount in msat; required when the offer has no
	// amount.
	Amount *uint64

	// Quantity is invreq_quantity; required when the offer has
	// offer_quantity_max.
	Quantity *uint64

	// PayerNote is invreq_payer_note.
	PayerNote *string

	// Features is invreq_features.
	Features []byte

	// BIP353Name is invreq_bip_353_name, for an offer found by BIP 353.
	BIP353Name *BIP353Name

	// Extra are odd records in 80-159 or 2000000000-2999999999.
	Extra []Record
}

// NewInvoiceRequest builds and signs an invoice_request for offer: it
// copies every offer record (unknown ones too) and adds the payer's fields.
func NewInvoiceRequest(offer *Offer,
	p InvoiceRequestParams) (*InvoiceRequest, error) {

	if offer == nil || p.PayerKey == nil {
		return nil, fmt.Errorf("%w: an offer and a payer key are "+
			"needed", ErrInvalidBuild)
	}
	metadata := p.Metadata
	if metadata == nil {
		metadata = make([]byte, 32)
		if _, err := rand.Read(metadata); err != nil {
			return nil, fmt.Errorf("%w: metadata: %w",
				ErrInvalidBuild, err)
		}
	}

	var s recordSet
	s.records = append(s.records, offer.records...)
	s.add(TypeInvreqMetadata, metadata)
	if p.Chain != nil && *p.Chain != BitcoinChain {
		s.add(TypeInvreqChain, p.Chain[:])
	}
	if p.Amount != nil {
		s.add(TypeInvreqAmount, encodeTU64(*p.Amount))
	}
	if p.Features != nil {
		s.add(TypeInvreqFeatures, p.Features)
	}
	if p.Quantity != nil {
		s.add(TypeInvreqQuantity, encodeTU64(*p.Quantity))
	}
	s.add(TypeInvreqPayerID, p.PayerKey.PubKey().SerializeCompressed())
	if p.PayerNote != nil {
		s.add(TypeInvreqPayerNote, []byte(*p.PayerNote))
	}
	if p.BIP353Name != nil {
		n := p.BIP353Name
		if len(n.Name) > math.MaxUint8 || len(n.Domain) > math.MaxUint8 {
			return nil, fmt.Errorf("%w: bip_353_name too long",
				ErrInvalidBuild)
		}
		b := append([]byte{byte(len(n.Name))}, n.Name...)
		b = append(b, byte(len(n.Domain)))
		s.add(TypeInvreqBIP353Name, append(b, n.Domain...))
	}
	s.addExtra(p.Extra, []typeRange{
		invreqRange, {experimentalInvreqStart, experimentalInvreqEnd},
	})
	records, err := s.sorted()
	if err != nil {
		return nil, err
	}
	records, err = sign(InvoiceRequestSignatureTag, records, p.PayerKey)
	if err != nil {
		return nil, err
	}
	ir, err := DecodeInvoiceRequest(encodeRecords(records))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBuild, err)
	}
	return ir, nil
}

// PaymentPath is one invoice_paths entry with its invoice_blindedpay.
type PaymentPath struct {
	Path    *onionmsg.BlindedPath
	PayInfo BlindedPayInfo
}

// InvoiceParams are the invoice fields a recipient chooses.
type InvoiceParams struct {
	// SigningKey signs the invoice; its public key is invoice_node_id
	// and must be the offer's issuer id (or, without one, the final
	// blinded node id of one of its paths).
	SigningKey *btcec.PrivateKey

	// Paths are the blinded payment paths, most preferred first.
	Paths []PaymentPath

	// CreatedAt is invoice_created_at.
	CreatedAt time.Time

	// RelativeExpiry is invoice_relative_expiry; nil leaves it out (the
	// default applies).
	RelativeExpiry *time.Duration

	// Features is invoice_features.
	Features []byte

	// Extra are odd records in 160-239 or 3000000000 and up.
	Extra []Record
}

func (s *recordSet) addInvoiceFields(p *InvoiceParams) {
	if len(p.Paths) == 0 {
		s.err = fmt.Errorf("%w: no payment paths", ErrInvalidBuild)
		return
	}
	paths := make([]*onionmsg.BlindedPath, len(p.Paths))
	infos := make([]BlindedPayInfo, len(p.Paths))
	for i, pp := range p.Paths {
		paths[i], infos[i] = pp.Path, pp.PayInfo
		if len(pp.PayInfo.Features) > math.MaxUint16 {
			s.err = fmt.Errorf("%w: payinfo %d features too long",
				ErrInvalidBuild, i)
		}
	}
	s.addPaths(TypeInvoicePaths, paths)
	s.add(TypeInvoiceBlindedPay, encodePayInfos(infos))
	if p.CreatedAt.Unix() < 0 {
		s.err = fmt.Errorf("%w: created_at before 1970",
			ErrInvalidBuild)
	}
	s.add(TypeInvoiceCreatedAt, encodeTU64(uint64(p.CreatedAt.Unix())))
	if p.RelativeExpiry != nil {
		secs := *p.RelativeExpiry / time.Second
		if secs < 0 || secs > math.MaxUint32 {
			s.err = fmt.Errorf("%w: relative expiry %v",
				ErrInvalidBuild, *p.RelativeExpiry)
		}
		s.add(TypeInvoiceRelativeExpiry, encodeTU32(uint32(secs)))
	}
	if p.Features != nil {
		s.add(TypeInvoiceFeatures, p.Features)
	}
	if p.SigningKey != nil {
		s.add(TypeInvoiceNodeID,
			p.SigningKey.PubKey().SerializeCompressed())
	}
}

// NewInvoice builds and signs an invoice answering ir: it copies every
// request record (unknown ones too) and adds the invoice fields. The amount
// is invreq_amount, or the offer's amount times the quantity.
func NewInvoice(ir *InvoiceRequest, paymentHash [32]byte,
	p InvoiceParams) (*Invoice, error) {

	if ir == nil || p.SigningKey == nil {
		return nil, fmt.Errorf("%w: a request and a signing key are "+
			"needed", ErrInvalidBuild)
	}
	var amount uint64
	switch {
	case ir.Request.Amount != nil:
		amount = *ir.Request.Amount

	case ir.Offer.Amount != nil && ir.Offer.Currency == nil:
		q := uint64(1)
		if ir.Request.Quantity != nil {
			q = *ir.Request.Quantity
		}
		if q != 0 && *ir.Offer.Amount > math.MaxUint64/q {
			return nil, fmt.Errorf("%w: amount overflows",
				ErrInvalidBuild)
		}
		amount = *ir.Offer.Amount * q

	default:
		return nil, fmt.Errorf("%w: the amount needs a currency "+
			"conversion", ErrInvalidBuild)
	}

	var s recordSet
	for _, r := range ir.records {
		if inRanges(r.Type, invreqMirrorRanges) {
			s.records = append(s.records, r)
		}
	}
	s.addInvoiceFields(&p)
	s.add(TypeInvoicePaymentHash, paymentHash[:])
	s.add(TypeInvoiceAmount, encodeTU64(amount))
	s.addExtra(p.Extra, []typeRange{
		invoiceRange, {experimentalInvoiceStart, math.MaxUint64},
	})
	records, err := s.sorted()
	if err != nil {
		return nil, err
	}
	records, err = sign(InvoiceSignatureTag, records, p.SigningKey)
	if err != nil {
		return nil, err
	}
	inv, err := DecodeInvoice(encodeRecords(records))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBuild, err)
	}
	return inv, nil
}

// StaticInvoiceParams are the fields of a static invoice for an offer.
type StaticInvoiceParams struct {
	InvoiceParams

	// MessagePaths are the held-HTLC message paths to the recipient
	// (where the payer sends held_htlc_available).
	MessagePaths []*onionmsg.BlindedPath

	// MessagePathsType is where they go: 0 or 236 (LDK), or 178 (the
	// draft spec).
	MessagePathsType uint64
}

// NewStaticInvoice builds and signs a static invoice for offer, as LDK
// v0.2's StaticInvoiceBuilder does: the offer's records mirrored, at most
// one offer chain, offer paths, payment and message paths, no payment hash
// and no amount, the offer unexpired at CreatedAt, and at most
// MaxStaticInvoiceSize bytes.
func NewStaticInvoice(offer *Offer,
	p StaticInvoiceParams) (*StaticInvoice, error) {

	if offer == nil || p.SigningKey == nil {
		return nil, fmt.Errorf("%w: an offer and a signing key are "+
			"needed", ErrInvalidBuild)
	}
	if len(p.MessagePaths) == 0 {
		return nil, fmt.Errorf("%w: no message paths", ErrInvalidBuild)
	}
	if err := offer.checkExpiry(p.CreatedAt); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBuild, err)
	}
	pathsType := p.MessagePathsType
	switch pathsType {
	case 0:
		pathsType = TypeStaticInvoiceMessagePaths
	case TypeStaticInvoiceMessagePaths, TypeStaticInvoiceMessagePathsDraft:
	default:
		return nil, fmt.Errorf("%w: message paths type %d",
			ErrInvalidBuild, pathsType)
	}

	var s recordSet
	s.records = append(s.records, offer.records...)
	s.addInvoiceFields(&p.InvoiceParams)
	s.addPaths(pathsType, p.MessagePaths)
	s.addExtra(p.Extra, []typeRange{
		invoiceRange, {experimentalInvoiceStart, math.MaxUint64},
	})
	records, err := s.sorted()
	if err != nil {
		return nil, err
	}
	records, err = sign(StaticInvoiceSignatureTag, records, p.SigningKey)
	if err != nil {
		return nil, err
	}
	si, err := DecodeStaticInvoice(encodeRecords(records))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBuild, err)
	}
	return si, nil
}
