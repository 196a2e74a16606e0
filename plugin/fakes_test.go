package plugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/routing/route"
)

// fakeStore is an in-memory Store that enforces the store's state machine
// and can be told to fail.
type fakeStore struct {
	mu       sync.Mutex
	htlcs    map[CircuitKey]HeldHTLC
	pending  map[CircuitKey]PendingRelease
	writes   int
	failNext error

	// beforePut runs when PutPendingRelease is called, before the row is
	// written and outside the store's lock.
	beforePut func()

	// beforeWrite runs when InsertHeld or Transition is called, before
	// anything is written and outside the store's lock.
	beforeWrite func(method string, key CircuitKey)

	// calls counts every call by method name.
	calls map[string]int
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		htlcs:   make(map[CircuitKey]HeldHTLC),
		pending: make(map[CircuitKey]PendingRelease),
		calls:   make(map[string]int),
	}
}

func (f *fakeStore) count(method string) {
	f.mu.Lock()
	f.calls[method]++
	f.mu.Unlock()
}

func (f *fakeStore) hookWrite(method string, key CircuitKey) {
	f.mu.Lock()
	hook := f.beforeWrite
	f.mu.Unlock()
	if hook != nil {
		hook(method, key)
	}
}

func (f *fakeStore) setBeforeWrite(hook func(string, CircuitKey)) {
	f.mu.Lock()
	f.beforeWrite = hook
	f.mu.Unlock()
}

// callCounts returns how often each method was called.
func (f *fakeStore) callCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.calls)
}

func (f *fakeStore) takeErr() error {
	err := f.failNext
	f.failNext = nil
	return err
}

func (f *fakeStore) InsertHeld(_ context.Context, h HeldHTLC) (
	HeldHTLC, bool, error) {

	f.count("InsertHeld")
	f.hookWrite("InsertHeld", h.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return HeldHTLC{}, false, err
	}
	if old, ok := f.htlcs[h.Key]; ok {
		return old, false, nil
	}
	f.writes++
	f.htlcs[h.Key] = h
	return h, true, nil
}

func (f *fakeStore) LookupHTLC(_ context.Context, key CircuitKey,
	hash lntypes.Hash, now time.Time) (HTLCLookup, error) {

	f.count("LookupHTLC")
	f.mu.Lock()
	defer f.mu.Unlock()
	var l HTLCLookup
	if h, ok := f.htlcs[key]; ok {
		l.HTLC, l.Found = h, true
		return l, nil
	}
	r, ok := f.pending[key]
	if ok && r.PaymentHash == hash && now.Before(r.ExpiresAt) {
		l.Pending, l.HasPending = r, true
	}
	return l, nil
}

func (f *fakeStore) InsertReleased(_ context.Context, h HeldHTLC,
	p PendingRelease, at time.Time) (HeldHTLC, bool, error) {

	f.count("InsertReleased")
	f.hookWrite("InsertReleased", h.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return HeldHTLC{}, false, err
	}
	if old, ok := f.htlcs[h.Key]; ok {
		return old, false, nil
	}
	h.State = StateResumed
	h.ReleaseSource = p.Source
	h.ReleasedAt, h.ResolvedAt, h.UpdatedAt = at, at, at
	f.writes++
	f.htlcs[h.Key] = h
	delete(f.pending, p.Key)
	return h, true, nil
}

func (f *fakeStore) Transition(_ context.Context, key CircuitKey,
	from []HoldState, to HoldState, note string,
	at time.Time) (HeldHTLC, error) {

	f.count("Transition")
	f.hookWrite("Transition", key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return HeldHTLC{}, err
	}
	h, ok := f.htlcs[key]
	if !ok {
		return h, ErrUnknownHTLC
	}
	okFrom := false
	for _, s := range from {
		okFrom = okFrom || s == h.State
	}
	if !okFrom || !ValidTransition(h.State, to) {
		return h, fmt.Errorf("%w: %s -> %s", ErrInvalidTransition,
			h.State, to)
	}
	h.State = to
	h.UpdatedAt = at
	switch to {
	case StateReleased:
		h.ReleasedAt = at
		h.ReleaseSource = note
	case StateFailed:
		h.FailReason = note
		h.ResolvedAt = at
	case StateResumed, StateGone:
		h.ResolvedAt = at
	}
	f.writes++
	f.htlcs[key] = h
	return h, nil
}

func (f *fakeStore) ListHTLCs(_ context.Context, flt ListFilter) (
	[]HeldHTLC, error) {

	f.count("ListHTLCs")
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []HeldHTLC
	for _, h := range f.htlcs {
		match := len(flt.States) == 0
		for _, s := range flt.States {
			match = match || s == h.State
		}
		if match {
			out = append(out, h)
		}
	}
	return out, nil
}

func (f *fakeStore) PutPendingRelease(_ context.Context,
	r PendingRelease) error {

	f.count("PutPendingRelease")
	f.mu.Lock()
	hook := f.beforePut
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pending[r.Key]; !ok {
		f.pending[r.Key] = r
	}
	return nil
}

