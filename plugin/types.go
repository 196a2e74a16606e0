package plugin

import (
	"context"
	"errors"
	"time"

	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/routing/route"
)

// ErrNotOffered is what a Resolver returns for a circuit key that lnd has not
// offered on the current interceptor stream. The engine keeps the decision
// and re-sends it when lnd offers the key again.
var ErrNotOffered = errors.New("circuit key not offered on the current " +
	"interceptor stream")

var (
	// ErrUnknownHTLC is returned for a circuit key holdd does not hold.
	ErrUnknownHTLC = errors.New("unknown held HTLC")

	// ErrNotHeld is returned when an operation needs a held HTLC but the
	// HTLC is in another state.
	ErrNotHeld = errors.New("HTLC is not held")
)

// Action is what the interceptor tells lnd.
type Action int

const (
	// ActionResume forwards the HTLC.
	ActionResume Action = iota

	// ActionFail fails the HTLC back with TEMPORARY_CHANNEL_FAILURE.
	ActionFail

	// ActionHold answers nothing now; the engine resolves later.
	ActionHold
)

func (a Action) String() string {
	switch a {
	case ActionResume:
		return "resume"
	case ActionFail:
		return "fail"
	case ActionHold:
		return "hold"
	}
	return "unknown"
}

// FailReason says why holdd failed an HTLC back.
type FailReason string

const (
	FailExpiryMargin FailReason = "expiry_margin"
	FailExpiry       FailReason = "expiry"
	FailMaxHoldTime  FailReason = "max_hold_time"
	FailCapPeerCount FailReason = "cap_peer_count"
	FailCapPeerMsat  FailReason = "cap_peer_msat"
	FailCapTotal     FailReason = "cap_total_count"
	FailCapTotalMsat FailReason = "cap_total_msat"
	FailStore        FailReason = "store_error"
	FailManual       FailReason = "manual"
)

// FailPathExpired fails back a held HTLC whose release paths expired before
// its fail-back height: nobody can release it any more.
const FailPathExpired FailReason = "path_expired"

// Decision is the engine's answer to one intercepted HTLC.
type Decision struct {
	Action Action
	Reason FailReason
}

// HTLC is an intercepted forward, as the engine needs it.
type HTLC struct {
	Key             CircuitKey
	PaymentHash     lntypes.Hash
	IncomingAmtMsat uint64
	OutgoingAmtMsat uint64
	IncomingExpiry  uint32
	OutgoingExpiry  uint32
	OutgoingChanID  uint64
	AutoFailHeight  int32
	CustomRecords   map[uint64][]byte

	// OnChain marks lnd's re-offer of an HTLC whose incoming channel was
	// force-closed: only a preimage can settle it, and a resume or fail
	// would end the interceptor stream.
	OnChain bool
}

// ReleaseOutcome classifies an authenticated release.
type ReleaseOutcome string

const (
	// ReleaseMatched released a held HTLC.
	ReleaseMatched ReleaseOutcome = "matched"

	// ReleaseEarly is kept until its HTLC is intercepted.
	ReleaseEarly ReleaseOutcome = "early"

	// ReleaseDuplicate names an HTLC that was already released.
	ReleaseDuplicate ReleaseOutcome = "duplicate"

	// ReleaseTooLate names an HTLC that was already failed back.
	ReleaseTooLate ReleaseOutcome = "too_late"

	// ReleaseMismatch names a known circuit key with another payment
	// hash.
	ReleaseMismatch ReleaseOutcome = "mismatch"
)

// Resolver answers lnd for a circuit key. The interceptor implements it.
// It decides nothing: whether an HTLC may be resumed now is the engine's
// decision (decide.go).
type Resolver interface {
	Resume(ctx context.Context, key CircuitKey) error
	Fail(ctx context.Context, key CircuitKey) error
}

// Store is the persistence the engine needs.
type Store interface {
	InsertHeld(ctx context.Context, h HeldHTLC) (HeldHTLC,
		bool, error)
	// LookupHTLC returns the record stored under key, if any, and the
	// unexpired pending release for (key, hash), if any, in one read.
	LookupHTLC(ctx context.Context, key CircuitKey, hash lntypes.Hash,
		now time.Time) (HTLCLookup, error)

	// InsertReleased stores a new HTLC that an early release (p)
	// released: held, released and resumed at once, consuming p, in one
	// write. A key stored already is returned with inserted=false.
	InsertReleased(ctx context.Context, h HeldHTLC,
		p PendingRelease, at time.Time) (HeldHTLC, bool,
		error)
	Transition(ctx context.Context, key CircuitKey,
		from []HoldState, to HoldState, note string,
		at time.Time) (HeldHTLC, error)
	ListHTLCs(ctx context.Context, f ListFilter) ([]HeldHTLC,
		error)
	PutPendingRelease(ctx context.Context, r PendingRelease) error
	PrunePendingReleases(ctx context.Context, now time.Time) (int64,
		error)
}

// ChannelPeers maps an incoming channel to its peer's node key.
type ChannelPeers interface {
	PeerOf(ctx context.Context, chanID uint64) (route.Vertex, error)
}

// BlockSource streams new best block heights. The stream starts with the
// current height.
type BlockSource interface {
	SubscribeBlocks(ctx context.Context) (<-chan int32, error)
}

// EventKind names a state change.
type EventKind string

const (
	EventHeld     EventKind = "held"
	EventReleased EventKind = "released"
	EventResumed  EventKind = "resumed"
	EventFailed   EventKind = "failed"
	EventGone     EventKind = "gone"
)

// Event is a state change of a held HTLC, after it was persisted.
type Event struct {
	Kind EventKind
	HTLC HeldHTLC
}

// Observer hears every state change. It is called synchronously and must
// not block.
type Observer interface {
	HoldEvent(Event)
}
