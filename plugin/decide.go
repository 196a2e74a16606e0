package plugin

import (
	"fmt"
	"time"

	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/routing/route"
)

// This file is where the engine decides: why an HTLC is held, resumed or
// failed. Every entry point of the engine (an intercept, a release, a
// manual fail, a block, a tick, a link coming back) has the same shape:
//
//  1. read: with the circuit key locked, what the engine knows about the
//     key (its active record, else one store read that returns the record
//     and any pending release together) and the inputs the decision needs
//     (height, clock, link state, who sent it);
//  2. decide: one of the pure functions below turns that into a step, the
//     record to write and what to tell lnd;
//  3. apply (engine.go): persist the step's one write first, then act on
//     it (the Decision returned to the interceptor, or Resolver.Resume or
//     Fail).
//
// The functions here do no I/O and keep no state, so table-driven tests
// check them without fakes.

// writeKind is the one store write a step makes.
type writeKind int

const (
	// writeNone: nothing to persist.
	writeNone writeKind = iota

	// writeInsertHeld stores a new hold (step.rec).
	writeInsertHeld

	// writeInsertResumed stores a new HTLC whose release came before it
	// (step.pending) as released and resumed, and consumes that pending
	// release, in one transaction.
	writeInsertResumed

	// writeTransition moves the key from step.from to step.to.
	writeTransition

	// writePending stores an early release (step.pending).
	writePending
)

// resolveKind is what the engine tells lnd through the Resolver, for a key
// it is not answering as an intercept.
type resolveKind int

const (
	resolveNone resolveKind = iota
	resolveResume
	resolveFail
)

// step is what one decision says to do.
type step struct {
	write   writeKind
	rec     HeldHTLC
	pending PendingRelease
	from    HoldState
	to      HoldState
	note    string

	// answer is the interceptor's answer once the write is persisted;
	// errAnswer its answer when the write fails.
	answer    Decision
	errAnswer Decision

	// resolve is sent through the Resolver once the write is persisted.
	resolve resolveKind

	// outcome is a release's outcome.
	outcome ReleaseOutcome

	// stat is the decision counted once the step is applied; pass counts
	// a pass-through instead.
	stat string
	pass bool

	// why says in words what was decided and why, for the log.
	why string

	// err is an entry point's error, with no write.
	err error
}

// failStep answers lnd with a fail for reason, writing nothing.
func failStep(reason FailReason, why string) step {
	return step{
		answer: Decision{Action: ActionFail, Reason: reason},
		stat:   "fail_" + string(reason),
		why:    why,
	}
}

// passStep forwards an HTLC the engine does not hold.
func passStep() step {
	return step{answer: Decision{Action: ActionResume}, pass: true}
}

// holdStep answers nothing now.
func holdStep(stat, why string) step {
	return step{answer: Decision{Action: ActionHold}, stat: stat, why: why}
}

// keyView is what the engine knows about one circuit key when it decides.
type keyView struct {
	// rec is the key's record; found is false when there is none.
	rec   HeldHTLC
	found bool

	// active is true when the record is in the engine's active set
	// (held or released).
	active bool

	// pending is an unexpired early release for the key and the payment
	// hash asked about.
	pending    PendingRelease
	hasPending bool
}

// linkState is what the engine knows about an HTLC's incoming channel.
type linkState int

const (
	// linkUnknown: nobody could tell; lnd decides, so a resume goes out.
	linkUnknown linkState = iota
	linkActive
	linkInactive
)

// mayResume is the "resume once the incoming link is back" rule: lnd v0.21
// fails a resumed forward whose incoming link is gone (it cannot check the
// incoming link's dust exposure), so a released HTLC whose incoming channel
// is known to be inactive stays released until the engine hears that the
// channel is active again (the sender is back), or lnd replays it over an
// active link. Only a definite "inactive" holds a resume back.
func mayResume(l linkState) bool {
	return l != linkInactive
}

