package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lightningnetwork/lnd/clock"
	"github.com/sirupsen/logrus"
)

// Config wires the engine to its dependencies.
type Config struct {
	Policy   Policy
	Store    Store
	Resolver Resolver
	Peers    ChannelPeers
	Blocks   BlockSource

	// Channels tells the engine who is on an HTLC's incoming channel and
	// whether it is private; Peers if it implements ChannelInfoSource
	// and Channels is nil.
	Channels ChannelInfoSource

	// Admission says whose HTLCs may be held.
	Admission Admission

	Clock    clock.Clock
	Observer Observer
	Logger   logrus.FieldLogger

	// TickInterval is how often the engine checks hold deadlines and
	// path expiries and prunes pending releases.
	TickInterval time.Duration

	// PathBlockInterval is the time per block PathExpiry assumes;
	// DefaultPathBlockInterval if zero.
	PathBlockInterval time.Duration

	// MaxPathLife caps how long after the hold start release paths
	// work (release.pathexpiry); zero: only the fail-back height and the
	// hold deadline bound them.
	MaxPathLife time.Duration
	// Senders, when set, tells which incoming peers read path
	// deliveries; UnprovenSender is what happens to a hold_htlc HTLC
	// from any other peer (default UnprovenResume).
	Senders        SenderCapability
	UnprovenSender UnprovenSenderMode
}

// entry is an active (held or released) HTLC. Its mutex serializes the
// intercept, release and fail paths for one circuit key, so that the store
// write and the answer to lnd for that key happen in one order.
type entry struct {
	// key, peer, amt, failbackHeight, deadline and pathExpiry never
	// change after the entry is created, so the deadline loops read them
	// without mu.
	key            CircuitKey
	peer           [33]byte
	amt            uint64
	failbackHeight int32
	deadline       time.Time
	pathExpiry     time.Time

	mu  sync.Mutex
	rec HeldHTLC

	// removed is set once the entry left the active map; a goroutine that
	// waited on mu for it must look the key up again.
	removed bool

	// failbackPos, deadlinePos and pathExpiryPos are the entry's places
	// in the engine's due heaps, -1 when not in one. Engine.mu guards
	// them.
	failbackPos   int
	deadlinePos   int
	pathExpiryPos int
}

func newEntry(rec HeldHTLC) *entry {
	return &entry{
		key:            rec.Key,
		peer:           rec.IncomingPeer,
		amt:            rec.IncomingAmtMsat,
		failbackHeight: rec.FailbackHeight,
		deadline:       rec.HoldDeadline,
		pathExpiry:     rec.PathExpiresAt,
		rec:            rec,
		failbackPos:    -1,
		deadlinePos:    -1,
		pathExpiryPos:  -1,
	}
}

// usage is what one peer, or everyone, has held.
type usage struct {
	count int
	msat  uint64
}

// Engine is the hold state machine.
type Engine struct {
	cfg Config
	log logrus.FieldLogger

	// policy is replaced whole by SetPolicy; every intercept reads it,
	// so it is an atomic pointer rather than behind a lock.
	policy atomic.Pointer[Policy]

	height atomic.Int32

	// mu guards active, the due heaps, perPeer and total. It is never
	// held across I/O.
	mu         sync.Mutex
	active     map[CircuitKey]*entry
	byFailback *dueHeap
	byDeadline *dueHeap
	perPeer    map[[33]byte]usage
	total      usage

	// byPathExpiry has the held (not released) entries whose release
	// paths expire at a known time.
	byPathExpiry *dueHeap

	stats *counters

	quit     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New creates an engine; Start loads its state.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Store == nil:
		return nil, errors.New("plugin: nil store")
	case cfg.Resolver == nil:
		return nil, errors.New("plugin: nil resolver")
	case cfg.Blocks == nil:
		return nil, errors.New("plugin: nil block source")
	}
	if cfg.Channels == nil {
		if c, ok := cfg.Peers.(ChannelInfoSource); ok {
			cfg.Channels = c
		}
	}
	if cfg.Channels == nil {
		return nil, errors.New("plugin: nil channel source")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = time.Second
	}
	if cfg.PathBlockInterval == 0 {
		cfg.PathBlockInterval = DefaultPathBlockInterval
	}
	if cfg.PathBlockInterval < 0 || cfg.MaxPathLife < 0 {
		return nil, errors.New("plugin: negative path block interval " +
			"or path life")
	}
	mode, err := ParseUnprovenSenderMode(string(cfg.UnprovenSender))
	if err != nil {
		return nil, err
	}
	cfg.UnprovenSender = mode
	e := &Engine{
		cfg:        cfg,
		log:        cfg.Logger,
		active:     make(map[CircuitKey]*entry),
		byFailback: newFailbackHeap(),
		byDeadline: newDeadlineHeap(),
		perPeer:    make(map[[33]byte]usage),
		stats:      newCounters(),
		quit:       make(chan struct{}),
	}
	e.byPathExpiry = newPathExpiryHeap()
	e.storePolicy(cfg.Policy)
	return e, nil
}

