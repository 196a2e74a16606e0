package custommsg

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnwire"
)

// onionMessageHeaderLen is path_key (33) and the u16 packet length.
const onionMessageHeaderLen = btcec.PubKeyBytesLenCompressed + 2

var (
	// ErrUndecodable wraps every reason a 513 payload is not an
	// onion_message.
	ErrUndecodable = errors.New("custommsg: undecodable onion_message")

	// ErrInvalidMessage is returned by Send for a message that cannot be
	// encoded.
	ErrInvalidMessage = errors.New("custommsg: invalid onion message")
)

// decodeOnionMessage parses a custom message body of type 513:
// path_key (33) | u16 len | packet. It is strict: the point must be valid
// and the packet must end exactly where the body does. lnd's decoder would
// ignore trailing bytes, but onion_message has no TLV extension, so extra
// bytes mean the sender framed it wrongly.
func decodeOnionMessage(data []byte) (*lnwire.OnionMessage, error) {
	// No peer message body is longer; lnd cannot have received it.
	if len(data) > lnwire.MaxMsgBody {
		return nil, fmt.Errorf("%w: %d bytes exceed a message body",
			ErrUndecodable, len(data))
	}
	r := bytes.NewReader(data)
	var msg lnwire.OnionMessage
	if err := msg.Decode(r, 0); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the packet",
			ErrUndecodable, r.Len())
	}
	return &msg, nil
}

// EncodeOnionMessage is the inverse of decodeOnionMessage: the body of peer
// message 513. lnwire's encoder writes the length as a bare uint16, so an
// oversized packet is refused here rather than silently framed with a
// wrapped length.
func EncodeOnionMessage(msg *lnwire.OnionMessage) ([]byte, error) {
	switch {
	case msg == nil:
		return nil, fmt.Errorf("%w: nil message", ErrInvalidMessage)

	case msg.PathKey == nil:
		return nil, fmt.Errorf("%w: no path key", ErrInvalidMessage)

	case onionMessageHeaderLen+len(msg.OnionBlob) > lnwire.MaxMsgBody:
		return nil, fmt.Errorf("%w: %d-byte packet does not fit a "+
			"message", ErrInvalidMessage, len(msg.OnionBlob))
	}

	var b bytes.Buffer
	b.Grow(onionMessageHeaderLen + len(msg.OnionBlob))
	if err := msg.Encode(&b, 0); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	return b.Bytes(), nil
}