func (f *fakeStore) PrunePendingReleases(_ context.Context,
	now time.Time) (int64, error) {

	f.count("PrunePendingReleases")
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for k, r := range f.pending {
		if !now.Before(r.ExpiresAt) {
			delete(f.pending, k)
			n++
		}
	}
	return n, nil
}

func (f *fakeStore) pendingCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

func (f *fakeStore) get(key CircuitKey) (HeldHTLC, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.htlcs[key]
	return h, ok
}

func (f *fakeStore) writeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// resolution is one answer the fake resolver sent.
type resolution struct {
	key    CircuitKey
	action Action
}

// fakeResolver records resolutions. Keys in notOffered answer
// ErrNotOffered, as the interceptor does while lnd does not offer them.
type fakeResolver struct {
	mu         sync.Mutex
	sent       []resolution
	notOffered map[CircuitKey]bool

	// beforeResolve runs before a resolution is sent, outside the
	// resolver's lock, as a stand-in for the RPC.
	beforeResolve func(CircuitKey)
}

func (r *fakeResolver) setBeforeResolve(hook func(CircuitKey)) {
	r.mu.Lock()
	r.beforeResolve = hook
	r.mu.Unlock()
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{notOffered: make(map[CircuitKey]bool)}
}

func (r *fakeResolver) resolve(key CircuitKey, a Action) error {
	r.mu.Lock()
	hook := r.beforeResolve
	r.mu.Unlock()
	if hook != nil {
		hook(key)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notOffered[key] {
		return ErrNotOffered
	}
	r.sent = append(r.sent, resolution{key, a})
	return nil
}

func (r *fakeResolver) Resume(_ context.Context, key CircuitKey) error {
	return r.resolve(key, ActionResume)
}

func (r *fakeResolver) Fail(_ context.Context, key CircuitKey) error {
	return r.resolve(key, ActionFail)
}

func (r *fakeResolver) setOffered(key CircuitKey, offered bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notOffered[key] = !offered
}

func (r *fakeResolver) resolutions() []resolution {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]resolution(nil), r.sent...)
}

// fakeBlocks is a block source driven by the test.
type fakeBlocks struct {
	ch chan int32
}

func newFakeBlocks(start int32) *fakeBlocks {
	b := &fakeBlocks{ch: make(chan int32, 1)}
	b.ch <- start
	return b
}

func (b *fakeBlocks) SubscribeBlocks(context.Context) (<-chan int32, error) {
	return b.ch, nil
}

// fakePeers maps every channel to peer byte chanID%256.
type fakePeers struct{}

func (fakePeers) PeerOf(_ context.Context, chanID uint64) (route.Vertex, error) {
	if chanID == 0 {
		return route.Vertex{}, errors.New("unknown channel")
	}
	var p route.Vertex
	p[0] = 0x02
	p[1] = byte(chanID)
	return p, nil
}

// ChannelInfo says every channel is private, with PeerOf's peer: the
// LSP's own clients, whose HTLCs may be held.
func (f fakePeers) ChannelInfo(ctx context.Context, chanID uint64) (route.Vertex,
	bool, error) {

	p, err := f.PeerOf(ctx, chanID)
	return p, true, err
}

// fakeChannel is one channel fakeChannels knows.
type fakeChannel struct {
	peer    route.Vertex
	private bool
}

// fakeChannels is a ChannelInfoSource over a fixed set of channels that
// fails with err, if set, and counts its calls.
type fakeChannels struct {
	mu       sync.Mutex
	channels map[uint64]fakeChannel
	err      error
	calls    int
}

func (f *fakeChannels) ChannelInfo(_ context.Context, chanID uint64) (
	route.Vertex, bool, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return route.Vertex{}, false, f.err
	}
	ch, ok := f.channels[chanID]
	if !ok {
		return route.Vertex{}, false, fmt.Errorf("channel %d not found",
			chanID)
	}
	return ch.peer, ch.private, nil
}

// recordingObserver records events.
type recordingObserver struct {
	mu     sync.Mutex
	events []Event
}

func (o *recordingObserver) HoldEvent(ev Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

func (o *recordingObserver) kinds() []EventKind {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []EventKind
	for _, e := range o.events {
		out = append(out, e.Kind)
	}
	return out
}

// fakeLinks is a LinkSource driven by the test: every channel is active
// unless set inactive, and events go out when the test sends them.
type fakeLinks struct {
	ch chan LinkEvent

	mu       sync.Mutex
	inactive map[uint64]bool
	calls    int
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{ch: make(chan LinkEvent),
		inactive: make(map[uint64]bool)}
}

func (f *fakeLinks) SubscribeLinks(context.Context) (<-chan LinkEvent,
	error) {

	return f.ch, nil
}

func (f *fakeLinks) LinkActive(_ context.Context, chanID uint64) (bool,
	error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return !f.inactive[chanID], nil
}

func (f *fakeLinks) setActive(chanID uint64, active bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inactive[chanID] = !active
}

// send delivers ev and returns once the engine has handled it: the engine
// takes the next event, which it ignores, only after the first.
func (f *fakeLinks) send(ev LinkEvent) {
	f.ch <- ev
	f.ch <- LinkEvent{}
}
