package bolt12

import (
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/internal/boltvectors"
	"github.com/stretchr/testify/require"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err, s)
	return b
}

type offerVector struct {
	Description string `json:"description"`
	Valid       bool   `json:"valid"`
	Bolt12      string `json:"bolt12"`
	Fields      []struct {
		Type   uint64 `json:"type"`
		Length int    `json:"length"`
		Hex    string `json:"hex"`
	} `json:"fields"`
}

// offerVectorErrors is the error each invalid offers-test.json case must
// give, read from the case's description and the spec's reader rules.
var offerVectorErrors = map[string]error{
	"Malformed: fields out of order":                    ErrMalformedTLV,
	"Malformed: unknown even TLV type 78":               ErrUnknownEvenType,
	"Malformed: empty":                                  ErrMissingField,
	"Malformed: truncated at type":                      ErrMalformedTLV,
	"Malformed: truncated in length":                    ErrMalformedTLV,
	"Malformed: truncated after length":                 ErrMalformedTLV,
	"Malformed: truncated in description":               ErrMalformedTLV,
	"Malformed: invalid offer_chains length":            ErrInvalidField,
	"Malformed: truncated currency UTF-8":               ErrInvalidField,
	"Malformed: invalid currency UTF-8":                 ErrInvalidField,
	"Malformed: truncated description UTF-8":            ErrInvalidField,
	"Malformed: invalid description UTF-8":              ErrInvalidField,
	"Malformed: truncated offer_paths":                  ErrInvalidField,
	"Malformed: zero num_hops in blinded_path":          ErrInvalidField,
	"Malformed: truncated onionmsg_hop in blinded_path": ErrInvalidField,
	"Malformed: bad first_node_id in blinded_path":      ErrInvalidField,
	"Malformed: bad path_key in blinded_path":           ErrInvalidField,
	"Malformed: bad blinded_node_id in onionmsg_hop":    ErrInvalidField,
	"Malformed: truncated issuer UTF-8":                 ErrInvalidField,
	"Malformed: invalid issuer UTF-8":                   ErrInvalidField,
	"Malformed: invalid offer_issuer_id":                ErrInvalidField,
	"Contains type >= 80":                               ErrTypeOutOfRange,
	"Contains type > 1999999999":                        ErrTypeOutOfRange,
	// The vector writes type 1000000002 as fd 3b9aca02: a reader sees
	// type 0x3b9a (15258), even and outside the offer ranges, with a
	// length running past the end. TestExperimentalTypes covers the
	// type correctly encoded.
	"Contains unknown even type (1000000002)":         ErrTypeOutOfRange,
	"Contains unknown feature 122":                    ErrUnknownFeature,
	"Missing offer_description, but has offer_amount": ErrMissingField,
	"Missing offer_amount with offer_currency":        ErrMissingField,
	"Invalid: zero offer_amount":                      ErrValueOutOfRange,
	"Invalid: zero offer_amount with currency":        ErrValueOutOfRange,
	"Missing offer_issuer_id and no offer_path":       ErrMissingField,
	"Second offer_path is empty":                      ErrInvalidField,
	"offer_chains with zero entries":                  ErrInvalidField,
	"Bech32 padding exceeds 4-bit limit":              ErrInvalidString,
}

// TestOffersVectors runs every case of offers-test.json: a valid offer
// decodes to exactly the listed records and re-encodes to the same string;
// an invalid one fails with the error its description names.
func TestOffersVectors(t *testing.T) {
	var vectors []offerVector
	boltvectors.Load(t, "offers-test.json", &vectors)
	require.Len(t, vectors, 53)

	invalid := 0
	for _, v := range vectors {
		t.Run(v.Description, func(t *testing.T) {
			offer, err := DecodeOfferString(v.Bolt12)
			if !v.Valid {
				invalid++
				want, ok := offerVectorErrors[v.Description]
				require.True(t, ok, "no expected error for %q",
					v.Description)
				require.ErrorIs(t, err, want)
				return
			}
			require.NoError(t, err)
			records := offer.Records()
			require.Len(t, records, len(v.Fields))
			for i, f := range v.Fields {
				require.Equal(t, f.Type, records[i].Type)
				require.Len(t, records[i].Value, f.Length)
				require.Equal(t, f.Hex,
					hex.EncodeToString(records[i].Value))
			}
			require.Equal(t, v.Bolt12, offer.String())

			again, err := DecodeOffer(offer.Encode())
			require.NoError(t, err)
			require.Equal(t, offer.Encode(), again.Encode())
			require.Equal(t, offer.ID(), again.ID())
		})
	}
	require.Equal(t, len(offerVectorErrors), invalid)
}

type formatVector struct {
	Comment string `json:"comment"`
	Valid   bool   `json:"valid"`
	String  string `json:"string"`
}

