package mailbox

import (
	"context"
	"sync"

	"github.com/lightningnetwork/lnd/lnwire"
)

// DefaultAsyncDepth is how many messages may wait in front of the mailbox.
const DefaultAsyncDepth = 1024

// DefaultAsyncWorkers bounds how many recipients' messages are handed to
// the mailbox at once.
const DefaultAsyncWorkers = 16

// asyncPerRecipient bounds one recipient's share of the waiting messages,
// so that a recipient whose sends hang cannot fill the queue for all.
const asyncPerRecipient = 128

// Outcomes of AsyncForwarder.HandleForward.
const (
	OutcomeQueued = "queued"
	OutcomeBusy   = "dropped_busy"
)

// AsyncForwarder hands messages to the mailbox from goroutines of its own.
// The transport that delivers onion messages (holdd's peer link, which
// also answers lnd's pings, and the release intake behind it) then never
// waits for a store write or a send to a recipient. When the queue, or the
// recipient's share of it, is full the message is dropped and counted
// (DropBusy) rather than block the transport.
//
// Messages wait per recipient. A worker takes a recipient and hands its
// messages to the mailbox one at a time, in arrival order, so a
// recipient's messages are stored in the order they came; up to workers
// recipients are served at once, round-robin when more have messages. A
// recipient whose send to lnd hangs (Mailbox.Handle sends at once to an
// online recipient) so holds up one worker only, and the other workers'
// store writes share the mailbox's group commit.
type AsyncForwarder struct {
	mb       *Mailbox
	depth    int
	perRcpt  int
	nWorkers int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	stopped bool

	// waiting holds each recipient's messages in arrival order, queued
	// their total.
	waiting map[[33]byte][]*lnwire.OnionMessage
	queued  int

	// ready lists the recipients with waiting messages and no worker,
	// in the order they became ready; served marks those a worker is on
	// or that are in ready.
	ready   [][33]byte
	served  map[[33]byte]bool
	workers int
}

// NewAsyncForwarder creates an AsyncForwarder in front of mb with room for
// depth waiting messages (DefaultAsyncDepth if depth < 1).
func NewAsyncForwarder(mb *Mailbox, depth int) *AsyncForwarder {
	if depth < 1 {
		depth = DefaultAsyncDepth
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &AsyncForwarder{
		mb: mb, depth: depth, perRcpt: min(depth, asyncPerRecipient),
		nWorkers: DefaultAsyncWorkers, ctx: ctx, cancel: cancel,
		waiting: make(map[[33]byte][]*lnwire.OnionMessage),
		served:  make(map[[33]byte]bool),
	}
}

// Start starts feeding the mailbox, beginning with what was queued before.
func (a *AsyncForwarder) Start() {
	a.mu.Lock()
	defer a.mu.Unlock()

	if a.started || a.stopped {
		return
	}
	a.started = true
	for len(a.ready) > 0 && a.workers < a.nWorkers {
		peer := a.ready[0]
		a.ready = a.ready[1:]
		a.spawnLocked(peer)
	}
}

// Stop stops feeding the mailbox and waits for the workers, each in one
// Handle at most; messages still queued are dropped, as an onion message
// that reached a stopping holdd would be.
func (a *AsyncForwarder) Stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()

	a.cancel()
	a.wg.Wait()

	a.mu.Lock()
	clear(a.waiting)
	a.queued = 0
	a.ready = nil
	a.mu.Unlock()
}

// HandleForward queues a message for the mailbox. It implements the
// release intake's Forwarder.
func (a *AsyncForwarder) HandleForward(_ context.Context, next [33]byte,
	msg *lnwire.OnionMessage) string {

	a.mu.Lock()
	if a.stopped || a.queued >= a.depth ||
		len(a.waiting[next]) >= a.perRcpt {

		a.mu.Unlock()
		a.mb.drop(DropBusy, 1)
		return OutcomeBusy
	}
	a.waiting[next] = append(a.waiting[next], msg)
	a.queued++
	if !a.served[next] {
		a.served[next] = true
		if a.started && a.workers < a.nWorkers {
			a.spawnLocked(next)
		} else {
			a.ready = append(a.ready, next)
		}
	}
	a.mu.Unlock()

	return OutcomeQueued
}

// spawnLocked starts a worker on peer. a.mu must be held.
func (a *AsyncForwarder) spawnLocked(peer [33]byte) {
	a.workers++
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.work(peer)
	}()
}

// work hands peer's messages to the mailbox, and then those of the next
// ready recipient, until none is left or Stop.
func (a *AsyncForwarder) work(peer [33]byte) {
	for {
		msg, next, ok := a.take(peer)
		if !ok {
			return
		}
		peer = next
		a.mb.Handle(a.ctx, peer, msg)
	}
}

// take returns the next message for the worker that served peer, and the
// recipient it is for: peer's own, unless other recipients wait for a
// worker, in which case peer goes to the back of the line. ok is false
// when the worker is to exit.
func (a *AsyncForwarder) take(peer [33]byte) (*lnwire.OnionMessage,
	[33]byte, bool) {

	a.mu.Lock()
	defer a.mu.Unlock()

	if a.ctx.Err() != nil {
		a.workers--
		return nil, peer, false
	}
	if len(a.waiting[peer]) == 0 {
		delete(a.waiting, peer)
		delete(a.served, peer)
	} else if len(a.ready) > 0 {
		a.ready = append(a.ready, peer)
	} else {
		return a.popLocked(peer), peer, true
	}
	if len(a.ready) == 0 {
		a.workers--
		return nil, peer, false
	}
	peer = a.ready[0]
	a.ready = a.ready[1:]

	return a.popLocked(peer), peer, true
}

// popLocked removes and returns peer's oldest waiting message.
func (a *AsyncForwarder) popLocked(peer [33]byte) *lnwire.OnionMessage {
	msgs := a.waiting[peer]
	msg := msgs[0]
	msgs[0] = nil
	a.waiting[peer] = msgs[1:]
	a.queued--

	return msg
}
