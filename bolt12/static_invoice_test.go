package bolt12

import (
	"bytes"
	"testing"
	"time"

	"github.com/holdd/holdd/release/onionmsg"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/stretchr/testify/require"
)

// asyncOffer is an offer as LDK's async recipients make them: no amount,
// paths to the static invoice server, a per-offer signing key (key 3).
func asyncOffer(t *testing.T) *Offer {
	t.Helper()
	offer, err := NewOffer(OfferFields{
		Description: ptr("async"),
		Paths:       []*onionmsg.BlindedPath{testPath(10, 20)},
		IssuerID:    key(3).PubKey(),
	})
	require.NoError(t, err)
	return offer
}

func staticParams() StaticInvoiceParams {
	return StaticInvoiceParams{
		InvoiceParams: InvoiceParams{
			SigningKey: key(3),
			Paths: []PaymentPath{{
				Path: testPath(50, 60),
				PayInfo: BlindedPayInfo{
					FeeBaseMsat:               1000,
					FeeProportionalMillionths: 100,
					CltvExpiryDelta:           144,
					HtlcMinimumMsat:           1,
					HtlcMaximumMsat:           1_000_000_000,
				},
			}},
			CreatedAt: testNow,
		},
		MessagePaths: []*onionmsg.BlindedPath{
			testPath(70, 80), testPath(90, 100),
		},
	}
}

func TestStaticInvoiceBuildDecode(t *testing.T) {
	offer := asyncOffer(t)
	si, err := NewStaticInvoice(offer, staticParams())
	require.NoError(t, err)

	decoded, err := DecodeStaticInvoiceString(si.String())
	require.NoError(t, err)
	require.Equal(t, si.Encode(), decoded.Encode())
	require.NoError(t, decoded.VerifySignature())
	require.NoError(t, decoded.IsFromOffer(offer))
	id, err := decoded.OfferID()
	require.NoError(t, err)
	require.Equal(t, offer.ID(), id)

	// LDK's layout: offer types, then 160, 162, 164, 176, 236, 240.
	var types []uint64
	for _, r := range decoded.Records() {
		types = append(types, r.Type)
	}
	require.Equal(t, []uint64{10, 16, 22, 160, 162, 164, 176, 236, 240},
		types)
	require.Len(t, decoded.Invoice.MessagePaths, 2)
	require.Equal(t, uint64(TypeStaticInvoiceMessagePaths),
		decoded.Invoice.MessagePathsType)
	require.Equal(t, uint16(144),
		decoded.Invoice.BlindedPay[0].CltvExpiryDelta)
	require.Nil(t, decoded.Invoice.PaymentHash)
	require.Nil(t, decoded.Invoice.Amount)

	// The signature is over the static_invoice tag, not invoice's.
	err = verifySignature(InvoiceSignatureTag, decoded.Records(),
		decoded.Signature, key(3).PubKey())
	require.ErrorIs(t, err, ErrBadSignature)

	// Expiry: 14 days by default.
	require.Equal(t, uint64(testNow.Unix())+14*24*3600, decoded.ExpiresAt())
	require.NoError(t, decoded.Check(testNow.Add(14*24*time.Hour),
		BitcoinChain))
	require.ErrorIs(t, decoded.Check(testNow.Add(14*24*time.Hour+
		time.Second), BitcoinChain), ErrExpired)
	require.ErrorIs(t, decoded.Check(testNow, testnetChain), ErrWrongChain)

	// Draft spec's 178 reads the same.
	p := staticParams()
	p.MessagePathsType = TypeStaticInvoiceMessagePathsDraft
	p.RelativeExpiry = ptr(time.Hour)
	draft, err := NewStaticInvoice(offer, p)
	require.NoError(t, err)
	require.Equal(t, uint64(178), draft.Invoice.MessagePathsType)
	require.Equal(t, uint64(testNow.Unix())+3600, draft.ExpiresAt())
}

