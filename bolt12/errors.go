package bolt12

import "errors"

var (
	// ErrInvalidString is returned for a bolt12 string that is not
	// bech32 without checksum as BOLT 12 defines it: bad characters,
	// mixed case, a misplaced '+', or more than 4 bits of padding.
	ErrInvalidString = errors.New("bolt12: invalid string encoding")

	// ErrWrongPrefix is returned when a string's human-readable prefix
	// is not the one the caller asked for (lno, lnr, lni).
	ErrWrongPrefix = errors.New("bolt12: wrong human-readable prefix")

	// ErrTooLarge is returned for input over the size bound, before it
	// is parsed.
	ErrTooLarge = errors.New("bolt12: message too large")

	// ErrMalformedTLV is returned for a TLV stream that does not parse:
	// truncated, non-canonical BigSize, types not strictly ascending.
	ErrMalformedTLV = errors.New("bolt12: malformed TLV stream")

	// ErrTypeOutOfRange is returned for a TLV type outside the ranges
	// the message kind allows.
	ErrTypeOutOfRange = errors.New("bolt12: TLV type outside the " +
		"message's ranges")

	// ErrUnknownEvenType is returned for an unknown even TLV type inside
	// an allowed range.
	ErrUnknownEvenType = errors.New("bolt12: unknown even TLV type")

	// ErrInvalidField is returned for a known field whose value does not
	// decode: wrong length, bad UTF-8, a point not on the curve, a bad
	// blinded path.
	ErrInvalidField = errors.New("bolt12: invalid field")

	// ErrMissingField is returned when a required field is absent.
	ErrMissingField = errors.New("bolt12: missing field")

	// ErrUnexpectedField is returned for a field the message kind must
	// not carry (e.g. a payment hash in a static invoice).
	ErrUnexpectedField = errors.New("bolt12: unexpected field")

	// ErrValueOutOfRange is returned for a field whose value is outside
	// what the spec allows (zero amount, quantity above the maximum).
	ErrValueOutOfRange = errors.New("bolt12: value out of range")

	// ErrUnknownFeature is returned when a features field sets an
	// unknown even bit.
	ErrUnknownFeature = errors.New("bolt12: unknown even feature bit")

	// ErrWrongChain is returned when a message is not for the chain the
	// caller accepts, or names a chain its offer does not.
	ErrWrongChain = errors.New("bolt12: wrong chain")

	// ErrExpired is returned when an offer or invoice has expired at the
	// time the caller gave.
	ErrExpired = errors.New("bolt12: expired")

	// ErrBadSignature is returned when a signature does not verify
	// against the message's Merkle root and signing key.
	ErrBadSignature = errors.New("bolt12: bad signature")

	// ErrSigningKeyMismatch is returned when an invoice's node id is not
	// the key its offer says must sign it.
	ErrSigningKeyMismatch = errors.New("bolt12: invoice_node_id is " +
		"not the offer's signing key")

	// ErrMismatch is returned when a message does not mirror the one it
	// answers (an invoice request's offer fields, an invoice's request).
	ErrMismatch = errors.New("bolt12: fields do not match")

	// ErrInvalidBuild is returned by the builders for arguments that
	// cannot make a valid message.
	ErrInvalidBuild = errors.New("bolt12: cannot build message")
)
