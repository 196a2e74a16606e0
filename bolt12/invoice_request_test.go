package bolt12

import (
	"testing"
	"time"

	"github.com/holdd/holdd/release/onionmsg"
	"github.com/stretchr/testify/require"
)

// ldkInvoiceRequest is the invoice_request LDK's merkle.rs test builds and
// asserts byte for byte (and bolts' signature-test.json lists): Alice's
// offer (key 0x41..), 'A Mathematical Treatise', 100 USD; Bob (0x42..)
// pays, invreq_metadata 8 zero bytes.
const ldkInvoiceRequest = "lnr1qqyqqqqqqqqqqqqqqcp4256ypqqkgzshgysy6ct5dpjk6ct5d93kzmpq23ex2ct5d9ek293pqthvwfzadd7jejes8q9lhc4rvjxd022zv5l44g6qah82ru5rdpnpjkppqvjx204vgdzgsqpvcp4mldl3plscny0rt707gvpdh6ndydfacz43euzqhrurageg3n7kafgsek6gz3e9w52parv8gs2hlxzk95tzeswywffxlkeyhml0hh46kndmwf4m6xma3tkq2lu04qz3slje2rfthc89vss"

// TestInvoiceRequestLikeLDK rebuilds LDK's invoice_request with the builder
// and gets LDK's bytes, signature included: same field encoding, same
// Merkle root, same BIP 340 signing with zero auxiliary randomness.
func TestInvoiceRequestLikeLDK(t *testing.T) {
	offer, err := NewOffer(OfferFields{
		Currency:    ptr("USD"),
		Amount:      ptr(uint64(100)),
		Description: ptr("A Mathematical Treatise"),
		IssuerID:    key(0x41).PubKey(),
	})
	require.NoError(t, err)

	ir, err := NewInvoiceRequest(offer, InvoiceRequestParams{
		PayerKey: key(0x42),
		Metadata: make([]byte, 8),
		Amount:   nil,
	})
	// An offer in USD needs an amount in msat from the payer... except
	// that BOLT 12 lets the offer's amount stand: no invreq_amount.
	require.NoError(t, err)
	require.Equal(t, ldkInvoiceRequest, ir.String())

	// And LDK's bytes decode to the same fields and offer id.
	decoded, err := DecodeInvoiceRequestString(ldkInvoiceRequest)
	require.NoError(t, err)
	require.Equal(t, "A Mathematical Treatise", *decoded.Offer.Description)
	require.Equal(t, "USD", *decoded.Offer.Currency)
	require.Equal(t, uint64(100), *decoded.Offer.Amount)
	require.True(t, key(0x42).PubKey().IsEqual(decoded.Request.PayerID))
	id, err := decoded.OfferID()
	require.NoError(t, err)
	require.Equal(t, offer.ID(), id)
	require.NoError(t, decoded.MatchesOffer(offer))
}

func TestInvoiceRequestBuildDecode(t *testing.T) {
	offer := fullOffer(t)
	ir, err := NewInvoiceRequest(offer, InvoiceRequestParams{
		PayerKey:   key(7),
		Chain:      &testnetChain,
		Amount:     ptr(uint64(5_000_000)),
		Quantity:   ptr(uint64(2)),
		PayerNote:  ptr("thanks"),
		BIP353Name: &BIP353Name{Name: "alice", Domain: "example.com"},
		Extra:      []Record{NewRecord(2_000_000_001, []byte{9})},
	})
	require.NoError(t, err)
	require.Len(t, ir.Request.Metadata, 32)

	decoded, err := DecodeInvoiceRequest(ir.Encode())
	require.NoError(t, err)
	require.Equal(t, ir.Encode(), decoded.Encode())
	require.Equal(t, testnetChain, decoded.Chain())
	require.Equal(t, uint64(2), *decoded.Request.Quantity)
	require.Equal(t, "thanks", *decoded.Request.PayerNote)
	require.Equal(t, "example.com", decoded.Request.BIP353Name.Domain)
	id, err := decoded.OfferID()
	require.NoError(t, err)
	require.Equal(t, offer.ID(), id)
	require.NoError(t, decoded.MatchesOffer(offer))
	require.ErrorIs(t, decoded.MatchesOffer(fullOfferOther(t)),
		ErrMismatch)

	require.NoError(t, decoded.Check(testNow, testnetChain))
	require.ErrorIs(t, decoded.Check(testNow, BitcoinChain), ErrWrongChain)
	require.ErrorIs(t, decoded.Check(testNow.Add(2*time.Hour),
		testnetChain), ErrExpired)

	// Every byte flipped inside the signed records breaks the
	// signature, or the decoding.
	b := decoded.Encode()
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x01
		_, err := DecodeInvoiceRequest(c)
		require.Error(t, err, "byte %d", i)
	}
}

// fullOfferOther is fullOffer with another description.
func fullOfferOther(t *testing.T) *Offer {
	o := fullOffer(t)
	f := o.OfferFields
	f.Description = ptr("tea")
	other, err := NewOffer(f, NewRecord(1_000_000_001, []byte("exp")))
	require.NoError(t, err)
	return other
}