// Start loads the active HTLCs from the store, waits for the first block
// height and starts the block and deadline loops.
func (e *Engine) Start(ctx context.Context) error {
	recs, err := e.cfg.Store.ListHTLCs(ctx, ListFilter{
		States: []HoldState{StateHeld, StateReleased},
	})
	if err != nil {
		return fmt.Errorf("load held HTLCs: %w", err)
	}
	e.mu.Lock()
	for _, rec := range recs {
		e.track(newEntry(rec))
	}
	e.mu.Unlock()
	e.log.Infof("Loaded %d active held HTLCs from the store", len(recs))

	blocks, err := e.cfg.Blocks.SubscribeBlocks(ctx)
	if err != nil {
		return fmt.Errorf("subscribe blocks: %w", err)
	}
	select {
	case h, ok := <-blocks:
		if !ok {
			return errors.New("block source closed before the first " +
				"height")
		}
		e.height.Store(h)
	case <-ctx.Done():
		return ctx.Err()
	}

	e.wg.Add(2)
	go e.blockLoop(blocks)
	go e.tickLoop()
	return nil
}

// Stop ends the engine's goroutines.
func (e *Engine) Stop() error {
	e.stopOnce.Do(func() { close(e.quit) })
	e.wg.Wait()
	return nil
}

// Height is the best block height the engine knows.
func (e *Engine) Height() int32 {
	return e.height.Load()
}

// Policy returns the policy in force.
func (e *Engine) Policy() Policy {
	return *e.policy.Load()
}

// SetPolicy replaces the policy; it applies to decisions made from now on.
func (e *Engine) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	e.storePolicy(p)
	return nil
}

// storePolicy puts in force a copy of p that shares nothing with the
// caller's.
func (e *Engine) storePolicy(p Policy) {
	p.HoldTypes = slices.Clone(p.HoldTypes)
	e.policy.Store(&p)
}

// Intercept decides what to do with an HTLC lnd offers. It is called for
// every forward, including replays of HTLCs the engine already holds.
func (e *Engine) Intercept(ctx context.Context, h HTLC) Decision {
	if h.OnChain {
		return e.interceptOnChain(ctx, h)
	}

	// An HTLC with no custom records at all was never held: the common
	// pass-through costs no lock and no store access.
	if len(h.CustomRecords) == 0 {
		e.stats.pass()
		return Decision{Action: ActionResume}
	}

	policy := e.policy.Load()
	flagged := policy.wantsHold(h.CustomRecords)

	e.mu.Lock()
	ent, ok := e.active[h.Key]
	e.mu.Unlock()
	if ok {
		return e.interceptKnown(ctx, ent, h)
	}

	// Not active: it may be a replay of an HTLC that reached a final
	// state whose answer never got to lnd. An HTLC held under hold types
	// that have since changed is looked up too, so it keeps its state.
	rec, err := e.cfg.Store.GetHeld(ctx, h.Key)
	switch {
	case err == nil:
		return e.replayFinal(rec)

	case !errors.Is(err, ErrUnknownHTLC):
		if ctx.Err() != nil {
			return Decision{Action: ActionHold}
		}
		e.log.Errorf("Store lookup for %v failed, failing HTLC back: "+
			"%v", h.Key, err)
		return e.fail(FailStore)
	}

	if !flagged {
		e.stats.pass()
		return Decision{Action: ActionResume}
	}
	peer, d, ok := e.admit(ctx, h)
	if !ok {
		return d
	}
	return e.interceptNew(ctx, policy, h, peer)
}

