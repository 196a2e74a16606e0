package release

import (
	"context"
	"errors"
	"maps"
	"sync"

	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
)

const (
// onionmsg.HeldHTLCAvailableType is the onionmsg TLV a sender sends to the
// recipient.
)

// Rejection outcomes the intake counts. Engine outcomes (matched, early,
// duplicate, too_late, mismatch) are counted by the engine.
const (
	OutcomeUndecodable = "undecodable"
	OutcomeNotForUs    = "not_for_us"
	OutcomeNoRelease   = "no_release"
	OutcomeUnknownEven = "unknown_even_tlv"
	OutcomeBadValue    = "bad_value"
	OutcomeNoPathID    = "no_path_id"
	OutcomeMalformed   = "malformed_path_id"
	OutcomeForged      = "forged"
	OutcomeExpired     = "expired"
	OutcomeEngineError = "engine_error"

	// OutcomeRoleOff counts messages for a role holdd does not run.
	OutcomeRoleOff = "role_not_enabled"
)

// HeldHTLCAnswerer answers held_htlc_available (the recipient role). It
// counts its own outcomes.
type HeldHTLCAnswerer interface {
	HandleHeldHTLCAvailable(ctx context.Context, pathID []byte,
		replyPath *onionmsg.BlindedPath) string
}

// Forwarder takes messages whose next hop is another node (the mailbox
// role). It counts its own outcomes.
type Forwarder interface {
	HandleForward(ctx context.Context, next route.Vertex,
		msg *lnwire.OnionMessage) string
}

// FinalHopHandler takes final-hop messages for another of holdd's roles
// (the static invoice server, the async recipient's client), chosen by
// their path_id before the intake's own checks, which would drop their
// even TLVs (64, 75540, ...) as unknown. It counts its own outcomes.
type FinalHopHandler interface {
	HandleFinalHop(ctx context.Context, p *onionmsg.Peeled) string
}

// finalHopRoute is a FinalHopHandler and the path_ids it takes.
type finalHopRoute struct {
	match   func(pathID []byte) bool
	handler FinalHopHandler
}

// Peeler peels one onion-message layer addressed to holdd.
type Peeler interface {
	Peel(msg *lnwire.OnionMessage) (*onionmsg.Peeled, error)
}

// Releaser releases a held HTLC. The hold engine implements it.
type Releaser interface {
	Release(ctx context.Context, key plugin.CircuitKey, hash lntypes.Hash,
		source string) (plugin.ReleaseOutcome, error)
}

// Intake dispatches the onion messages that reach holdd: release_held_htlc
// to the hold engine (lsp role), held_htlc_available to the recipient role,
// and messages for another node to the mailbox.
type Intake struct {
	peeler   Peeler
	auth     *Authenticator
	releaser Releaser
	clock    clock.Clock
	log      logrus.FieldLogger

	answerer  HeldHTLCAnswerer
	forwarder Forwarder

	// finalHop are tried in order on every final-hop message with a
	// path_id; the first match takes it.
	finalHop []finalHopRoute

	mu     sync.Mutex
	counts map[string]uint64
}

