package recipient

import (
	"errors"
	"time"
)

// ErrUnknownPath is what the store returns for a receive path it does not
// have.
var ErrUnknownPath = errors.New("receive path not found")

// ReceivePath is one of the recipient role's async-receive message paths.
type ReceivePath struct {
	// ID is the path's random identifier, carried in its path_id.
	ID [8]byte

	// Path is the encoded blinded path, as published.
	Path []byte

	CreatedAt time.Time
	ExpiresAt time.Time

	// MailboxLSP is the LSP whose mailbox the path runs through, or nil.
	MailboxLSP []byte

	// RevokedAt is zero unless the operator revoked the path.
	RevokedAt time.Time

	// Replies counts release_held_htlc replies sent for messages that
	// arrived over this path.
	Replies     uint64
	LastReplyAt time.Time
}

// Usable reports whether holdd answers messages over the path at now.
func (p ReceivePath) Usable(now time.Time) bool {
	return p.RevokedAt.IsZero() && now.Before(p.ExpiresAt)
}