// admit decides whether a new flagged HTLC may be held at all, by who sent
// it (Admission), and returns its incoming peer. An HTLC that may not is
// resumed as an ordinary forward: it is somebody else's payment, to be
// neither held nor failed.
func (e *Engine) admit(ctx context.Context, h HTLC) ([33]byte, Decision,
	bool) {

	peer, private, err := e.cfg.Channels.ChannelInfo(ctx, h.Key.ChanID)
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: answer nothing, lnd offers it again.
		return peer, Decision{Action: ActionHold}, false

	case err != nil:
		e.log.Warnf("Incoming channel %d of HTLC %v unknown (%v): "+
			"forwarding it without a hold", h.Key.ChanID, h.Key, err)
		e.stats.decision(DecisionChannelUnknown)
		return peer, Decision{Action: ActionResume}, false

	case !e.cfg.Admission.Eligible(peer, private):
		e.log.Debugf("HTLC %v asks for a hold but comes over public "+
			"channel %d from %x, not a client: forwarding it without "+
			"a hold", h.Key, h.Key.ChanID, peer)
		e.stats.decision(DecisionNotClient)
		return peer, Decision{Action: ActionResume}, false
	}
	return peer, Decision{}, true
}

// interceptOnChain records that lnd took over an HTLC whose incoming
// channel was force-closed. holdd never answers such an offer: it has no
// preimage, and lnd rejects a resume or fail of an on-chain HTLC by ending
// the stream.
func (e *Engine) interceptOnChain(ctx context.Context, h HTLC) Decision {
	e.stats.decision("onchain")
	e.mu.Lock()
	ent, ok := e.active[h.Key]
	e.mu.Unlock()
	if !ok {
		return Decision{Action: ActionHold}
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.removed {
		return Decision{Action: ActionHold}
	}
	if err := e.finish(ctx, ent, StateGone, "onchain"); err != nil {
		e.log.Errorf("Persist on-chain hand-over of %v: %v", h.Key, err)
		return Decision{Action: ActionHold}
	}
	e.log.Warnf("HTLC %v is on chain (incoming channel force-closed); "+
		"lnd resolves it, holdd no longer holds it", h.Key)
	return Decision{Action: ActionHold}
}

// interceptKnown handles an offer of an active HTLC: a replay after a
// reconnect or an lnd restart.
func (e *Engine) interceptKnown(ctx context.Context, ent *entry,
	h HTLC) Decision {

	ent.mu.Lock()
	if ent.removed {
		// It just left the active set; its final state is stored.
		ent.mu.Unlock()
		rec, err := e.cfg.Store.GetHeld(ctx, h.Key)
		if err != nil {
			return e.fail(FailStore)
		}
		return e.replayFinal(rec)
	}
	defer ent.mu.Unlock()

	rec := ent.rec
	if rec.PaymentHash != h.PaymentHash {
		// A circuit key names one HTLC for the life of a channel, so
		// this is not a replay; refuse rather than guess.
		e.log.Errorf("Offer for %v has hash %x, stored hash %x; "+
			"failing back", h.Key, h.PaymentHash, rec.PaymentHash)
		return e.fail(FailStore)
	}

	height := e.Height()
	if height >= rec.FailbackHeight {
		if err := e.finish(ctx, ent, StateFailed,
			string(FailExpiry)); err != nil {
			return e.fail(FailStore)
		}
		e.log.Infof("Replayed HTLC %v is past its fail-back height "+
			"%d (height %d): failing back", h.Key,
			rec.FailbackHeight, height)
		return e.fail(FailExpiry)
	}

	switch rec.State {
	case StateReleased:
		if !e.incomingUsable(ctx, h.Key) {
			e.log.Infof("Replayed HTLC %v is released but its "+
				"incoming channel is inactive; holding until "+
				"the sender is back", h.Key)
			e.stats.decision("hold_replayed")
			return Decision{Action: ActionHold}
		}
		if err := e.finish(ctx, ent, StateResumed,
			""); err != nil {
			// The release stays recorded; lnd offers the key again
			// after the next reconnect.
			e.log.Errorf("Persist resume of %v: %v", h.Key, err)
			return Decision{Action: ActionHold}
		}
		e.log.Infof("Replayed HTLC %v was released while not offered: "+
			"resuming", h.Key)
		e.stats.decision("resume_replayed")
		return Decision{Action: ActionResume}

	default:
		e.log.Debugf("Replayed HTLC %v is still held", h.Key)
		e.stats.decision("hold_replayed")
		return Decision{Action: ActionHold}
	}
}

// replayFinal re-sends the answer for an HTLC that already reached a final
// state: lnd offering it again means the first answer did not take effect.
func (e *Engine) replayFinal(rec HeldHTLC) Decision {
	switch rec.State {
	case StateResumed:
		e.stats.decision("resume_replayed")
		return Decision{Action: ActionResume}
	case StateFailed:
		e.stats.decision("fail_replayed")
		return Decision{Action: ActionFail,
			Reason: FailReason(rec.FailReason)}
	default:
		e.log.Errorf("HTLC %v is stored as %v but not active; failing "+
			"back", rec.Key, rec.State)
		return e.fail(FailStore)
	}
}

// interceptNew decides on a flagged HTLC holdd has never seen.
func (e *Engine) interceptNew(ctx context.Context, policy *Policy,
	h HTLC, peer [33]byte) Decision {

	// A sender that cannot be released is answered first: with the
	// default mode its HTLC is an ordinary forward, which the hold's
	// fail-back margin has nothing to say about.
	if d, refused := e.refuseUnproven(peer, h.Key); refused {
		return d
	}

	height := e.Height()
	failback := h.AutoFailHeight - policy.FailbackMargin
	if failback <= height {
		e.log.Infof("HTLC %v asks for a hold but its fail-back height "+
			"%d (auto-fail %d - margin %d) is not above height %d: "+
			"failing back", h.Key, failback, h.AutoFailHeight,
			policy.FailbackMargin, height)
		return e.fail(FailExpiryMargin)
	}

	now := e.cfg.Clock.Now()
	rec := HeldHTLC{
		Key:             h.Key,
		PaymentHash:     h.PaymentHash,
		IncomingPeer:    peer,
		IncomingAmtMsat: h.IncomingAmtMsat,
		OutgoingAmtMsat: h.OutgoingAmtMsat,
		IncomingExpiry:  h.IncomingExpiry,
		OutgoingExpiry:  h.OutgoingExpiry,
		OutgoingChanID:  h.OutgoingChanID,
		AutoFailHeight:  h.AutoFailHeight,
		FailbackHeight:  failback,
		State:           StateHeld,
		HeldAt:          now,
		UpdatedAt:       now,
	}
	if policy.MaxHoldTime > 0 {
		rec.HoldDeadline = now.Add(policy.MaxHoldTime)
	}
	rec.PathExpiresAt = PathExpiry(now, height, failback,
		e.cfg.PathBlockInterval, e.cfg.MaxPathLife, rec.HoldDeadline)

	// Reserve the caps and the key under the engine lock, then write with
	// only the entry locked.
	ent := newEntry(rec)
	e.mu.Lock()
	if other, ok := e.active[h.Key]; ok {
		// A concurrent offer of the same key won the race.
		e.mu.Unlock()
		return e.interceptKnown(ctx, other, h)
	}
	if reason := e.capExceeded(policy, peer, h.IncomingAmtMsat); reason != "" {
		e.mu.Unlock()
		e.log.Infof("HTLC %v (%d msat from %x) over cap %s: failing "+
			"back", h.Key, h.IncomingAmtMsat, peer, reason)
		return e.fail(reason)
	}
	// Nobody can reach ent before it is in the map, so locking it here
	// cannot block.
	ent.mu.Lock()
	defer ent.mu.Unlock()
	e.track(ent)
	e.mu.Unlock()

	stored, inserted, err := e.cfg.Store.InsertHeld(ctx, rec)
	if err != nil {
		e.drop(ent)
		if ctx.Err() != nil {
			// Shutting down: answer nothing, lnd offers it again
			// to the next run.
			return Decision{Action: ActionHold}
		}
		e.log.Errorf("Persist hold of %v failed, failing back: %v",
			h.Key, err)
		return e.fail(FailStore)
	}
	if !inserted {
		// Stored by an earlier offer whose entry has left the active
		// set; the stored record wins.
		if stored.State.Final() {
			e.drop(ent)
			return e.replayFinal(stored)
		}
		ent.rec = stored
	}

	// A release may have come before the HTLC did.
	pending, ok, err := e.cfg.Store.TakePendingRelease(ctx, h.Key,
		h.PaymentHash, now)
	if err != nil {
		e.log.Errorf("Pending release lookup for %v: %v", h.Key, err)
	}
	if ok {
		if err := e.transition(ctx, ent, StateReleased,
			pending.Source); err == nil {

			if err := e.finish(ctx, ent, StateResumed,
				""); err == nil {

				e.log.Infof("HTLC %v matched an early release: "+
					"resuming", h.Key)
				e.stats.decision("resume_early_release")
				return Decision{Action: ActionResume}
			}
		}
		e.log.Errorf("Applying early release to %v failed; holding",
			h.Key)
	}

	e.log.Infof("Holding HTLC %v hash=%x amt=%d msat fail-back height "+
		"%d (auto-fail %d, height %d)", h.Key, h.PaymentHash,
		h.IncomingAmtMsat, failback, h.AutoFailHeight, height)
	e.stats.decision("hold")
	e.notify(EventHeld, ent.rec)
	return Decision{Action: ActionHold}
}

// Release resumes the HTLC an authenticated release names. source says what
// released it ("onion", "manual").
func (e *Engine) Release(ctx context.Context, key CircuitKey,
	hash [32]byte, source string) (ReleaseOutcome, error) {

	e.mu.Lock()
	ent, ok := e.active[key]
	e.mu.Unlock()
	if !ok {
		return e.releaseInactive(ctx, key, hash, source)
	}

	ent.mu.Lock()
	if ent.removed {
		ent.mu.Unlock()
		return e.releaseInactive(ctx, key, hash, source)
	}
	defer ent.mu.Unlock()
	if ent.rec.PaymentHash != hash {
		return e.releaseOutcome(ReleaseMismatch), nil
	}
	if ent.rec.State == StateReleased {
		return e.releaseOutcome(ReleaseDuplicate), nil
	}
	if err := e.transition(ctx, ent, StateReleased,
		source); err != nil {
		return "", err
	}
	e.log.Infof("Release of %v by %s: resuming", key, source)
	e.resumeReleased(ctx, ent)
	return e.releaseOutcome(ReleaseMatched), nil
}

// resumeReleased sends the resume for a released entry. A key not offered
// right now stays released and resumes when lnd offers it again.
func (e *Engine) resumeReleased(ctx context.Context, ent *entry) {
	key := ent.rec.Key
	err := e.cfg.Resolver.Resume(ctx, key)
	switch {
	case errors.Is(err, ErrNotOffered):
		e.log.Infof("HTLC %v released while lnd does not offer it; "+
			"resuming when it is replayed", key)
		return
	case errors.Is(err, ErrIncomingInactive):
		e.log.Infof("HTLC %v released while its incoming channel is "+
			"inactive (sender offline); resuming when it is back", key)
		return
	case err != nil:
		e.log.Errorf("Resume of %v failed, it stays released: %v",
			key, err)
		return
	}
	if err := e.finish(ctx, ent, StateResumed, ""); err != nil {
		// lnd has the resume; the record says released until the
		// next replay or the fail-back height cleans it up.
		e.log.Errorf("Persist resumed state of %v: %v", key, err)
	}
}

// releaseInactive handles a release for a key with no active entry.
func (e *Engine) releaseInactive(ctx context.Context, key CircuitKey,
	hash [32]byte, source string) (ReleaseOutcome, error) {

	rec, err := e.cfg.Store.GetHeld(ctx, key)
	switch {
	case err == nil:
		if rec.PaymentHash != hash {
			return e.releaseOutcome(ReleaseMismatch), nil
		}
		if rec.State == StateFailed {
			return e.releaseOutcome(ReleaseTooLate), nil
		}
		return e.releaseOutcome(ReleaseDuplicate), nil

	case !errors.Is(err, ErrUnknownHTLC):
		return "", err
	}

	now := e.cfg.Clock.Now()
	err = e.cfg.Store.PutPendingRelease(ctx, PendingRelease{
		Key:         key,
		PaymentHash: hash,
		Source:      source,
		ReceivedAt:  now,
		ExpiresAt:   now.Add(e.Policy().PendingReleaseTTL),
	})
	if err != nil {
		return "", err
	}
	// The HTLC may have been intercepted between the lookups above and
	// the write: it then missed the pending release, so apply it now.
	e.mu.Lock()
	_, arrived := e.active[key]
	e.mu.Unlock()
	if arrived {
		_, _, _ = e.cfg.Store.TakePendingRelease(ctx, key, hash, now)
		return e.Release(ctx, key, hash, source)
	}
	e.log.Infof("Release for %v arrived before its HTLC; kept until %v",
		key, now.Add(e.Policy().PendingReleaseTTL))
	return e.releaseOutcome(ReleaseEarly), nil
}

// Fail fails a held HTLC back by hand.
func (e *Engine) Fail(ctx context.Context, key CircuitKey) error {
	e.mu.Lock()
	ent, ok := e.active[key]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownHTLC, key)
	}
	return e.failBack(ctx, ent, FailManual)
}

