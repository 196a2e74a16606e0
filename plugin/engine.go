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
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
)

// Config wires the engine to its dependencies.
type Config struct {
	Policy   Policy
	Store    Store
	Resolver Resolver
	Peers    ChannelPeers
	Blocks   BlockSource

	// Links tells the engine which incoming links are active, and when
	// one becomes active: a released HTLC is resumed only over an active
	// incoming link (see mayResume). Nil: every link counts as active.
	Links LinkSource

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

// entry is an active (held or released) HTLC. Only the holder of its
// key's lock (Engine.keys) changes it, and it does so under Engine.mu.
type entry struct {
	// key, peer, amt, failbackHeight, deadline and pathExpiry never
	// change after the entry is created, so the deadline loops read them
	// without a lock.
	key            CircuitKey
	peer           route.Vertex
	amt            uint64
	failbackHeight int32
	deadline       time.Time
	pathExpiry     time.Time

	rec HeldHTLC

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

	// keys serializes every decision about one circuit key, from its
	// read to its apply (see decide.go), so that the store write and the
	// answer to lnd for that key happen in one order; different keys
	// never wait for each other.
	keys keyLocks

	// mu guards active, released, the entries' records, the due heaps,
	// perPeer and total. It is never held across I/O.
	mu     sync.Mutex
	active map[CircuitKey]*entry

	// released has the active entries in state released: waiting for
	// their resume to reach lnd, e.g. for their incoming link.
	released map[CircuitKey]*entry

	byFailback *dueHeap
	byDeadline *dueHeap
	perPeer    map[route.Vertex]usage
	total      usage

	// byPathExpiry has the held (not released) entries whose release
	// paths expire at a known time.
	byPathExpiry *dueHeap

	stats *counters

	// loopCtx is the context of the engine's subscriptions (blocks,
	// links) and of the lnd reads its loops make; Stop cancels it, so
	// neither a subscription nor a link read outlives the engine. Store
	// writes never take it: a decided write always completes.
	loopCtx   context.Context
	stopLoops context.CancelFunc

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
		cfg:      cfg,
		log:      cfg.Logger,
		active:   make(map[CircuitKey]*entry),
		released: make(map[CircuitKey]*entry),
		keys: keyLocks{
			locks: make(map[CircuitKey]*keyLock),
		},
		byFailback: newFailbackHeap(),
		byDeadline: newDeadlineHeap(),
		perPeer:    make(map[route.Vertex]usage),
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

	e.loopCtx, e.stopLoops = context.WithCancel(ctx)
	blocks, err := e.cfg.Blocks.SubscribeBlocks(e.loopCtx)
	if err != nil {
		e.stopLoops()
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
		e.stopLoops()
		return ctx.Err()
	}

	var links <-chan LinkEvent
	if e.cfg.Links != nil {
		links, err = e.cfg.Links.SubscribeLinks(e.loopCtx)
		if err != nil {
			e.stopLoops()
			return fmt.Errorf("subscribe links: %w", err)
		}
	}

	e.wg.Add(3)
	go e.blockLoop(blocks)
	go e.tickLoop()
	go e.linkLoop(links)
	return nil
}

// Stop ends the engine's goroutines.
func (e *Engine) Stop() error {
	e.stopOnce.Do(func() {
		close(e.quit)
		if e.stopLoops != nil {
			e.stopLoops()
		}
	})
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

	unlock := e.keys.lock(h.Key)
	defer unlock()

	// Not active, it may be a replay of an HTLC that reached a final
	// state whose answer never got to lnd; an HTLC held under hold types
	// that have since changed is looked up too, so it keeps its state.
	v, err := e.read(ctx, h.Key, h.PaymentHash)
	if err != nil {
		if ctx.Err() != nil {
			return Decision{Action: ActionHold}
		}
		e.log.Errorf("Store lookup for %v failed, failing HTLC back: "+
			"%v", h.Key, err)
		return e.apply(ctx, h.Key, failStep(FailStore, "")).answer
	}

	var s step
	switch {
	case v.found:
		link := linkUnknown
		if v.active && v.rec.State == StateReleased {
			link = e.linkState(ctx, h.Key)
		}
		s = decideReplay(v, h, e.Height(), link)

	case !flagged:
		s = passStep()

	default:
		in := newHTLCInput{
			h:                 h,
			policy:            policy,
			height:            e.Height(),
			now:               e.cfg.Clock.Now(),
			admission:         e.cfg.Admission,
			readsDeliveries:   true,
			unproven:          e.cfg.UnprovenSender,
			pathBlockInterval: e.cfg.PathBlockInterval,
			maxPathLife:       e.cfg.MaxPathLife,
			pending:           v.pending,
			hasPending:        v.hasPending,
		}
		in.peer, in.private, in.chanErr = e.cfg.Channels.ChannelInfo(ctx,
			h.Key.ChanID)
		if in.chanErr != nil && ctx.Err() != nil {
			// Shutting down: answer nothing, lnd offers it again.
			return Decision{Action: ActionHold}
		}
		if e.cfg.Senders != nil && in.chanErr == nil {
			in.readsDeliveries = e.cfg.Senders.ReadsDeliveries(in.peer)
		}
		s = decideNew(in)
	}
	return e.apply(ctx, h.Key, s).answer
}

// interceptOnChain records that lnd took over an HTLC whose incoming
// channel was force-closed (see decideOnChain).
func (e *Engine) interceptOnChain(ctx context.Context, h HTLC) Decision {
	e.stats.decision("onchain")
	e.mu.Lock()
	_, ok := e.active[h.Key]
	e.mu.Unlock()
	if !ok {
		return Decision{Action: ActionHold}
	}
	unlock := e.keys.lock(h.Key)
	defer unlock()
	return e.apply(ctx, h.Key, decideOnChain(e.readActive(h.Key))).answer
}

// Release resumes the HTLC an authenticated release names. source says what
// released it ("onion", "manual").
func (e *Engine) Release(ctx context.Context, key CircuitKey,
	hash lntypes.Hash, source string) (ReleaseOutcome, error) {

	unlock := e.keys.lock(key)
	defer unlock()

	v, err := e.read(ctx, key, hash)
	if err != nil {
		return "", err
	}
	in := releaseInput{
		key:    key,
		hash:   hash,
		source: source,
		now:    e.cfg.Clock.Now(),
		ttl:    e.Policy().PendingReleaseTTL,
		link:   linkUnknown,
	}
	if v.active && v.rec.State == StateHeld &&
		v.rec.PaymentHash == hash {

		in.link = e.linkState(ctx, key)
	}
	res := e.apply(ctx, key, decideRelease(v, in))
	if res.err != nil {
		return "", res.err
	}
	return res.outcome, nil
}

// Fail fails a held HTLC back by hand.
func (e *Engine) Fail(ctx context.Context, key CircuitKey) error {
	e.mu.Lock()
	_, ok := e.active[key]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownHTLC, key)
	}
	return e.failBack(ctx, key, FailManual)
}

