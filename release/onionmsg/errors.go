package onionmsg

import "errors"

var (
	// ErrInvalidPath is returned for a blinded path that cannot be
	// encoded or decoded.
	ErrInvalidPath = errors.New("onionmsg: invalid blinded path")

	// ErrSCIDDirIntro is returned where a pubkey introduction node is
	// needed but the path starts at a sciddir.
	ErrSCIDDirIntro = errors.New("onionmsg: path has a sciddir " +
		"introduction node")

	// ErrInvalidHops is returned when the hops given to BuildBlindedPath
	// cannot be blinded.
	ErrInvalidHops = errors.New("onionmsg: invalid hops")

	// ErrInvalidFinalTLV is returned when a caller asks for a final-hop
	// TLV outside the range BOLT 4 reserves for it (>= 64).
	ErrInvalidFinalTLV = errors.New("onionmsg: final TLV type must " +
		"be >= 64")

	// ErrMessageTooLarge is returned when the payloads do not fit even a
	// 32768-byte onion.
	ErrMessageTooLarge = errors.New("onionmsg: payloads do not fit " +
		"in an onion message")

	// ErrBadOnion is returned when the onion packet does not decode or
	// does not authenticate with our key and the message's path key.
	ErrBadOnion = errors.New("onionmsg: bad onion packet")

	// ErrBadPayload is returned when our hop's onionmsg_tlv payload is
	// malformed or carries fields BOLT 4 says to reject.
	ErrBadPayload = errors.New("onionmsg: bad onion message payload")

	// ErrNoEncryptedData is returned when our hop's payload has no
	// encrypted_recipient_data.
	ErrNoEncryptedData = errors.New("onionmsg: no " +
		"encrypted_recipient_data")

	// ErrBadEncryptedData is returned when encrypted_recipient_data does
	// not decrypt with our key or its plaintext is not a valid
	// encrypted_data_tlv.
	ErrBadEncryptedData = errors.New("onionmsg: bad " +
		"encrypted_recipient_data")

	// ErrECDH is returned when the node key's ECDH fails, e.g. when lnd's
	// DeriveSharedKey is unreachable. It says nothing about the message,
	// which may be fine.
	ErrECDH = errors.New("onionmsg: ECDH with the node key failed")

	// ErrNoNextHop is returned when a message must be forwarded but our
	// encrypted data names neither a next node nor a next channel.
	ErrNoNextHop = errors.New("onionmsg: forwarding hop without " +
		"next_node_id or short_channel_id")

	// ErrBadAsyncMessage is returned for a static invoice server message
	// (onionmsg TLV 75540-75546) whose value does not decode as LDK
	// writes it.
	ErrBadAsyncMessage = errors.New("onionmsg: bad static invoice " +
		"server message")
)