// failBack persists the failure, then tells lnd. A key that lnd does not
// offer right now is failed when lnd replays it.
func (e *Engine) failBack(ctx context.Context, ent *entry,
	reason FailReason) error {

	ent.mu.Lock()
	defer ent.mu.Unlock()
	key := ent.key
	if ent.removed {
		return fmt.Errorf("%w: %v", ErrNotHeld, key)
	}
	if reason == FailPathExpired {
		// Released since the tick found it: it needs no path any more.
		if ent.rec.State != StateHeld {
			e.mu.Lock()
			e.byPathExpiry.remove(ent)
			e.mu.Unlock()
			return fmt.Errorf("%w: %v is %v", ErrNotHeld, key,
				ent.rec.State)
		}
		e.log.Warnf("HTLC %v is still held but its release paths "+
			"expired at %v, before its fail-back height %d (height "+
			"%d): failing back, as nobody can release it now", key,
			ent.pathExpiry.UTC(), ent.failbackHeight, e.Height())
	}
	if err := e.finish(ctx, ent, StateFailed,
		string(reason)); err != nil {
		return err
	}
	e.stats.decision("fail_" + string(reason))
	err := e.cfg.Resolver.Fail(ctx, key)
	switch {
	case errors.Is(err, ErrNotOffered):
		e.log.Infof("HTLC %v failed (%s) while lnd does not offer it; "+
			"failing it when it is replayed", key, reason)
	case err != nil:
		e.log.Errorf("Fail of %v (%s) not sent: %v", key, reason, err)
	default:
		e.log.Infof("Failed HTLC %v back: %s", key, reason)
	}
	return nil
}

