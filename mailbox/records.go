package mailbox

import (
	"errors"
	"time"

	"github.com/lightningnetwork/lnd/routing/route"
)

// The mailbox owns the records it persists; package store implements
// MessageStore with these types and never the other way round.

// ErrNotRegistered is what the store returns for a message to a recipient
// that is not registered.
var ErrNotRegistered = errors.New("mailbox recipient not registered")

// Recipient is a recipient registered with the mailbox.
type Recipient struct {
	// Peer is the recipient's node key, as lnd authenticated it.
	Peer route.Vertex

	RegisteredAt time.Time
	RefreshedAt  time.Time

	// Messages and Bytes are what is stored for the recipient now. They
	// are filled in by the store's ListMailboxRecipients only.
	Messages int64
	Bytes    int64
}

// StoredMessage is one stored onion message.
type StoredMessage struct {
	// ID orders messages: a recipient's are delivered in ID order and the
	// lowest IDs are evicted first.
	ID int64

	Recipient route.Vertex
	PathKey   [33]byte
	Onion     []byte

	ReceivedAt time.Time

	// ClaimedAt is set while the message is being handed to lnd.
	ClaimedAt time.Time
}

// Size is what the message counts against the byte bounds.
func (m *StoredMessage) Size() int64 {
	return int64(len(m.Onion))
}

// StoreLimits bound what PutMailboxMessage keeps. Zero means no bound.
// Every stored message counts, but only messages that are not claimed are
// evicted: a claimed one is in flight to lnd and about to go anyway.
type StoreLimits struct {
	RecipientCount int64
	RecipientBytes int64
	TotalCount     int64
	TotalBytes     int64
}

// EvictReason says which bound made PutMailboxMessage drop a message.
type EvictReason string

const (
	// EvictRecipientCount: the recipient had too many messages.
	EvictRecipientCount EvictReason = "recipient_count"

	// EvictRecipientBytes: the recipient's messages were too large.
	EvictRecipientBytes EvictReason = "recipient_bytes"

	// EvictTotalCount: the mailbox held too many messages.
	EvictTotalCount EvictReason = "total_count"

	// EvictTotalBytes: the mailbox's messages were too large.
	EvictTotalBytes EvictReason = "total_bytes"
)

// RemovedMessage describes a message that a call deleted.
type RemovedMessage struct {
	ID        int64
	Recipient route.Vertex
	Size      int64

	// Reason is set for evictions only.
	Reason EvictReason
}

// PutResult is the result of PutMailboxMessage.
type PutResult struct {
	ID int64

	// Claimed reports whether the message was stored claimed.
	Claimed bool

	// Evicted lists the older messages dropped to make room, oldest
	// first.
	Evicted []RemovedMessage
}
