package plugin

// The hold engine owns the records it persists: the circuit key, the hold
// states and their state machine, the held HTLC, the early release and the
// state history. The Store interface (types.go) is implemented by package
// store, which imports these types; plugin never imports store.
//
// A held HTLC enters the store in state held and moves only along these
// edges (the Store's Transition enforces them, as a compare-and-set on the
// current state):
//
//	held     -> released   a valid release arrived and was recorded
//	held     -> failed     holdd failed it back (deadline, failback height,
//	                       policy, operator)
//	held     -> gone       lnd resolved it itself (channel closed, lnd's
//	                       own auto-fail) and stopped offering it
//	released -> resumed    holdd sent the resume to lnd
//	released -> failed     as from held, e.g. failback height reached
//	                       before lnd offered the key again
//	released -> gone       as from held
//
// The states mean:
//
//   - held: parked, waiting for a release.
//   - released: a valid release arrived and was recorded; the resume has not
//     been sent yet, typically because lnd is not offering the key on the
//     current interceptor stream. It is resumed when lnd replays it.
//   - resumed, failed, gone: final. A final state never changes again; a
//     replay of a key in a final state is answered from the stored record.
//
// There is no held -> resumed edge: a release is always made durable
// (released) before the resume is sent, so a crash in between cannot lose
// a release the sender already considers delivered.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/routing/route"
)

var (
	// ErrInvalidTransition is returned when a state change is not allowed,
	// either because the edge is not in the state machine or because the
	// record is not in one of the expected states.
	ErrInvalidTransition = errors.New("invalid state transition")

	// ErrInvalidCircuitKey is returned by ParseCircuitKey for a string
	// that is not "chan:htlc".
	ErrInvalidCircuitKey = errors.New("invalid circuit key")
)

// CircuitKey is lnd's incoming circuit key: the incoming channel's short
// channel id and the HTLC's index on it.
type CircuitKey struct {
	ChanID uint64
	HtlcID uint64
}

// String formats the key as "chan:htlc" in decimal.
func (k CircuitKey) String() string {
	return strconv.FormatUint(k.ChanID, 10) + ":" +
		strconv.FormatUint(k.HtlcID, 10)
}

// ParseCircuitKey parses the "chan:htlc" form produced by String.
func ParseCircuitKey(s string) (CircuitKey, error) {
	c, h, ok := strings.Cut(s, ":")
	if !ok {
		return CircuitKey{}, fmt.Errorf("%w: circuit key %q is not "+
			"chan:htlc", ErrInvalidCircuitKey, s)
	}
	chanID, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return CircuitKey{}, fmt.Errorf("%w: circuit key %q: chan id: %v",
			ErrInvalidCircuitKey, s, err)
	}
	htlcID, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		return CircuitKey{}, fmt.Errorf("%w: circuit key %q: htlc id: %v",
			ErrInvalidCircuitKey, s, err)
	}

	return CircuitKey{ChanID: chanID, HtlcID: htlcID}, nil
}

// HoldState is the state of a held HTLC; see the comment at the top of this
// file for the state machine.
type HoldState string

const (
	// StateHeld is parked, waiting for a release.
	StateHeld HoldState = "held"

	// StateReleased means a valid release arrived; the resume has not been
	// sent (the key may not be offered right now).
	StateReleased HoldState = "released"

	// StateResumed means the resume was sent to lnd.
	StateResumed HoldState = "resumed"

	// StateFailed means a fail was sent to lnd (FailReason says why).
	StateFailed HoldState = "failed"

	// StateGone means lnd stopped offering it because it resolved the HTLC
	// itself (e.g. the channel closed); kept for audit.
	StateGone HoldState = "gone"
)

// AllStates lists every state in state machine order.
var AllStates = []HoldState{
	StateHeld, StateReleased, StateResumed, StateFailed, StateGone,
}

