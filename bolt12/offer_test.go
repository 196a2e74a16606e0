package bolt12

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/stretchr/testify/require"
)

// fullOffer has every offer field and an experimental odd record.
func fullOffer(t *testing.T) *Offer {
	t.Helper()
	offer, err := NewOffer(OfferFields{
		Chains:         []chainhash.Hash{testnetChain},
		Metadata:       []byte{1, 2, 3},
		Currency:       ptr("USD"),
		Amount:         ptr(uint64(1000)),
		Description:    ptr("coffee"),
		Features:       []byte{0x02}, // bit 1: odd, unknown
		AbsoluteExpiry: ptr(uint64(testNow.Unix() + 3600)),
		Paths:          []*onionmsg.BlindedPath{testPath(10, 20)},
		Issuer:         ptr("holdd.example"),
		QuantityMax:    ptr(uint64(5)),
		IssuerID:       key(1).PubKey(),
	}, NewRecord(1_000_000_001, []byte("exp")))
	require.NoError(t, err)
	return offer
}

func TestOfferBuildDecode(t *testing.T) {
	offer := fullOffer(t)

	decoded, err := DecodeOfferString(offer.String())
	require.NoError(t, err)
	require.Equal(t, offer.Encode(), decoded.Encode())
	require.Equal(t, offer.ID(), decoded.ID())
	require.Equal(t, []chainhash.Hash{testnetChain}, decoded.Chains)
	require.Equal(t, "USD", *decoded.Currency)
	require.Equal(t, uint64(1000), *decoded.Amount)
	require.Equal(t, "coffee", *decoded.Description)
	require.Equal(t, uint64(5), *decoded.QuantityMax)
	require.True(t, key(1).PubKey().IsEqual(decoded.IssuerID))
	require.Len(t, decoded.Paths, 1)
	require.True(t, decoded.Paths[0].Equal(testPath(10, 20)))

	// Every type once, in order; the amount is a minimal tu64 (03e8)
	// and the experimental record is carried.
	var types []uint64
	for _, r := range decoded.Records() {
		types = append(types, r.Type)
	}
	require.Equal(t, []uint64{2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
		1_000_000_001}, types)
	require.Equal(t, "080203e8", hex.EncodeToString(
		decoded.Records()[3].Bytes()))
	require.Equal(t, "fe3b9aca010365787", hex.EncodeToString(
		decoded.Records()[11].Bytes())[:17])

	// Uppercase with continuations decodes to the same offer.
	s := strings.ToUpper(offer.String())
	s = s[:10] + "+\n  " + s[10:]
	again, err := DecodeOfferString(s)
	require.NoError(t, err)
	require.Equal(t, offer.Encode(), again.Encode())

	// The offer id is LDK's: H("LDK Offer ID", Merkle root).
	root, err := MerkleRoot(offer.Records())
	require.NoError(t, err)
	want := taggedHash([]byte("LDK Offer ID"), root[:])
	require.Equal(t, OfferID(want), offer.ID())

	// Another prefix is refused.
	_, err = DecodeInvoiceRequestString(offer.String())
	require.ErrorIs(t, err, ErrWrongPrefix)
}

func TestOfferCheck(t *testing.T) {
	offer := fullOffer(t)
	require.NoError(t, offer.Check(testNow, testnetChain))
	require.NoError(t, offer.Check(testNow.Add(time.Hour), testnetChain))
	require.ErrorIs(t, offer.Check(testNow.Add(time.Hour+time.Second),
		testnetChain), ErrExpired)
	require.ErrorIs(t, offer.Check(testNow, BitcoinChain), ErrWrongChain)

	// No chains: bitcoin only; no expiry: never expires.
	plain, err := NewOffer(OfferFields{IssuerID: key(1).PubKey()})
	require.NoError(t, err)
	require.NoError(t, plain.Check(time.Unix(1<<40, 0), BitcoinChain))
	require.ErrorIs(t, plain.Check(testNow, testnetChain), ErrWrongChain)
}