// failBack fails an active HTLC back for reason: persisted first, then
// lnd is told. A key that lnd does not offer right now is failed when lnd
// replays it.
func (e *Engine) failBack(ctx context.Context, key CircuitKey,
	reason FailReason) error {

	unlock := e.keys.lock(key)
	defer unlock()
	v := e.readActive(key)
	if !v.active {
		return fmt.Errorf("%w: %v", ErrNotHeld, key)
	}
	// A path expiry found on an entry released since the tick looked is
	// no fail-back (decideFail): setRec took it out of the path heap.
	return e.apply(ctx, key, decideFail(v, reason, e.Height())).err
}

// linkBecameActive resumes the released HTLCs whose incoming channel is
// active now that the engine heard chanID became active (0: a channel lnd
// could not name, or a re-subscription after which any channel may have
// come back).
func (e *Engine) linkBecameActive(ctx context.Context, chanID uint64) {
	e.mu.Lock()
	keys := make([]CircuitKey, 0, len(e.released))
	for k := range e.released {
		keys = append(keys, k)
	}
	e.mu.Unlock()

	for _, k := range keys {
		if ctx.Err() != nil {
			// Stopping: the rest are resumed on replay or by the
			// next run's link events.
			return
		}
		link := linkActive
		if k.ChanID != chanID {
			// An alias, or another channel: ask the link view.
			link = e.linkState(ctx, k)
			if link == linkUnknown {
				// Only the event's own channel is known to be
				// back; others wait for their own event.
				continue
			}
		}
		unlock := e.keys.lock(k)
		e.apply(context.WithoutCancel(ctx), k,
			decideLinkActive(e.readActive(k), link))
		unlock()
	}
}

// read returns what the engine knows about key: its active record from
// memory, else the stored record and any pending release for (key, hash)
// from one store read. The caller holds the key's lock.
func (e *Engine) read(ctx context.Context, key CircuitKey,
	hash lntypes.Hash) (keyView, error) {

	if v := e.readActive(key); v.active {
		return v, nil
	}
	l, err := e.cfg.Store.LookupHTLC(ctx, key, hash, e.cfg.Clock.Now())
	if err != nil {
		return keyView{}, err
	}
	return keyView{
		rec: l.HTLC, found: l.Found,
		pending: l.Pending, hasPending: l.HasPending,
	}, nil
}

// readActive returns the key's active record, if it has one.
func (e *Engine) readActive(key CircuitKey) keyView {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.active[key]
	if !ok {
		return keyView{rec: HeldHTLC{Key: key}}
	}
	return keyView{rec: ent.rec, found: true, active: true}
}