// TestFormatStringVectors runs format-string-test.json: every valid form
// decodes to the same offer as the plain lowercase string.
func TestFormatStringVectors(t *testing.T) {
	var vectors []formatVector
	boltvectors.Load(t, "format-string-test.json", &vectors)
	require.NotEmpty(t, vectors)

	var want []byte
	for i, v := range vectors {
		hrp, b, err := DecodeString(v.String)
		if !v.Valid {
			require.ErrorIs(t, err, ErrInvalidString, "%d %s", i,
				v.Comment)
			continue
		}
		require.NoError(t, err, "%d %s", i, v.Comment)
		require.Equal(t, HRPOffer, hrp)
		if want == nil {
			want = b
		}
		require.Equal(t, want, b, "%d %s", i, v.Comment)
		_, err = DecodeOfferString(v.String)
		require.NoError(t, err, "%d %s", i, v.Comment)
	}
}

type signatureVector struct {
	Comment  string              `json:"comment"`
	Bolt12   string              `json:"bolt12"`
	TLV      string              `json:"tlv"`
	FirstTLV string              `json:"first-tlv"`
	Leaves   []map[string]string `json:"leaves"`
	Branches []map[string]string `json:"branches"`
	Merkle   string              `json:"merkle"`
	Tag      string              `json:"signature_tag"`
	Sig      string              `json:"signature"`
}

var (
	leafKey   = regexp.MustCompile("^H\\(`LnLeaf`,([0-9a-f]+)\\)$")
	nonceKey  = regexp.MustCompile("^H\\(`LnNonce`\\|first-tlv,")
	branchKey = regexp.MustCompile("^H\\(`LnBranch`,([0-9a-f]{128})\\)$")
)

// TestSignatureVectors runs signature-test.json: every leaf, nonce leaf,
// branch and Merkle root, and the invoice_request's tag, digest and
// signature.
func TestSignatureVectors(t *testing.T) {
	var vectors []signatureVector
	boltvectors.Load(t, "signature-test.json", &vectors)
	require.Len(t, vectors, 4)
	// The digest's key has a comma, which encoding/json tags cannot name.
	var raw []map[string]any
	boltvectors.Load(t, "signature-test.json", &raw)

	for i, v := range vectors {
		t.Run(v.Comment, func(t *testing.T) {
			first, err := parseRecords(unhex(t, v.FirstTLV))
			require.NoError(t, err)
			require.Len(t, first, 1)
			nonceTag := append([]byte("LnNonce"), first[0].raw...)

			var stream []byte
			for _, leaf := range v.Leaves {
				var tlvHex, leafHash, nonceHash, branch string
				for k, val := range leaf {
					switch {
					case leafKey.MatchString(k):
						tlvHex = leafKey.FindStringSubmatch(k)[1]
						leafHash = val
					case nonceKey.MatchString(k):
						nonceHash = val
					case strings.HasPrefix(k, "H(`LnBranch`"):
						branch = val
					}
				}
				rec, err := parseRecords(unhex(t, tlvHex))
				require.NoError(t, err)
				require.Len(t, rec, 1)
				stream = append(stream, rec[0].raw...)

				l := taggedHash([]byte("LnLeaf"), rec[0].raw)
				n := taggedHash(nonceTag, rec[0].typeBytes)
				require.Equal(t, leafHash, hex.EncodeToString(l[:]))
				require.Equal(t, nonceHash, hex.EncodeToString(n[:]))
				b := branchHash(l, n)
				require.Equal(t, branch, hex.EncodeToString(b[:]))
			}
			for _, br := range v.Branches {
				checked := false
				for k, val := range br {
					m := branchKey.FindStringSubmatch(k)
					if m == nil {
						continue
					}
					ab := unhex(t, m[1])
					var a, b [32]byte
					copy(a[:], ab[:32])
					copy(b[:], ab[32:])
					h := branchHash(a, b)
					require.Equal(t, val, hex.EncodeToString(h[:]))
					checked = true
				}
				require.True(t, checked, "branch %v", br)
			}

			records, err := parseRecords(stream)
			require.NoError(t, err)
			root, err := MerkleRoot(records)
			require.NoError(t, err)
			require.Equal(t, v.Merkle, hex.EncodeToString(root[:]))

			if v.Bolt12 == "" {
				return
			}
			require.Equal(t, InvoiceRequestSignatureTag, v.Tag)
			ir, err := DecodeInvoiceRequestString(v.Bolt12)
			require.NoError(t, err)
			root, err = MerkleRoot(ir.Records())
			require.NoError(t, err)
			require.Equal(t, v.Merkle, hex.EncodeToString(root[:]))
			digest, err := SignatureDigest(v.Tag, ir.Records())
			require.NoError(t, err)
			require.Equal(t, raw[i]["H(signature_tag,merkle)"],
				hex.EncodeToString(digest[:]))
			require.Equal(t, v.Sig, hex.EncodeToString(ir.Signature))

			// Bob (0x4242...) is the payer.
			bob, _ := btcec.PrivKeyFromBytes(
				unhex(t, strings.Repeat("42", 32)),
			)
			require.True(t, bob.PubKey().IsEqual(ir.Request.PayerID))
			require.NoError(t, ir.VerifySignature())

			// A signature by anyone else does not verify.
			bad := append([]byte(nil), ir.Signature...)
			bad[10] ^= 1
			require.ErrorIs(t, verifySignature(v.Tag, ir.Records(),
				bad, ir.Request.PayerID), ErrBadSignature)
		})
	}
}