func TestStaticInvoiceReaderErrors(t *testing.T) {
	offer := asyncOffer(t)
	si, err := NewStaticInvoice(offer, staticParams())
	require.NoError(t, err)
	base := withoutSignature(si.Records())
	signer := key(3)

	tests := []struct {
		name  string
		typ   uint64
		value []byte
		want  error
	}{
		{"payment hash", TypeInvoicePaymentHash, make([]byte, 32),
			ErrUnexpectedField},
		{"amount", TypeInvoiceAmount, encodeTU64(1000),
			ErrUnexpectedField},
		{"invreq_metadata", TypeInvreqMetadata, []byte{1},
			ErrTypeOutOfRange},
		{"invreq_payer_id", TypeInvreqPayerID,
			key(7).PubKey().SerializeCompressed(), ErrTypeOutOfRange},
		{"experimental invreq type", 2_000_000_001, []byte{1},
			ErrTypeOutOfRange},
		{"no message paths", TypeStaticInvoiceMessagePaths, nil,
			ErrMissingField},
		{"message paths under 178 and 236",
			TypeStaticInvoiceMessagePathsDraft,
			mustPaths(t, testPath(70, 80)), ErrInvalidField},
		{"no payment paths", TypeInvoicePaths, nil, ErrMissingField},
		{"no blindedpay", TypeInvoiceBlindedPay, nil, ErrMissingField},
		{"two blindedpay for one path", TypeInvoiceBlindedPay,
			encodePayInfos(make([]BlindedPayInfo, 2)),
			ErrInvalidField},
		{"only path's payinfo has an unknown even feature",
			TypeInvoiceBlindedPay, encodePayInfos([]BlindedPayInfo{{
				Features: []byte{0x01},
			}}), ErrUnknownFeature},
		{"payinfo with an odd feature", TypeInvoiceBlindedPay,
			encodePayInfos([]BlindedPayInfo{{
				Features: []byte{0x02},
			}}), nil},
		{"no created_at", TypeInvoiceCreatedAt, nil, ErrMissingField},
		{"no node_id", TypeInvoiceNodeID, nil, ErrMissingField},
		{"node id not the issuer", TypeInvoiceNodeID,
			key(4).PubKey().SerializeCompressed(),
			ErrSigningKeyMismatch},
		{"no offer paths", TypeOfferPaths, nil, ErrMissingField},
		{"two chains", TypeOfferChains,
			append(BitcoinChain[:], testnetChain[:]...),
			ErrWrongChain},
		{"unknown even invoice type", 200, []byte{1},
			ErrUnknownEvenType},
		{"unknown even experimental invoice type", 3_000_000_002,
			[]byte{1}, ErrUnknownEvenType},
		{"odd experimental invoice type is carried", 3_000_000_001,
			[]byte{1}, nil},
		{"odd type 1001 between the ranges", 1001, []byte{1},
			ErrTypeOutOfRange},
		{"unknown even feature", TypeInvoiceFeatures, []byte{0x01},
			ErrUnknownFeature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			records := replaceRecord(base, tc.typ, tc.value)
			b := signedStream(t, StaticInvoiceSignatureTag, records,
				signer)
			_, err := DecodeStaticInvoice(b)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}

	// Without an issuer id, the node id may be a path's final blinded
	// node (LDK's check_invoice_signing_pubkey).
	records := replaceRecord(base, TypeOfferIssuerID, nil)
	records = replaceRecord(records, TypeInvoiceNodeID,
		key(20).PubKey().SerializeCompressed())
	b := signedStream(t, StaticInvoiceSignatureTag, records, key(20))
	_, err = DecodeStaticInvoice(b)
	require.NoError(t, err)

	// Over 5 KiB: refused before parsing; and the builder will not
	// write one.
	_, err = DecodeStaticInvoice(make([]byte, MaxStaticInvoiceSize+1))
	require.ErrorIs(t, err, ErrTooLarge)
	p := staticParams()
	for i := 0; i < 40; i++ {
		p.MessagePaths = append(p.MessagePaths, bigPath())
	}
	_, err = NewStaticInvoice(offer, p)
	require.ErrorIs(t, err, ErrTooLarge)

	// An expired offer gets no static invoice.
	expiring, err := NewOffer(OfferFields{
		AbsoluteExpiry: ptr(uint64(testNow.Unix() - 1)),
		Paths:          []*onionmsg.BlindedPath{testPath(10, 20)},
		IssuerID:       key(3).PubKey(),
	})
	require.NoError(t, err)
	_, err = NewStaticInvoice(expiring, staticParams())
	require.ErrorIs(t, err, ErrExpired)

	// The builder checks the signing key too.
	p = staticParams()
	p.SigningKey = key(4)
	_, err = NewStaticInvoice(offer, p)
	require.ErrorIs(t, err, ErrSigningKeyMismatch)
}

func bigPath() *onionmsg.BlindedPath {
	p := testPath(110, 120)
	p.Hops[0] = &sphinx.BlindedHopInfo{
		BlindedNodePub: key(112).PubKey(),
		CipherText:     bytes.Repeat([]byte{0xcc}, 100),
	}
	return p
}

func TestInvoiceBuildDecode(t *testing.T) {
	offer := fullOffer(t)
	ir, err := NewInvoiceRequest(offer, InvoiceRequestParams{
		PayerKey: key(7), Chain: &testnetChain,
		Amount: ptr(uint64(5_000_000)), Quantity: ptr(uint64(2)),
	})
	require.NoError(t, err)
	hash := [32]byte{1, 2, 3}
	inv, err := NewInvoice(ir, hash, InvoiceParams{
		SigningKey: key(1),
		Paths:      staticParams().Paths,
		CreatedAt:  testNow,
		Features:   []byte{0x02, 0x00, 0x00}, // MPP optional (17)
	})
	require.NoError(t, err)

	decoded, err := DecodeInvoiceString(inv.String())
	require.NoError(t, err)
	require.Equal(t, inv.Encode(), decoded.Encode())
	require.Equal(t, uint64(5_000_000), *decoded.Invoice.Amount)
	require.Equal(t, hash, *decoded.Invoice.PaymentHash)
	require.NoError(t, decoded.MatchesInvoiceRequest(ir))
	id, err := decoded.OfferID()
	require.NoError(t, err)
	require.Equal(t, offer.ID(), id)
	require.Equal(t, uint64(testNow.Unix())+7200, decoded.ExpiresAt())
	require.NoError(t, decoded.Check(testNow, testnetChain))
	require.ErrorIs(t, decoded.Check(testNow.Add(7201*time.Second),
		testnetChain), ErrExpired)

	// A static invoice is not an invoice, nor the other way round.
	_, err = DecodeStaticInvoice(inv.Encode())
	require.Error(t, err)
	si, err := NewStaticInvoice(asyncOffer(t), staticParams())
	require.NoError(t, err)
	_, err = DecodeInvoice(si.Encode())
	require.Error(t, err)

	base := withoutSignature(inv.Records())
	tests := []struct {
		name  string
		typ   uint64
		value []byte
		want  error
	}{
		{"no amount", TypeInvoiceAmount, nil, ErrMissingField},
		{"amount not invreq_amount", TypeInvoiceAmount,
			encodeTU64(1), ErrMismatch},
		{"no payment hash", TypeInvoicePaymentHash, nil,
			ErrMissingField},
		{"short payment hash", TypeInvoicePaymentHash, []byte{1},
			ErrInvalidField},
		{"message paths", TypeStaticInvoiceMessagePaths,
			mustPaths(t, testPath(70, 80)), ErrUnexpectedField},
		{"MPP compulsory is known", TypeInvoiceFeatures,
			[]byte{0x01, 0x00, 0x00}, nil},
		{"unknown even feature 18", TypeInvoiceFeatures,
			[]byte{0x04, 0x00, 0x00}, ErrUnknownFeature},
		{"type 1001", 1001, []byte{1}, ErrTypeOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			records := replaceRecord(base, tc.typ, tc.value)
			b := signedStream(t, InvoiceSignatureTag, records, key(1))
			_, err := DecodeInvoice(b)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestInvoiceError(t *testing.T) {
	ie, err := NewInvoiceError("bad amount", ptr(uint64(82)),
		encodeTU64(5000))
	require.NoError(t, err)
	decoded, err := DecodeInvoiceError(ie.Encode())
	require.NoError(t, err)
	require.Equal(t, "bad amount", decoded.Error)
	require.Equal(t, uint64(82), *decoded.ErroneousField)

	_, err = DecodeInvoiceError(encodeRecords(rawRecords(
		3, []byte{1}, 5, []byte("x"))))
	require.ErrorIs(t, err, ErrUnexpectedField)
	_, err = DecodeInvoiceError(encodeRecords(rawRecords(1, []byte{1})))
	require.ErrorIs(t, err, ErrMissingField)
	_, err = DecodeInvoiceError(encodeRecords(rawRecords(
		5, []byte("x"), 6, []byte{})))
	require.ErrorIs(t, err, ErrUnknownEvenType)
	_, err = DecodeInvoiceError(encodeRecords(rawRecords(
		5, []byte{0xff})))
	require.ErrorIs(t, err, ErrInvalidField)
}

func TestUsablePaymentPaths(t *testing.T) {
	p := staticParams()
	second := p.Paths[0]
	second.Path = testPath(130, 140)
	second.PayInfo.Features = []byte{0x04} // bit 2: unknown even
	p.Paths = append(p.Paths, second)
	si, err := NewStaticInvoice(asyncOffer(t), p)
	require.NoError(t, err)
	usable := si.Invoice.UsablePaymentPaths()
	require.Len(t, usable, 1)
	require.True(t, usable[0].Path.Equal(testPath(50, 60)))
}