// decideReplay decides on an offer of a key the engine has a record for: a
// replay after a reconnect or an lnd restart, or an offer whose answer
// never reached lnd.
func decideReplay(v keyView, h HTLC, height int32, link linkState) step {
	rec := v.rec
	if !v.active {
		return decideFinalReplay(rec)
	}
	if rec.PaymentHash != h.PaymentHash {
		// A circuit key names one HTLC for the life of a channel, so
		// this is not a replay; refuse rather than guess.
		return failStep(FailStore, fmt.Sprintf("offer for %v has hash "+
			"%v, stored hash %v; failing back", h.Key,
			h.PaymentHash, rec.PaymentHash))
	}
	if height >= rec.FailbackHeight {
		return step{
			write: writeTransition, from: rec.State,
			to: StateFailed, note: string(FailExpiry),
			answer: Decision{Action: ActionFail,
				Reason: FailExpiry},
			errAnswer: Decision{Action: ActionFail,
				Reason: FailStore},
			stat: "fail_" + string(FailExpiry),
			why: fmt.Sprintf("replayed HTLC %v is past its "+
				"fail-back height %d (height %d): failing back",
				h.Key, rec.FailbackHeight, height),
		}
	}
	if rec.State != StateReleased {
		return holdStep("hold_replayed", fmt.Sprintf("replayed HTLC "+
			"%v is still held", h.Key))
	}
	if !mayResume(link) {
		return holdStep("hold_replayed", fmt.Sprintf("replayed HTLC "+
			"%v is released but its incoming channel is inactive; "+
			"holding until the sender is back", h.Key))
	}
	return step{
		write: writeTransition, from: StateReleased,
		to:     StateResumed,
		answer: Decision{Action: ActionResume},
		// The release stays recorded; lnd offers the key again after
		// the next reconnect.
		errAnswer: Decision{Action: ActionHold},
		stat:      "resume_replayed",
		why: fmt.Sprintf("replayed HTLC %v was released while not "+
			"offered: resuming", h.Key),
	}
}

// decideFinalReplay re-sends the answer for an HTLC that already reached a
// final state: lnd offering it again means the first answer did not take
// effect.
func decideFinalReplay(rec HeldHTLC) step {
	switch rec.State {
	case StateResumed:
		return step{answer: Decision{Action: ActionResume},
			stat: "resume_replayed"}
	case StateFailed:
		return step{answer: Decision{Action: ActionFail,
			Reason: FailReason(rec.FailReason)},
			stat: "fail_replayed"}
	}
	return failStep(FailStore, fmt.Sprintf("HTLC %v is stored as %v but "+
		"not active; failing back", rec.Key, rec.State))
}

// newHTLCInput is what decideNew needs about a flagged HTLC holdd has no
// record of.
type newHTLCInput struct {
	h      HTLC
	policy *Policy
	height int32
	now    time.Time

	// peer is who is on the incoming channel; chanErr is set when lnd
	// could not tell.
	peer    route.Vertex
	private bool
	chanErr error

	admission Admission

	// readsDeliveries is false for a peer not known to read path
	// deliveries, when the engine checks that; unproven is then what
	// happens to its HTLC.
	readsDeliveries bool
	unproven        UnprovenSenderMode

	pathBlockInterval time.Duration
	maxPathLife       time.Duration

	// pending is an early release for the HTLC, if any.
	pending    PendingRelease
	hasPending bool
}