// Active reports whether holdd still owes lnd a resolution (held or
// released).
func (s HoldState) Active() bool {
	return s == StateHeld || s == StateReleased
}

// Final reports whether the state can never change again.
func (s HoldState) Final() bool {
	return s == StateResumed || s == StateFailed || s == StateGone
}

// Valid reports whether s is one of the known states.
func (s HoldState) Valid() bool {
	return s.Active() || s.Final()
}

// transitions is the state machine: the states each state may move to.
var transitions = map[HoldState][]HoldState{
	StateHeld:     {StateReleased, StateFailed, StateGone},
	StateReleased: {StateResumed, StateFailed, StateGone},
}

// ValidTransition reports whether from -> to is an edge of the state
// machine.
func ValidTransition(from, to HoldState) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}

	return false
}

// TransitionError is returned (wrapping ErrInvalidTransition) when a
// record is not in one of the states a Transition expected. Callers that
// need the current state, e.g. to treat a repeated release as a no-op, can
// get it with errors.As.
type TransitionError struct {
	Key     CircuitKey
	Current HoldState
	From    []HoldState
	To      HoldState
}

// Error implements error.
func (e *TransitionError) Error() string {
	return fmt.Sprintf("htlc %v is %s, not one of %v (moving to %s): %v",
		e.Key, e.Current, e.From, e.To, ErrInvalidTransition)
}

// Unwrap makes errors.Is(err, ErrInvalidTransition) true.
func (e *TransitionError) Unwrap() error {
	return ErrInvalidTransition
}

// HeldHTLC is one intercepted HTLC that holdd held, with its current state.
type HeldHTLC struct {
	Key             CircuitKey
	PaymentHash     lntypes.Hash
	IncomingPeer    route.Vertex // compressed pubkey, zero if unknown
	IncomingAmtMsat uint64
	OutgoingAmtMsat uint64
	IncomingExpiry  uint32
	OutgoingExpiry  uint32
	OutgoingChanID  uint64

	// AutoFailHeight is the height at which lnd fails the HTLC itself.
	AutoFailHeight int32

	// FailbackHeight is the height at which holdd fails it back, before
	// AutoFailHeight.
	FailbackHeight int32

	// HoldDeadline is the wall-clock hold limit; zero means none.
	HoldDeadline time.Time

	// PathExpiresAt is when every release path of this HTLC stops
	// working, fixed when it is held; zero means none is known. The
	// engine fails the HTLC back if it is still held then.
	PathExpiresAt time.Time

	State         HoldState
	FailReason    string // set when State == StateFailed
	ReleaseSource string // e.g. "onion", "manual"; set when released

	HeldAt    time.Time
	UpdatedAt time.Time

	// ReleasedAt and ResolvedAt are zero until the HTLC is released or
	// reaches a final state.
	ReleasedAt time.Time
	ResolvedAt time.Time
}

// PendingRelease is a verified release that arrived before its HTLC was
// known or offered.
type PendingRelease struct {
	Key         CircuitKey
	PaymentHash lntypes.Hash
	Source      string
	ReceivedAt  time.Time
	ExpiresAt   time.Time
}

// ListFilter selects HTLCs for ListHTLCs. Empty fields select everything;
// Limit <= 0 means no limit. Results are ordered by HeldAt, then key.
type ListFilter struct {
	States []HoldState
	Peer   *route.Vertex
	Limit  int
}

// StateChange is one entry of an HTLC's state history. The insert is
// recorded as a change with an empty From.
type StateChange struct {
	Key  CircuitKey
	From HoldState
	To   HoldState
	Note string
	At   time.Time
}

// HTLCLookup is what Store.LookupHTLC found for a circuit key.
type HTLCLookup struct {
	// HTLC is the stored record; Found is false when there is none.
	HTLC  HeldHTLC
	Found bool

	// Pending is the unexpired pending release for the key and the
	// payment hash asked about, looked for only when there is no record.
	Pending    PendingRelease
	HasPending bool
}