// transition persists a move between active states.
func (e *Engine) transition(ctx context.Context, ent *entry,
	to HoldState, note string) error {

	rec, err := e.cfg.Store.Transition(ctx, ent.rec.Key,
		[]HoldState{ent.rec.State}, to, note, e.cfg.Clock.Now())
	if err != nil {
		return err
	}
	if to == StateReleased {
		// A released HTLC waits for its sender, not for a release:
		// its paths may expire.
		e.mu.Lock()
		e.byPathExpiry.remove(ent)
		e.mu.Unlock()
	}
	ent.rec = rec
	e.notify(EventKind(to), rec)
	return nil
}

// finish persists a final state and drops the entry from the active set.
// The caller holds ent.mu.
func (e *Engine) finish(ctx context.Context, ent *entry,
	to HoldState, note string) error {

	if err := e.transition(ctx, ent, to, note); err != nil {
		return err
	}
	e.drop(ent)
	return nil
}

// drop removes an entry from the active set and releases its caps.
func (e *Engine) drop(ent *entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur, ok := e.active[ent.key]; ok && cur == ent {
		delete(e.active, ent.key)
		e.byFailback.remove(ent)
		e.byDeadline.remove(ent)
		e.byPathExpiry.remove(ent)
		e.subUsage(ent.peer, ent.amt)
	}
	ent.removed = true
}

