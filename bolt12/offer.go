package bolt12

import (
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// offerFeatureBits are the offer features holdd knows: none yet.
var offerFeatureBits []int

// invreqFeatureBits are the invoice_request features holdd knows: none yet.
var invreqFeatureBits []int

// invoiceFeatureBits are the invoice features holdd knows: MPP (16/17).
var invoiceFeatureBits = []int{16}

// Offer is a decoded (or built) BOLT 12 offer.
type Offer struct {
	OfferFields

	records []Record
}

// DecodeOffer decodes and checks an offer's TLV stream as a BOLT 12 reader
// must: types only in 1-79 and 1000000000-1999999999, no unknown even type
// or feature, a description with an amount, an amount with a currency, an
// amount above zero, offer_issuer_id or offer_paths, and no empty
// offer_chains. It does not check expiry or chain; see Check.
func DecodeOffer(b []byte) (*Offer, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: offer of %d bytes", ErrTooLarge,
			len(b))
	}
	records, f, err := decodeStream(b, offerRanges)
	if err != nil {
		return nil, err
	}
	if err := checkOfferFields(&f.offer, true); err != nil {
		return nil, err
	}
	return &Offer{OfferFields: f.offer, records: records}, nil
}

// DecodeOfferString decodes an `lno` string.
func DecodeOfferString(s string) (*Offer, error) {
	b, err := decodeStringWithPrefix(s, HRPOffer)
	if err != nil {
		return nil, err
	}
	return DecodeOffer(b)
}

// checkOfferFields applies the offer reader requirements. A static invoice
// and an invoice_request answering an offer apply them too; an
// invoice_request without an offer (requireIssuer false) does not need an
// issuer.
func checkOfferFields(o *OfferFields, requireIssuer bool) error {
	if o.Chains != nil && len(o.Chains) == 0 {
		return fmt.Errorf("%w: offer_chains with no chain",
			ErrInvalidField)
	}
	if err := checkFeatures("offer_features", o.Features,
		offerFeatureBits...); err != nil {

		return err
	}
	switch {
	case o.Currency != nil && o.Amount == nil:
		return fmt.Errorf("%w: offer_amount (offer_currency is set)",
			ErrMissingField)

	case o.Amount != nil && *o.Amount == 0:
		return fmt.Errorf("%w: offer_amount is 0", ErrValueOutOfRange)

	case o.Amount != nil && o.Currency == nil &&
		*o.Amount > maxValueMsat:

		return fmt.Errorf("%w: offer_amount %d msat",
			ErrValueOutOfRange, *o.Amount)

	case o.Amount != nil && o.Description == nil:
		return fmt.Errorf("%w: offer_description (offer_amount is "+
			"set)", ErrMissingField)
	}
	if requireIssuer && o.IssuerID == nil && len(o.Paths) == 0 {
		return fmt.Errorf("%w: offer_issuer_id or offer_paths",
			ErrMissingField)
	}
	return nil
}

// Encode returns the offer's TLV stream.
func (o *Offer) Encode() []byte {
	return encodeRecords(o.records)
}

// String returns the offer as a lowercase `lno` string.
func (o *Offer) String() string {
	return EncodeString(HRPOffer, o.Encode())
}

// Records returns a copy of the offer's TLV records.
func (o *Offer) Records() []Record {
	return append([]Record(nil), o.records...)
}

// ID returns the offer id (LDK's).
func (o *Offer) ID() OfferID {
	// A decoded offer always has a record (an issuer id or paths).
	id, _ := offerID(o.records)
	return id
}

// Check applies the reader requirements that need the caller's context: the
// offer must not have expired at now, and must be for chain.
func (o *Offer) Check(now time.Time, chain chainhash.Hash) error {
	return o.OfferFields.check(now, chain)
}

func (o *OfferFields) check(now time.Time, chain chainhash.Hash) error {
	if err := o.checkExpiry(now); err != nil {
		return err
	}
	if !o.SupportsChain(chain) {
		return fmt.Errorf("%w: offer is not for chain %v",
			ErrWrongChain, chain)
	}
	return nil
}

func (o *OfferFields) checkExpiry(now time.Time) error {
	if o.AbsoluteExpiry == nil {
		return nil
	}
	if uint64(now.Unix()) > *o.AbsoluteExpiry {
		return fmt.Errorf("%w: offer expired at %d", ErrExpired,
			*o.AbsoluteExpiry)
	}
	return nil
}

// SupportsChain reports whether the offer is for chain: one of
// offer_chains, or bitcoin when it names none.
func (o *OfferFields) SupportsChain(chain chainhash.Hash) bool {
	if o.Chains == nil {
		return chain == BitcoinChain
	}
	for _, c := range o.Chains {
		if c == chain {
			return true
		}
	}
	return false
}

// SigningKeys returns the keys an invoice for this offer may be signed with:
// offer_issuer_id if set, else the final blinded node id of each path.
func (o *OfferFields) SigningKeys() []*btcec.PublicKey {
	if o.IssuerID != nil {
		return []*btcec.PublicKey{o.IssuerID}
	}
	var keys []*btcec.PublicKey
	for _, p := range o.Paths {
		if len(p.Hops) > 0 {
			keys = append(keys, p.Hops[len(p.Hops)-1].BlindedNodePub)
		}
	}
	return keys
}

// checkSigningKey is LDK's check_invoice_signing_pubkey: an invoice's node id
// must be the offer's issuer id, or with none, the last blinded node id of
// one of its paths.
func (o *OfferFields) checkSigningKey(nodeID *btcec.PublicKey) error {
	if o.IssuerID == nil && len(o.Paths) == 0 {
		return nil
	}
	for _, k := range o.SigningKeys() {
		if k.IsEqual(nodeID) {
			return nil
		}
	}
	return fmt.Errorf("%w: %x", ErrSigningKeyMismatch,
		nodeID.SerializeCompressed())
}