// decideNew decides on a flagged HTLC holdd has never seen. The caps are
// checked when the step is applied, atomically with reserving them
// (capExceeded).
func decideNew(in newHTLCInput) step {
	h := in.h
	switch {
	case in.chanErr != nil:
		// Holding it could hold somebody else's payment, failing it
		// would fail it: it is forwarded.
		s := passStep()
		s.pass, s.stat = false, DecisionChannelUnknown
		s.why = fmt.Sprintf("incoming channel %d of HTLC %v unknown "+
			"(%v): forwarding it without a hold", h.Key.ChanID,
			h.Key, in.chanErr)
		return s

	case !in.admission.Eligible(in.peer, in.private):
		// Somebody else's payment, to be neither held nor failed.
		s := passStep()
		s.pass, s.stat = false, DecisionNotClient
		s.why = fmt.Sprintf("HTLC %v asks for a hold but comes over "+
			"public channel %d from %v, not a client: forwarding "+
			"it without a hold", h.Key, h.Key.ChanID, in.peer)
		return s
	}

	// A sender that cannot be released is answered first: with the
	// default mode its HTLC is an ordinary forward, which the hold's
	// fail-back margin has nothing to say about. Such a sender can never
	// learn its release paths, so holding its HTLC only traps it until
	// the fail-back height.
	unprovenHold := false
	if !in.readsDeliveries {
		switch in.unproven {
		case UnprovenHold:
			unprovenHold = true
		case UnprovenFail:
			return failStep(FailSenderNotCapable, fmt.Sprintf("not "+
				"holding HTLC %v: sender %v has not shown it "+
				"reads path deliveries (no "+
				"release_paths_request); failing it back",
				h.Key, in.peer))
		default:
			s := passStep()
			s.pass = false
			s.stat = "resume_" + string(FailSenderNotCapable)
			s.why = fmt.Sprintf("not holding HTLC %v: sender %v "+
				"has not shown it reads path deliveries (no "+
				"release_paths_request); forwarding it now",
				h.Key, in.peer)
			return s
		}
	}

	failback := h.AutoFailHeight - in.policy.FailbackMargin
	if failback <= in.height {
		return failStep(FailExpiryMargin, fmt.Sprintf("HTLC %v asks "+
			"for a hold but its fail-back height %d (auto-fail %d "+
			"- margin %d) is not above height %d: failing back",
			h.Key, failback, h.AutoFailHeight,
			in.policy.FailbackMargin, in.height))
	}

	rec := HeldHTLC{
		Key:             h.Key,
		PaymentHash:     h.PaymentHash,
		IncomingPeer:    in.peer,
		IncomingAmtMsat: h.IncomingAmtMsat,
		OutgoingAmtMsat: h.OutgoingAmtMsat,
		IncomingExpiry:  h.IncomingExpiry,
		OutgoingExpiry:  h.OutgoingExpiry,
		OutgoingChanID:  h.OutgoingChanID,
		AutoFailHeight:  h.AutoFailHeight,
		FailbackHeight:  failback,
		State:           StateHeld,
		HeldAt:          in.now,
		UpdatedAt:       in.now,
	}
	if in.policy.MaxHoldTime > 0 {
		rec.HoldDeadline = in.now.Add(in.policy.MaxHoldTime)
	}
	rec.PathExpiresAt = PathExpiry(in.now, in.height, failback,
		in.pathBlockInterval, in.maxPathLife, rec.HoldDeadline)

	s := step{
		rec:       rec,
		answer:    Decision{Action: ActionHold},
		errAnswer: Decision{Action: ActionFail, Reason: FailStore},
	}
	if unprovenHold {
		s.stat = "hold_unproven_sender"
	}
	if in.hasPending {
		// A release came before the HTLC did: it is resumed at once.
		// The incoming link is up, as lnd just offered the HTLC over
		// it.
		s.write = writeInsertResumed
		s.pending = in.pending
		s.answer = Decision{Action: ActionResume}
		s.stat = "resume_early_release"
		s.why = fmt.Sprintf("HTLC %v matched an early release: "+
			"resuming", h.Key)
		return s
	}
	s.write = writeInsertHeld
	if s.stat == "" {
		s.stat = "hold"
	}
	s.why = fmt.Sprintf("holding HTLC %v hash=%v amt=%d msat fail-back "+
		"height %d (auto-fail %d, height %d)", h.Key, h.PaymentHash,
		h.IncomingAmtMsat, failback, h.AutoFailHeight, in.height)
	return s
}

// capExceeded returns the cap an additional HTLC of amt from a peer that
// holds peerUsage, with total held in all, would break.
func capExceeded(p *Policy, peerUsage, total usage, amt uint64) FailReason {
	switch {
	case p.MaxHeldTotal > 0 && total.count+1 > p.MaxHeldTotal:
		return FailCapTotal
	case p.MaxHeldMsatTotal > 0 && total.msat+amt > p.MaxHeldMsatTotal:
		return FailCapTotalMsat
	case p.MaxHeldPerPeer > 0 && peerUsage.count+1 > p.MaxHeldPerPeer:
		return FailCapPeerCount
	case p.MaxHeldMsatPerPeer > 0 &&
		peerUsage.msat+amt > p.MaxHeldMsatPerPeer:

		return FailCapPeerMsat
	}
	return ""
}