// track adds ent to the active set, the due heaps and the caps' usage.
// e.mu is held.
func (e *Engine) track(ent *entry) {
	e.active[ent.key] = ent
	e.byFailback.add(ent)
	if !ent.deadline.IsZero() {
		e.byDeadline.add(ent)
	}
	if !ent.pathExpiry.IsZero() && ent.rec.State == StateHeld {
		e.byPathExpiry.add(ent)
	}
	e.addUsage(ent.peer, ent.amt)
}

func (e *Engine) fail(reason FailReason) Decision {
	e.stats.decision("fail_" + string(reason))
	return Decision{Action: ActionFail, Reason: reason}
}

func (e *Engine) releaseOutcome(o ReleaseOutcome) ReleaseOutcome {
	e.stats.release(string(o))
	return o
}

func (e *Engine) notify(kind EventKind, rec HeldHTLC) {
	if e.cfg.Observer != nil {
		e.cfg.Observer.HoldEvent(Event{Kind: kind, HTLC: rec})
	}
}

// capExceeded returns the cap an additional HTLC would break. e.mu is held.
func (e *Engine) capExceeded(p *Policy, peer [33]byte,
	amt uint64) FailReason {

	pu := e.perPeer[peer]
	switch {
	case p.MaxHeldTotal > 0 && e.total.count+1 > p.MaxHeldTotal:
		return FailCapTotal
	case p.MaxHeldMsatTotal > 0 && e.total.msat+amt > p.MaxHeldMsatTotal:
		return FailCapTotalMsat
	case p.MaxHeldPerPeer > 0 && pu.count+1 > p.MaxHeldPerPeer:
		return FailCapPeerCount
	case p.MaxHeldMsatPerPeer > 0 && pu.msat+amt > p.MaxHeldMsatPerPeer:
		return FailCapPeerMsat
	}
	return ""
}