// linkState asks the link view whether key's incoming channel is active.
func (e *Engine) linkState(ctx context.Context,
	key CircuitKey) linkState {

	if e.cfg.Links == nil {
		return linkUnknown
	}
	active, err := e.cfg.Links.LinkActive(ctx, key.ChanID)
	switch {
	case err != nil:
		return linkUnknown
	case active:
		return linkActive
	}
	return linkInactive
}

// applied is what applying a step came to.
type applied struct {
	answer  Decision
	outcome ReleaseOutcome
	err     error
}

// apply carries out a decision for key, whose lock the caller holds: the
// step's one store write first, then the in-memory state, the counters, the
// observer and the answer to lnd. A resume sent through the Resolver that
// lnd took is persisted as resumed after it.
func (e *Engine) apply(ctx context.Context, key CircuitKey,
	s step) applied {

	if s.err != nil {
		return applied{err: s.err}
	}
	out := applied{answer: s.answer, outcome: s.outcome}

	switch s.write {
	case writeInsertHeld:
		var (
			ent    = newEntry(s.rec)
			policy = e.policy.Load()
			reason FailReason
		)
		// Reserve the caps under the engine lock, then write with
		// only the key locked.
		e.mu.Lock()
		reason = capExceeded(policy, e.perPeer[s.rec.IncomingPeer],
			e.total, s.rec.IncomingAmtMsat)
		if reason == "" {
			e.track(ent)
		}
		e.mu.Unlock()
		if reason != "" {
			e.log.Infof("HTLC %v (%d msat from %v) over cap %s: "+
				"failing back", key, s.rec.IncomingAmtMsat,
				s.rec.IncomingPeer, reason)
			return e.apply(ctx, key, failStep(reason, ""))
		}
		stored, inserted, err := e.cfg.Store.InsertHeld(ctx, s.rec)
		if err != nil {
			e.drop(ent)
			return e.writeFailed(ctx, key, s, err)
		}
		if !inserted {
			// Stored by an offer the engine no longer tracks
			// (another run): the stored record wins.
			if stored.State.Final() {
				e.drop(ent)
				return e.apply(ctx, key,
					decideFinalReplay(stored))
			}
			e.setRec(ent, stored)
		}
		e.notify(EventHeld, ent.rec)

	case writeInsertResumed:
		e.mu.Lock()
		reason := capExceeded(e.policy.Load(),
			e.perPeer[s.rec.IncomingPeer], e.total,
			s.rec.IncomingAmtMsat)
		e.mu.Unlock()
		if reason != "" {
			e.log.Infof("HTLC %v (%d msat from %v) over cap %s: "+
				"failing back", key, s.rec.IncomingAmtMsat,
				s.rec.IncomingPeer, reason)
			return e.apply(ctx, key, failStep(reason, ""))
		}
		rec, inserted, err := e.cfg.Store.InsertReleased(ctx, s.rec,
			s.pending, s.rec.HeldAt)
		if err != nil {
			return e.writeFailed(ctx, key, s, err)
		}
		if !inserted {
			// Stored by an offer the engine does not track
			// (another run): the stored record wins.
			return e.apply(ctx, key, decideFinalReplay(rec))
		}
		released := rec
		released.State = StateReleased
		e.notify(EventReleased, released)
		e.notify(EventResumed, rec)

	case writeTransition:
		rec, err := e.cfg.Store.Transition(ctx, key,
			[]HoldState{s.from}, s.to, s.note, e.cfg.Clock.Now())
		if err != nil {
			return e.writeFailed(ctx, key, s, err)
		}
		e.mu.Lock()
		ent := e.active[key]
		e.mu.Unlock()
		if ent != nil {
			if s.to.Final() {
				e.drop(ent)
			} else {
				e.setRec(ent, rec)
			}
		}
		e.notify(EventKind(s.to), rec)
		if s.to == StateReleased && s.resolve == resolveNone &&
			ent != nil {

			// The link was read before this write; an Active event
			// that came during it found no released entry (setRec
			// just added it). Reading the link again now means one
			// of the two sees the other (mayResume).
			s.resolve = decideLinkActive(keyView{rec: rec,
				found: true, active: true},
				e.linkState(ctx, key)).resolve
		}

	case writePending:
		if err := e.cfg.Store.PutPendingRelease(ctx,
			s.pending); err != nil {

			return applied{err: err}
		}
	}

	e.count(s)
	if s.why != "" {
		e.log.Infof("%s", capitalize(s.why))
	}

	switch s.resolve {
	case resolveResume:
		e.resume(ctx, key)
	case resolveFail:
		e.sendFail(ctx, key, FailReason(s.note))
	}
	return out
}

