package mailbox

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/tlv"
)

// Peer custom message types of the registration exchange. Both are odd, so
// a node that does not know them ignores them (BOLT 1), and both are in
// lnd's custom range (>= 32768), so lnd hands them to SubscribeCustomMessages.
const (
	// RegisterMsgType is mailbox_register, recipient -> LSP.
	RegisterMsgType uint32 = 48003

	// RegisteredMsgType is mailbox_registered, LSP -> recipient: the
	// answer to a mailbox_register, acceptance or refusal.
	RegisteredMsgType uint32 = 48005
)

// TLV types. Even types must be understood; a message with an unknown even
// type is refused as a whole (BOLT 1, "it's OK to be odd").
const (
	// mailbox_register
	regRequestIDType tlv.Type = 0

	// mailbox_registered
	ackMailboxKeyType tlv.Type = 0
	ackMaxAgeType     tlv.Type = 2
	ackMaxMsgsType    tlv.Type = 4
	ackMaxBytesType   tlv.Type = 6
	ackRequestIDType  tlv.Type = 8
	ackErrorType      tlv.Type = 9
)

// MaxErrorLen bounds a refusal's reason, on the wire and when decoding.
const MaxErrorLen = 256

// maxAgeSeconds is the largest max age that fits a time.Duration.
const maxAgeSeconds = uint64(math.MaxInt64 / int64(time.Second))

// ErrMalformed wraps every reason a registration message does not decode
// or cannot be encoded.
var ErrMalformed = errors.New("mailbox: malformed registration message")

// RegisterMsg is mailbox_register: "store onion messages for me while I am
// offline". The sender's identity is the peer key lnd reports, never
// anything in the message.
type RegisterMsg struct {
	// RequestID is echoed in the answer, so a client can tell it from
	// the answer to an earlier attempt.
	RequestID uint64
}

// RegisteredMsg is mailbox_registered. It is a refusal when Error is set;
// then only RequestID is present besides it.
type RegisteredMsg struct {
	RequestID uint64

	// MailboxKey is the mailbox's node key (the LSP holdd's peer-link
	// key): the hop the recipient puts after the LSP's lnd in its paths.
	MailboxKey *btcec.PublicKey

	// MaxAge is how long a message is kept, in whole seconds.
	MaxAge time.Duration

	// MaxMessages and MaxBytes are the per-recipient bounds.
	MaxMessages uint64
	MaxBytes    uint64

	// Error is the refusal's reason, at most MaxErrorLen bytes of UTF-8.
	Error string
}

// Refused reports whether m refuses the registration.
func (m *RegisteredMsg) Refused() bool {
	return m.Error != ""
}

// Encode writes m as a TLV stream.
func (m *RegisterMsg) Encode() ([]byte, error) {
	id := m.RequestID
	stream, err := tlv.NewStream(
		tlv.MakePrimitiveRecord(regRequestIDType, &id),
	)
	if err != nil {
		return nil, err
	}

	return encode(stream)
}

// DecodeRegister parses mailbox_register. request_id is required.
func DecodeRegister(data []byte) (*RegisterMsg, error) {
	var m RegisterMsg
	stream, err := tlv.NewStream(
		tlv.MakePrimitiveRecord(regRequestIDType, &m.RequestID),
	)
	if err != nil {
		return nil, err
	}
	parsed, err := decode(stream, data)
	if err != nil {
		return nil, err
	}
	if _, ok := parsed[regRequestIDType]; !ok {
		return nil, fmt.Errorf("%w: missing request_id", ErrMalformed)
	}

	return &m, nil
}

// Encode writes m as a TLV stream: an acceptance carries types 0, 2, 4, 6
// and 8, a refusal 8 and 9.
func (m *RegisteredMsg) Encode() ([]byte, error) {
	id := m.RequestID
	records := make([]tlv.Record, 0, 5)

	if m.Refused() {
		if m.MailboxKey != nil {
			return nil, fmt.Errorf("%w: refusal with a mailbox key",
				ErrMalformed)
		}
		reason := []byte(truncateReason(m.Error))
		records = append(records,
			tlv.MakePrimitiveRecord(ackRequestIDType, &id),
			tlv.MakePrimitiveRecord(ackErrorType, &reason),
		)
	} else {
		if m.MailboxKey == nil {
			return nil, fmt.Errorf("%w: acceptance without a "+
				"mailbox key", ErrMalformed)
		}
		if m.MaxAge < 0 {
			return nil, fmt.Errorf("%w: negative max age",
				ErrMalformed)
		}
		key := m.MailboxKey
		age := uint64(m.MaxAge / time.Second)
		msgs, bytes := m.MaxMessages, m.MaxBytes
		records = append(records,
			tlv.MakePrimitiveRecord(ackMailboxKeyType, &key),
			tlv.MakePrimitiveRecord(ackMaxAgeType, &age),
			tlv.MakePrimitiveRecord(ackMaxMsgsType, &msgs),
			tlv.MakePrimitiveRecord(ackMaxBytesType, &bytes),
			tlv.MakePrimitiveRecord(ackRequestIDType, &id),
		)
	}
	stream, err := tlv.NewStream(records...)
	if err != nil {
		return nil, err
	}

	return encode(stream)
}