// releaseInput is what decideRelease needs.
type releaseInput struct {
	key    CircuitKey
	hash   lntypes.Hash
	source string
	now    time.Time
	ttl    time.Duration
	link   linkState
}

// decideRelease decides on an authenticated release of key.
func decideRelease(v keyView, in releaseInput) step {
	if !v.found {
		// The release came before its HTLC: kept until the HTLC is
		// intercepted or the release expires.
		return step{
			write: writePending,
			pending: PendingRelease{
				Key:         in.key,
				PaymentHash: in.hash,
				Source:      in.source,
				ReceivedAt:  in.now,
				ExpiresAt:   in.now.Add(in.ttl),
			},
			outcome: ReleaseEarly,
			why: fmt.Sprintf("release for %v arrived before its "+
				"HTLC; kept until %v", in.key,
				in.now.Add(in.ttl)),
		}
	}
	rec := v.rec
	switch {
	case rec.PaymentHash != in.hash:
		return step{outcome: ReleaseMismatch}
	case rec.State == StateFailed:
		return step{outcome: ReleaseTooLate}
	case rec.State != StateHeld || !v.active:
		return step{outcome: ReleaseDuplicate}
	}
	s := step{
		write: writeTransition, from: StateHeld,
		to: StateReleased, note: in.source,
		outcome: ReleaseMatched,
		why: fmt.Sprintf("release of %v by %s: resuming", in.key,
			in.source),
	}
	if mayResume(in.link) {
		s.resolve = resolveResume
	} else {
		s.why = fmt.Sprintf("release of %v by %s while its incoming "+
			"channel is inactive (sender offline): resuming when "+
			"it is back", in.key, in.source)
	}
	return s
}

// decideLinkActive decides on an active HTLC whose incoming channel the
// engine just heard is active: a released one is resumed.
func decideLinkActive(v keyView, link linkState) step {
	if !v.active || v.rec.State != StateReleased ||
		!mayResume(link) {

		return step{}
	}
	return step{resolve: resolveResume, why: fmt.Sprintf("incoming "+
		"channel of released HTLC %v is active again: resuming",
		v.rec.Key)}
}

// decideFail decides on failing an active HTLC back for reason: by hand,
// at its fail-back height, at its hold deadline or when its release paths
// expired.
func decideFail(v keyView, reason FailReason, height int32) step {

	if !v.active {
		return step{err: fmt.Errorf("%w: %v", ErrNotHeld, v.rec.Key)}
	}
	rec := v.rec
	why := fmt.Sprintf("failing HTLC %v back: %s", rec.Key, reason)
	if reason == FailPathExpired {
		// Released since the tick found it: it needs no path any more.
		if rec.State != StateHeld {
			return step{err: fmt.Errorf("%w: %v is %v", ErrNotHeld,
				rec.Key, rec.State)}
		}
		why = fmt.Sprintf("HTLC %v is still held but its release "+
			"paths expired at %v, before its fail-back height %d "+
			"(height %d): failing back, as nobody can release it "+
			"now", rec.Key, rec.PathExpiresAt.UTC(),
			rec.FailbackHeight, height)
	}
	return step{
		write: writeTransition, from: rec.State,
		to: StateFailed, note: string(reason),
		resolve: resolveFail, stat: "fail_" + string(reason),
		why: why,
	}
}

// decideOnChain decides on lnd's offer of an HTLC whose incoming channel
// was force-closed. holdd never answers such an offer: it has no preimage,
// and lnd rejects a resume or fail of an on-chain HTLC by ending the
// stream. An active one is recorded as gone: lnd resolves it.
func decideOnChain(v keyView) step {
	s := holdStep("", "")
	s.errAnswer = Decision{Action: ActionHold}
	if v.active {
		s.write = writeTransition
		s.from, s.to, s.note = v.rec.State, StateGone, "onchain"
		s.why = fmt.Sprintf("HTLC %v is on chain (incoming channel "+
			"force-closed); lnd resolves it, holdd no longer "+
			"holds it", v.rec.Key)
	}
	return s
}
