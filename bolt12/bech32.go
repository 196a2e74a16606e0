package bolt12

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/btcsuite/btcd/btcutil/bech32"
)

// Human-readable prefixes of the string forms.
const (
	// HRPOffer is an offer's prefix.
	HRPOffer = "lno"

	// HRPInvoiceRequest is an invoice request's prefix.
	HRPInvoiceRequest = "lnr"

	// HRPInvoice is an invoice's prefix (static invoices have none of
	// their own; holdd writes them as lni too).
	HRPInvoice = "lni"
)

// bech32Charset is bech32's alphabet: the 5-bit value of a character is its
// index. btcutil's bech32 package does not export it.
const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// maxStringLen bounds a string before it is parsed: the largest message in
// 5-bit characters, with room for '+' continuations and whitespace.
const maxStringLen = 4 * MaxMessageSize

// DecodeString decodes a BOLT 12 string (bech32 without checksum, with
// optional '+' continuations) into its prefix and bytes. The prefix is
// returned in lowercase.
func DecodeString(s string) (string, []byte, error) {
	if len(s) > maxStringLen {
		return "", nil, fmt.Errorf("%w: string of %d characters",
			ErrTooLarge, len(s))
	}
	joined, err := joinContinuations(s)
	if err != nil {
		return "", nil, err
	}

	lower := strings.ToLower(joined)
	if joined != lower && joined != strings.ToUpper(joined) {
		return "", nil, fmt.Errorf("%w: mixed case", ErrInvalidString)
	}
	sep := strings.LastIndexByte(lower, '1')
	if sep < 1 {
		return "", nil, fmt.Errorf("%w: no human-readable prefix",
			ErrInvalidString)
	}
	hrp, data := lower[:sep], lower[sep+1:]
	for i := 0; i < len(hrp); i++ {
		if hrp[i] < 33 || hrp[i] > 126 {
			return "", nil, fmt.Errorf("%w: prefix character %q",
				ErrInvalidString, hrp[i])
		}
	}

	fives := make([]byte, len(data))
	for i := 0; i < len(data); i++ {
		v := strings.IndexByte(bech32Charset, data[i])
		if v < 0 {
			return "", nil, fmt.Errorf("%w: character %q is not "+
				"bech32", ErrInvalidString, data[i])
		}
		fives[i] = byte(v)
	}
	// ConvertBits rejects an incomplete last group of more than 4 bits
	// or with non-zero bits.
	b, err := bech32.ConvertBits(fives, 5, 8, false)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrInvalidString, err)
	}
	return hrp, b, nil
}

// joinContinuations removes each '+' and the whitespace after it. A '+'
// must sit between two bech32 characters (whitespace after it aside), and
// whitespace anywhere else is an error.
func joinContinuations(s string) (string, error) {
	if !strings.ContainsAny(s, "+ \t\r\n\v\f") &&
		!strings.ContainsFunc(s, unicode.IsSpace) {

		return s, nil
	}
	var (
		out      strings.Builder
		afterCon bool
	)
	for _, c := range s {
		switch {
		case c == '+':
			if afterCon || out.Len() == 0 {
				return "", fmt.Errorf("%w: '+' not between two "+
					"bech32 characters", ErrInvalidString)
			}
			afterCon = true

		case unicode.IsSpace(c):
			if !afterCon {
				return "", fmt.Errorf("%w: whitespace not after "+
					"a '+'", ErrInvalidString)
			}

		default:
			afterCon = false
			out.WriteRune(c)
		}
	}
	if afterCon {
		return "", fmt.Errorf("%w: string ends with '+'",
			ErrInvalidString)
	}
	return out.String(), nil
}

// EncodeString writes b with prefix hrp as a lowercase BOLT 12 string
// without continuations.
func EncodeString(hrp string, b []byte) string {
	// Converting 8-bit groups with padding does not fail.
	fives, _ := bech32.ConvertBits(b, 8, 5, true)
	var out strings.Builder
	out.Grow(len(hrp) + 1 + len(fives))
	out.WriteString(strings.ToLower(hrp))
	out.WriteByte('1')
	for _, v := range fives {
		out.WriteByte(bech32Charset[v])
	}
	return out.String()
}

// decodeStringWithPrefix decodes s and checks its prefix.
func decodeStringWithPrefix(s, want string) ([]byte, error) {
	hrp, b, err := DecodeString(s)
	if err != nil {
		return nil, err
	}
	if hrp != want {
		return nil, fmt.Errorf("%w: %q, want %q", ErrWrongPrefix, hrp,
			want)
	}
	return b, nil
}
