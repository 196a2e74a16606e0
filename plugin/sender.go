package plugin

import (
	"fmt"

	"github.com/lightningnetwork/lnd/routing/route"
)

// SenderCapability tells whether an incoming peer has shown that it reads
// holdd's path deliveries (custom message 48001). A sender that does not
// can never learn its release paths, so holding its HTLC only traps it
// until the fail-back height.
type SenderCapability interface {
	ReadsDeliveries(peer route.Vertex) bool
}

// UnprovenSenderMode is what the engine does with a hold_htlc HTLC from a
// peer that has not shown it reads deliveries.
type UnprovenSenderMode string

const (
	// UnprovenResume forwards it at once as an ordinary HTLC: it
	// succeeds if the recipient is online, else fails fast downstream.
	UnprovenResume UnprovenSenderMode = "resume"

	// UnprovenFail fails it back at once (TEMPORARY_CHANNEL_FAILURE).
	UnprovenFail UnprovenSenderMode = "fail"

	// UnprovenHold holds it anyway, for operators who know their senders.
	UnprovenHold UnprovenSenderMode = "hold"
)

// FailSenderNotCapable: the sender has not shown it reads deliveries and
// the mode is UnprovenFail.
const FailSenderNotCapable FailReason = "sender_not_capable"

// ParseUnprovenSenderMode parses a mode name; "" is UnprovenResume.
func ParseUnprovenSenderMode(s string) (UnprovenSenderMode, error) {
	switch m := UnprovenSenderMode(s); m {
	case "":
		return UnprovenResume, nil
	case UnprovenResume, UnprovenFail, UnprovenHold:
		return m, nil
	}
	return "", fmt.Errorf("%w: unknown unproven-sender mode %q (resume, "+
		"fail, hold)", ErrInvalidPolicy, s)
}