// writeFailed is what a step whose write failed comes to.
func (e *Engine) writeFailed(ctx context.Context, key CircuitKey,
	s step, err error) applied {

	if s.write == writeInsertHeld || s.write == writeInsertResumed {
		if ctx.Err() != nil {
			// Shutting down: answer nothing, lnd offers it again
			// to the next run.
			return applied{answer: Decision{Action: ActionHold},
				err: err}
		}
	}
	e.log.Errorf("Persist %v of %v failed: %v", s.answer.Action, key, err)
	if s.errAnswer.Action == ActionFail {
		e.stats.decision("fail_" + string(s.errAnswer.Reason))
	}
	return applied{answer: s.errAnswer, err: err}
}

// resume sends the resume of a released HTLC and, once lnd took it,
// persists it as resumed. A key not offered right now stays released and
// resumes when lnd offers it again.
func (e *Engine) resume(ctx context.Context, key CircuitKey) {
	err := e.cfg.Resolver.Resume(ctx, key)
	switch {
	case errors.Is(err, ErrNotOffered):
		e.log.Infof("HTLC %v released while lnd does not offer it; "+
			"resuming when it is replayed", key)
		return
	case err != nil:
		e.log.Errorf("Resume of %v failed, it stays released: %v",
			key, err)
		return
	}
	// lnd has the resume, so the record must say so whatever happens to
	// the caller's context (an RPC or a transport read that ends right
	// now); should the write itself fail, the record says released until
	// the next replay or the fail-back height cleans it up.
	e.apply(context.WithoutCancel(ctx), key, step{write: writeTransition,
		from: StateReleased, to: StateResumed})
}

// sendFail tells lnd to fail a key back whose failure is persisted.
func (e *Engine) sendFail(ctx context.Context, key CircuitKey,
	reason FailReason) {

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
}

// count counts an applied step.
func (e *Engine) count(s step) {
	switch {
	case s.pass:
		e.stats.pass()
	case s.stat != "":
		e.stats.decision(s.stat)
	}
	if s.outcome != "" {
		e.stats.release(string(s.outcome))
	}
}

// setRec replaces an active entry's record; e.mu guards it, so that
// Active reads it while the key's owner writes.
func (e *Engine) setRec(ent *entry, rec HeldHTLC) {
	e.mu.Lock()
	defer e.mu.Unlock()
	wasReleased := ent.rec.State == StateReleased
	ent.rec = rec
	switch {
	case rec.State == StateReleased && !wasReleased:
		// A released HTLC waits for its sender, not for a release:
		// its paths may expire.
		e.byPathExpiry.remove(ent)
		e.released[ent.key] = ent
	case rec.State != StateReleased && wasReleased:
		delete(e.released, ent.key)
	}
}

// drop removes an entry from the active set and releases its caps.
func (e *Engine) drop(ent *entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur, ok := e.active[ent.key]; ok && cur == ent {
		delete(e.active, ent.key)
		delete(e.released, ent.key)
		e.byFailback.remove(ent)
		e.byDeadline.remove(ent)
		e.byPathExpiry.remove(ent)
		e.subUsage(ent.peer, ent.amt)
	}
}

// track adds ent to the active set, the due heaps and the caps' usage.
// e.mu is held.
func (e *Engine) track(ent *entry) {
	e.active[ent.key] = ent
	e.byFailback.add(ent)
	if !ent.deadline.IsZero() {
		e.byDeadline.add(ent)
	}
	switch {
	case ent.rec.State == StateReleased:
		e.released[ent.key] = ent
	case !ent.pathExpiry.IsZero():
		e.byPathExpiry.add(ent)
	}
	e.addUsage(ent.peer, ent.amt)
}

func (e *Engine) notify(kind EventKind, rec HeldHTLC) {
	if e.cfg.Observer != nil {
		e.cfg.Observer.HoldEvent(Event{Kind: kind, HTLC: rec})
	}
}

// capitalize upper-cases the first letter of a log line.
func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func (e *Engine) addUsage(peer route.Vertex, amt uint64) {
	pu := e.perPeer[peer]
	pu.count++
	pu.msat += amt
	e.perPeer[peer] = pu
	e.total.count++
	e.total.msat += amt
}

func (e *Engine) subUsage(peer route.Vertex, amt uint64) {
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

// linkLoop resumes released HTLCs when their incoming link becomes active.
// A nil links never delivers.
func (e *Engine) linkLoop(links <-chan LinkEvent) {
	defer e.wg.Done()
	for {
		select {
		case ev, ok := <-links:
			if !ok {
				if e.cfg.Links != nil {
					e.log.Warn("Link source closed")
				}
				return
			}
			if ev.Active {
				e.linkBecameActive(e.loopCtx, ev.ChanID)
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
		err := e.failBack(context.Background(), ent.key, reason)
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