func TestOfferReaderErrors(t *testing.T) {
	issuer := key(1).PubKey().SerializeCompressed()
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{{
		name:   "type 0 is not an offer type",
		stream: encodeRecords(rawRecords(0, []byte{1}, 22, issuer)),
		want:   ErrTypeOutOfRange,
	}, {
		name: "unknown even experimental type 1000000002",
		stream: encodeRecords(rawRecords(22, issuer,
			1_000_000_002, []byte{1})),
		want: ErrUnknownEvenType,
	}, {
		name: "odd type 2000000001 is outside the offer ranges",
		stream: encodeRecords(rawRecords(22, issuer,
			2_000_000_001, []byte{1})),
		want: ErrTypeOutOfRange,
	}, {
		name:   "signature type 240 in an offer",
		stream: encodeRecords(rawRecords(22, issuer, 240, []byte{1})),
		want:   ErrTypeOutOfRange,
	}, {
		name:   "duplicate type",
		stream: encodeRecords(rawRecords(22, issuer, 22, issuer)),
		want:   ErrMalformedTLV,
	}, {
		name:   "non-canonical BigSize type",
		stream: append([]byte{0xfd, 0x00, 0x16, 0x21}, issuer...),
		want:   ErrMalformedTLV,
	}, {
		name: "non-minimal tu64 amount",
		stream: encodeRecords(rawRecords(8, []byte{0, 1},
			10, []byte("x"), 22, issuer)),
		want: ErrInvalidField,
	}, {
		name: "amount above 21M BTC",
		stream: encodeRecords(rawRecords(8,
			encodeTU64(maxValueMsat+1), 10, []byte("x"),
			22, issuer)),
		want: ErrValueOutOfRange,
	}, {
		name: "lowercase currency",
		stream: encodeRecords(rawRecords(6, []byte("usd"),
			8, []byte{1}, 10, []byte("x"), 22, issuer)),
		want: ErrInvalidField,
	}, {
		name:   "issuer id of 32 bytes",
		stream: encodeRecords(rawRecords(22, issuer[:32])),
		want:   ErrInvalidField,
	}, {
		name:   "unknown even feature bit 0",
		stream: encodeRecords(rawRecords(12, []byte{1}, 22, issuer)),
		want:   ErrUnknownFeature,
	}, {
		name:   "empty offer_paths without issuer id",
		stream: encodeRecords(rawRecords(16, []byte{})),
		want:   ErrMissingField,
	}, {
		name:   "oversize",
		stream: make([]byte, MaxMessageSize+1),
		want:   ErrTooLarge,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeOffer(tc.stream)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestStringErrors(t *testing.T) {
	valid := fullOffer(t).String()
	tests := []struct {
		name string
		s    string
		want error
	}{
		{"no separator", "lnoqqqq", ErrInvalidString},
		{"b is not bech32", "lno1b", ErrInvalidString},
		{"whitespace without +", valid[:10] + " " + valid[10:],
			ErrInvalidString},
		{"mixed case", "LNO1" + valid[4:], ErrInvalidString},
		{"too long", "lno1" + strings.Repeat("q", maxStringLen),
			ErrTooLarge},
		{"wrong prefix", "lnr1" + valid[4:], ErrWrongPrefix},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeOfferString(tc.s)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestBuilderRefusesInvalid(t *testing.T) {
	_, err := NewOffer(OfferFields{Amount: ptr(uint64(5)),
		IssuerID: key(1).PubKey()})
	require.ErrorIs(t, err, ErrInvalidBuild)
	require.ErrorIs(t, err, ErrMissingField)

	_, err = NewOffer(OfferFields{IssuerID: key(1).PubKey()},
		NewRecord(1_000_000_002, nil))
	require.ErrorIs(t, err, ErrInvalidBuild)

	_, err = NewOffer(OfferFields{IssuerID: key(1).PubKey()},
		NewRecord(81, nil))
	require.ErrorIs(t, err, ErrInvalidBuild)
}
