package bolt12

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// decodeSentinels are the errors a decoder may fail with; any other error
// (or a panic) is a bug.
var decodeSentinels = []error{
	ErrInvalidString, ErrWrongPrefix, ErrTooLarge, ErrMalformedTLV,
	ErrTypeOutOfRange, ErrUnknownEvenType, ErrInvalidField,
	ErrMissingField, ErrUnexpectedField, ErrValueOutOfRange,
	ErrUnknownFeature, ErrWrongChain, ErrBadSignature,
	ErrSigningKeyMismatch, ErrMismatch,
}

func requireSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range decodeSentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error wraps no bolt12 sentinel: %v", err)
}

// encoder is what every decoded message offers for the round trip.
type encoder interface {
	Encode() []byte
}

// fuzzRoundTrip decodes data with decode; a failure must be a sentinel, a
// success must re-encode to exactly data and decode again to the same
// bytes.
func fuzzRoundTrip[T encoder](t *testing.T, data []byte,
	decode func([]byte) (T, error)) (T, bool) {

	msg, err := decode(data)
	if err != nil {
		requireSentinel(t, err)
		return msg, false
	}
	b := msg.Encode()
	require.Equal(t, data, b)
	again, err := decode(b)
	require.NoError(t, err)
	require.Equal(t, b, again.Encode())
	return msg, true
}

// FuzzDecodeString checks the string parser: no panic, only sentinel
// errors, and a decoded string re-encodes (lowercase, no '+') to a string
// that decodes to the same bytes.
func FuzzDecodeString(f *testing.F) {
	f.Add("lno1pgx9getnwss8vetrw3hhyuc")
	f.Add("LNO1PGX9+ \nGETNWSS8")
	f.Fuzz(func(t *testing.T, s string) {
		hrp, b, err := DecodeString(s)
		if err != nil {
			requireSentinel(t, err)
			return
		}
		enc := EncodeString(hrp, b)
		hrp2, b2, err := DecodeString(enc)
		require.NoError(t, err)
		require.Equal(t, hrp, hrp2)
		require.Equal(t, b, b2)
		if s == strings.ToLower(s) && !strings.ContainsAny(s, "+") {
			require.Equal(t, s, enc)
		}
	})
}

// FuzzDecodeOffer round-trips offers and exercises the offer id and the
// context checks.
func FuzzDecodeOffer(f *testing.F) {
	f.Add([]byte{0x16, 0x21, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, ok := fuzzRoundTrip(t, data, DecodeOffer)
		if !ok {
			return
		}
		_ = o.ID()
		_ = o.Check(testNow, BitcoinChain)
		_, _ = DetectKind(data)
	})
}

// FuzzDecodeInvoiceRequest round-trips invoice requests, with and without
// the signature check.
func FuzzDecodeInvoiceRequest(f *testing.F) {
	f.Add([]byte{0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		ir, ok := fuzzRoundTrip(t, data,
			func(b []byte) (*InvoiceRequest, error) {
				return DecodeInvoiceRequest(b,
					SkipSignatureCheck())
			})
		if !ok {
			return
		}
		if err := ir.VerifySignature(); err != nil {
			requireSentinel(t, err)
		}
		_, _ = ir.OfferID()
		_ = ir.Check(testNow, BitcoinChain)
	})
}

// FuzzDecodeInvoice round-trips invoices.
func FuzzDecodeInvoice(f *testing.F) {
	f.Add([]byte{0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, ok := fuzzRoundTrip(t, data,
			func(b []byte) (*Invoice, error) {
				return DecodeInvoice(b, SkipSignatureCheck())
			})
		if !ok {
			return
		}
		if err := inv.VerifySignature(); err != nil {
			requireSentinel(t, err)
		}
		_ = inv.Check(testNow, BitcoinChain)
	})
}

// FuzzDecodeStaticInvoice round-trips static invoices.
func FuzzDecodeStaticInvoice(f *testing.F) {
	f.Add([]byte{0xa4, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		si, ok := fuzzRoundTrip(t, data,
			func(b []byte) (*StaticInvoice, error) {
				return DecodeStaticInvoice(b,
					SkipSignatureCheck())
			})
		if !ok {
			return
		}
		if err := si.VerifySignature(); err != nil {
			requireSentinel(t, err)
		}
		_ = si.Check(testNow, BitcoinChain)
		require.LessOrEqual(t, len(si.Encode()), MaxStaticInvoiceSize)
	})
}

// FuzzDecodeInvoiceError round-trips invoice errors.
func FuzzDecodeInvoiceError(f *testing.F) {
	f.Add([]byte{0x05, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, DecodeInvoiceError)
	})
}