// NewIntake creates an Intake. A nil releaser means the lsp role is off:
// releases are counted and dropped.
func NewIntake(peeler Peeler, auth *Authenticator, releaser Releaser,
	clk clock.Clock, log logrus.FieldLogger) *Intake {

	if clk == nil {
		clk = clock.NewDefaultClock()
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Intake{
		peeler:   peeler,
		auth:     auth,
		releaser: releaser,
		clock:    clk,
		log:      log,
		counts:   make(map[string]uint64),
	}
}

// SetAnswerer turns on the recipient role. Call it before messages flow.
func (in *Intake) SetAnswerer(a HeldHTLCAnswerer) { in.answerer = a }

// SetForwarder turns on the mailbox role. Call it before messages flow.
func (in *Intake) SetForwarder(f Forwarder) { in.forwarder = f }

// AddFinalHopHandler hands the final-hop messages whose path_id match
// accepts to h, ahead of the release and held_htlc_available checks. match
// must be cheap and must not accept release (1) or receive (2) path_ids.
// Call it before messages flow.
func (in *Intake) AddFinalHopHandler(match func(pathID []byte) bool,
	h FinalHopHandler) {

	in.finalHop = append(in.finalHop, finalHopRoute{match: match,
		handler: h})
}

// HandleOnionMessage processes one onion message from the transport. It
// never returns an error to the transport: a bad message changes nothing but
// a counter.
func (in *Intake) HandleOnionMessage(ctx context.Context,
	msg *lnwire.OnionMessage) {

	start := in.clock.Now()
	outcome, counted := in.handle(ctx, msg)
	if !counted {
		in.count(outcome)
	}
	in.log.Debugf("Onion message handled in %v: %s",
		in.clock.Now().Sub(start), outcome)
}

// handle returns the message's outcome, and whether the engine already
// counted it (its release outcomes are the engine's to count). Drops are
// logged at debug level only: anyone can send
// them, and at info level they would push useful lines out of the rotated
// log. Every drop is counted, so GetInfo and the metrics still show them.
func (in *Intake) handle(ctx context.Context,
	msg *lnwire.OnionMessage) (string, bool) {
	peeled, err := in.peeler.Peel(msg)
	if err != nil {
		in.log.Debugf("Dropping onion message that does not peel: %v",
			err)
		return OutcomeUndecodable, false
	}
	if !peeled.Final {
		// Only the mailbox relays, and only by node id: the paths
		// through it name the recipient's node.
		if in.forwarder != nil && peeled.NextNodeID != nil {
			var next route.Vertex
			copy(next[:], peeled.NextNodeID.SerializeCompressed())
			return in.forwarder.HandleForward(ctx, next,
				peeled.NextMessage), true
		}
		in.log.Debugf("Dropping onion message with a next hop: holdd " +
			"does not forward it")
		return OutcomeNotForUs, false
	}
	// Another role's path: its handler applies BOLT 1's unknown-even
	// rule itself, knowing which even types its messages carry.
	if h := in.finalHopHandler(peeled); h != nil {
		return h.HandleFinalHop(ctx, peeled), true
	}
	// BOLT 1: an unknown even type means the sender requires something
	// holdd does not understand, so the message must not be acted on,
	// even if it also carries a valid release.
	if typ, ok := unknownEvenTLV(peeled); ok {
		in.log.Debugf("Dropping onion message with unknown even "+
			"TLV %d", typ)
		return OutcomeUnknownEven, false
	}
	msgType := onionmsg.ReleaseHeldHTLCType
	value, ok := peeled.FinalTLVs[msgType]
	if !ok {
		msgType = onionmsg.HeldHTLCAvailableType
		value, ok = peeled.FinalTLVs[msgType]
	}
	if !ok {
		in.log.Debugf("Dropping onion message without "+
			"release_held_htlc (types %v)", tlvTypes(peeled))
		return OutcomeNoRelease, false
	}
	// LDK writes the empty TLV stream as its length byte 00; the draft
	// spec's empty value is accepted too.
	if len(value) > 1 || (len(value) == 1 && value[0] != 0) {
		in.log.Debugf("Dropping onion message type %d with value %x",
			msgType, value)
		return OutcomeBadValue, false
	}
	if peeled.Data == nil {
		return OutcomeNoPathID, false
	}
	pathIDOpt := peeled.Data.PathID.ValOpt()
	if pathIDOpt.IsNone() {
		in.log.Debugf("Dropping onion message type %d without path_id",
			msgType)
		return OutcomeNoPathID, false
	}
	pathID := pathIDOpt.UnwrapOr(nil)

	if msgType == onionmsg.HeldHTLCAvailableType {
		// Over one of our release paths (or anything but a receive
		// path) it is no message for us: as before the recipient role.
		if KindOf(pathID) != PathIDReceive {
			in.log.Debugf("Dropping held_htlc_available that did " +
				"not come over a receive path")
			return OutcomeNoRelease, false
		}
		if in.answerer == nil {
			in.log.Debugf("Dropping held_htlc_available: the " +
				"recipient role is off")
			return OutcomeRoleOff, false
		}
		return in.answerer.HandleHeldHTLCAvailable(ctx, pathID,
			peeled.ReplyPath), true
	}
	if in.releaser == nil {
		in.log.Debugf("Dropping release_held_htlc: the lsp role is off")
		return OutcomeRoleOff, false
	}

	claim, err := in.auth.Verify(pathID, in.clock.Now())
	switch {
	case errors.Is(err, ErrForgedPathID):
		in.log.Debugf("Dropping release with a forged path_id")
		return OutcomeForged, false
	case errors.Is(err, ErrExpiredPathID):
		in.log.Infof("Dropping release for %v: path expired at %v",
			claim.Key, claim.ExpiresAt.UTC())
		return OutcomeExpired, false
	case err != nil:
		in.log.Debugf("Dropping release: %v", err)
		return OutcomeMalformed, false
	}

	outcome, err := in.releaser.Release(ctx, claim.Key,
		claim.PaymentHash, "onion")
	if err != nil {
		in.log.Errorf("Release of %v failed: %v", claim.Key, err)
		return OutcomeEngineError, false
	}
	in.log.Infof("release_held_htlc for %v: %s", claim.Key, outcome)
	return string(outcome), true
}

// finalHopHandler returns the handler that takes p by its path_id, if any.
func (in *Intake) finalHopHandler(p *onionmsg.Peeled) FinalHopHandler {
	if len(in.finalHop) == 0 || p.Data == nil {
		return nil
	}
	pathID := p.Data.PathID.ValOpt().UnwrapOr(nil)
	if len(pathID) == 0 {
		return nil
	}
	for _, r := range in.finalHop {
		if r.match(pathID) {
			return r.handler
		}
	}
	return nil
}

func (in *Intake) count(outcome string) {
	in.mu.Lock()
	in.counts[outcome]++
	in.mu.Unlock()
}

// CountDrop counts a message a transport dropped before the intake saw it
// (e.g. undecodable, rate_limited), so GetInfo and the metrics show it
// with the intake's own drops.
func (in *Intake) CountDrop(outcome string) {
	in.count(outcome)
}

// Counts returns how many messages ended in each outcome.
func (in *Intake) Counts() map[string]uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return maps.Clone(in.counts)
}

// unknownEvenTLV returns the lowest even final-hop TLV type other than the
// two async-payment messages holdd knows.
func unknownEvenTLV(p *onionmsg.Peeled) (uint64, bool) {
	var (
		lowest uint64
		found  bool
	)
	for t := range p.FinalTLVs {
		if t%2 != 0 || t == onionmsg.ReleaseHeldHTLCType ||
			t == onionmsg.HeldHTLCAvailableType {

			continue
		}
		if !found || t < lowest {
			lowest, found = t, true
		}
	}
	return lowest, found
}

func tlvTypes(p *onionmsg.Peeled) []uint64 {
	types := make([]uint64, 0, len(p.FinalTLVs))
	for t := range p.FinalTLVs {
		types = append(types, t)
	}
	return types
}