func (e *Engine) addUsage(peer [33]byte, amt uint64) {
	pu := e.perPeer[peer]
	pu.count++
	pu.msat += amt
	e.perPeer[peer] = pu
	e.total.count++
	e.total.msat += amt
}

func (e *Engine) subUsage(peer [33]byte, amt uint64) {
	pu := e.perPeer[peer]
	pu.count--
	pu.msat -= amt
	if pu.count == 0 {
		delete(e.perPeer, peer)
	} else {
		e.perPeer[peer] = pu
	}
	e.total.count--
	e.total.msat -= amt
}

// blockLoop fails back every active HTLC that reached its fail-back height.
func (e *Engine) blockLoop(blocks <-chan int32) {
	defer e.wg.Done()

	// HTLCs loaded from the store may have passed their fail-back height
	// while holdd was down.
	start := e.Height()
	e.failDue(e.byFailback, FailExpiry, func(ent *entry) bool {
		return ent.failbackHeight <= start
	})
	for {
		select {
		case h, ok := <-blocks:
			if !ok {
				e.log.Warn("Block source closed")
				return
			}
			e.height.Store(h)
			e.failDue(e.byFailback, FailExpiry,
				func(ent *entry) bool {
					return ent.failbackHeight <= h
				})
		case <-e.quit:
			return
		}
	}
}

// tickLoop enforces the maximum hold time, fails back held HTLCs whose
// release paths expired, and prunes stale early releases.
func (e *Engine) tickLoop() {
	defer e.wg.Done()
	for {
		select {
		case <-e.cfg.Clock.TickAfter(e.cfg.TickInterval):
			now := e.cfg.Clock.Now()
			e.failDue(e.byDeadline, FailMaxHoldTime,
				func(ent *entry) bool {
					return !now.Before(ent.deadline)
				})
			e.failDue(e.byPathExpiry, FailPathExpired,
				func(ent *entry) bool {
					return !now.Before(ent.pathExpiry)
				})
			n, err := e.cfg.Store.PrunePendingReleases(
				context.Background(), now)
			if err != nil {
				e.log.Errorf("Prune pending releases: %v", err)
			} else if n > 0 {
				e.log.Infof("Dropped %d expired early releases", n)
			}
		case <-e.quit:
			return
		}
	}
}

// failDueWorkers bounds how many fail-backs failDue runs at once. Run one
// after another, a block that takes many HTLCs to their fail-back height
// costs one fsynced store write each; run side by side, the store commits
// them together.
const failDueWorkers = 32

// failDue fails back, for reason, every active entry that isDue finds
// due in h (see dueHeap.due).
func (e *Engine) failDue(h *dueHeap, reason FailReason,
	isDue func(*entry) bool) {

	e.mu.Lock()
	due := h.due(isDue)
	e.mu.Unlock()

	failBack := func(ent *entry) {
		err := e.failBack(context.Background(), ent, reason)
		if err != nil && !errors.Is(err, ErrNotHeld) {
			e.log.Errorf("Fail-back of %v (%s): %v", ent.key, reason,
				err)
		}
	}
	if len(due) == 1 {
		failBack(due[0])
		return
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, failDueWorkers)
	for _, ent := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() {
				<-sem
				wg.Done()
			}()
			failBack(ent)
		}()
	}
	wg.Wait()
}