// DecodeRegistered parses mailbox_registered. An acceptance must carry
// every field but the error; a refusal only request_id and the error.
func DecodeRegistered(data []byte) (*RegisteredMsg, error) {
	var (
		m                 RegisteredMsg
		age, msgs, nbytes uint64
		reason            []byte
	)
	stream, err := tlv.NewStream(
		tlv.MakePrimitiveRecord(ackMailboxKeyType, &m.MailboxKey),
		tlv.MakePrimitiveRecord(ackMaxAgeType, &age),
		tlv.MakePrimitiveRecord(ackMaxMsgsType, &msgs),
		tlv.MakePrimitiveRecord(ackMaxBytesType, &nbytes),
		tlv.MakePrimitiveRecord(ackRequestIDType, &m.RequestID),
		tlv.MakePrimitiveRecord(ackErrorType, &reason),
	)
	if err != nil {
		return nil, err
	}
	parsed, err := decode(stream, data)
	if err != nil {
		return nil, err
	}
	if _, ok := parsed[ackRequestIDType]; !ok {
		return nil, fmt.Errorf("%w: missing request_id", ErrMalformed)
	}
	acceptFields := []tlv.Type{
		ackMailboxKeyType, ackMaxAgeType, ackMaxMsgsType,
		ackMaxBytesType,
	}

	if _, refused := parsed[ackErrorType]; refused {
		for _, t := range acceptFields {
			if _, ok := parsed[t]; ok {
				return nil, fmt.Errorf("%w: refusal with TLV %d",
					ErrMalformed, t)
			}
		}
		switch {
		case len(reason) == 0:
			return nil, fmt.Errorf("%w: empty refusal reason",
				ErrMalformed)
		case len(reason) > MaxErrorLen:
			return nil, fmt.Errorf("%w: %d-byte refusal reason",
				ErrMalformed, len(reason))
		case !utf8.Valid(reason):
			return nil, fmt.Errorf("%w: refusal reason is not UTF-8",
				ErrMalformed)
		}
		m.Error = string(reason)

		return &m, nil
	}

	for _, t := range acceptFields {
		if _, ok := parsed[t]; !ok {
			return nil, fmt.Errorf("%w: missing TLV %d",
				ErrMalformed, t)
		}
	}
	if age > maxAgeSeconds {
		return nil, fmt.Errorf("%w: max age %d s out of range",
			ErrMalformed, age)
	}
	m.MaxAge = time.Duration(age) * time.Second
	m.MaxMessages = msgs
	m.MaxBytes = nbytes

	return &m, nil
}

// truncateReason cuts s to MaxErrorLen bytes without splitting a rune and
// replaces invalid UTF-8, so an encoded refusal always decodes.
func truncateReason(s string) string {
	s = string(bytes.ToValidUTF8([]byte(s), []byte("?")))
	if len(s) <= MaxErrorLen {
		return s
	}
	cut := MaxErrorLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}

	return s[:cut]
}

func encode(stream *tlv.Stream) ([]byte, error) {
	var b bytes.Buffer
	if err := stream.Encode(&b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}

	return b.Bytes(), nil
}

// decode parses data into stream's records and returns the types seen. lnd's
// tlv skips unknown types of either parity; BOLT 1 says an unknown even type
// makes the whole message unreadable.
func decode(stream *tlv.Stream, data []byte) (tlv.TypeMap, error) {
	parsed, err := stream.DecodeWithParsedTypesP2P(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for t, raw := range parsed {
		if raw != nil && t%2 == 0 {
			return nil, fmt.Errorf("%w: unknown even TLV %d",
				ErrMalformed, t)
		}
	}

	return parsed, nil
}