func TestInvoiceRequestReaderErrors(t *testing.T) {
	offer := fullOffer(t)
	good, err := NewInvoiceRequest(offer, InvoiceRequestParams{
		PayerKey: key(7),
		Chain:    &testnetChain,
		Amount:   ptr(uint64(5_000_000)),
		Quantity: ptr(uint64(2)),
	})
	require.NoError(t, err)
	base := withoutSignature(good.Records())
	payer := key(7)

	tests := []struct {
		name  string
		typ   uint64
		value []byte // nil removes the record
		want  error
	}{
		{"no invreq_metadata", TypeInvreqMetadata, nil, ErrMissingField},
		{"no invreq_payer_id", TypeInvreqPayerID, nil, ErrMissingField},
		{"no quantity for an offer with a max", TypeInvreqQuantity,
			nil, ErrMissingField},
		{"quantity above the max", TypeInvreqQuantity,
			encodeTU64(6), ErrValueOutOfRange},
		{"quantity 0", TypeInvreqQuantity, []byte{},
			ErrValueOutOfRange},
		{"chain not the offer's", TypeInvreqChain, BitcoinChain[:],
			ErrWrongChain},
		{"unknown even invreq type", 100, []byte{1},
			ErrUnknownEvenType},
		{"unknown even experimental type", 2_000_000_002, []byte{1},
			ErrUnknownEvenType},
		{"invoice type 161", 161, []byte{1}, ErrTypeOutOfRange},
		{"unknown even signature type 242", 242, make([]byte, 64),
			ErrUnknownEvenType},
		{"unknown odd signature type 241 is carried", 241, []byte{1},
			nil},
		{"experimental invoice type", 3_000_000_001, []byte{1},
			ErrTypeOutOfRange},
		{"unknown even invreq feature", TypeInvreqFeatures,
			[]byte{0x04}, ErrUnknownFeature},
		{"bip353 name with a space", TypeInvreqBIP353Name,
			[]byte{1, ' ', 1, 'a'}, ErrInvalidField},
		{"offer without description but amount",
			TypeOfferDescription, nil, ErrMissingField},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			records := replaceRecord(base, tc.typ, tc.value)
			b := signedStream(t, InvoiceRequestSignatureTag,
				records, payer)
			_, err := DecodeInvoiceRequest(b)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}

	// Signed by someone else.
	b := signedStream(t, InvoiceRequestSignatureTag, base, key(8))
	_, err = DecodeInvoiceRequest(b)
	require.ErrorIs(t, err, ErrBadSignature)
	_, err = DecodeInvoiceRequest(b, SkipSignatureCheck())
	require.NoError(t, err)

	// No signature.
	_, err = DecodeInvoiceRequest(encodeRecords(base))
	require.ErrorIs(t, err, ErrMissingField)

	// Amount below offer_amount x quantity (an offer in msat).
	msatOffer, err := NewOffer(OfferFields{
		Amount: ptr(uint64(1000)), Description: ptr("x"),
		QuantityMax: ptr(uint64(0)), IssuerID: key(1).PubKey(),
	})
	require.NoError(t, err)
	_, err = NewInvoiceRequest(msatOffer, InvoiceRequestParams{
		PayerKey: payer, Amount: ptr(uint64(2999)),
		Quantity: ptr(uint64(3)),
	})
	require.ErrorIs(t, err, ErrValueOutOfRange)
	_, err = NewInvoiceRequest(msatOffer, InvoiceRequestParams{
		PayerKey: payer, Amount: ptr(uint64(3000)),
		Quantity: ptr(uint64(3)),
	})
	require.NoError(t, err)

	// An offer without an amount needs invreq_amount.
	noAmount, err := NewOffer(OfferFields{IssuerID: key(1).PubKey()})
	require.NoError(t, err)
	_, err = NewInvoiceRequest(noAmount, InvoiceRequestParams{
		PayerKey: payer,
	})
	require.ErrorIs(t, err, ErrMissingField)
}

func TestInvoiceRequestWithoutOffer(t *testing.T) {
	records := rawRecords(
		0, []byte{1, 2},
		10, []byte("refund"),
		82, encodeTU64(1000),
		88, key(7).PubKey().SerializeCompressed(),
		90, mustPaths(t, testPath(30, 40)),
	)
	b := signedStream(t, InvoiceRequestSignatureTag, records, key(7))
	ir, err := DecodeInvoiceRequest(b)
	require.NoError(t, err)
	require.Len(t, ir.Request.Paths, 1)

	// offer_quantity_max without an offer.
	records = replaceRecord(records, 20, encodeTU64(1))
	b = signedStream(t, InvoiceRequestSignatureTag, records, key(7))
	_, err = DecodeInvoiceRequest(b)
	require.ErrorIs(t, err, ErrUnexpectedField)
}

func mustPaths(t *testing.T, paths ...*onionmsg.BlindedPath) []byte {
	b, err := encodePaths(paths)
	require.NoError(t, err)
	return b
}
