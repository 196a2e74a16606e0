package mailbox

import (
	"context"
	"sync/atomic"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
)

// DefaultAsyncDepth is how many messages may wait in front of the mailbox.
const DefaultAsyncDepth = 1024

// Outcomes of AsyncForwarder.HandleForward.
const (
	OutcomeQueued = "queued"
	OutcomeBusy   = "dropped_busy"
)

// AsyncForwarder hands messages to the mailbox without waiting for it. The
// transport that delivers onion messages (holdd's peer link, which also
// answers lnd's pings, and the release intake behind it) then never waits
// for a store write or a send to a recipient. When the messages waiting in
// front of the mailbox reach depth, or a recipient's queue has no room,
// the message is dropped and counted (DropBusy) rather than block the
// transport.
//
// The waiting is done in the recipients' queues (see queue): each takes its
// recipient's messages in arrival order and stores them, also while a send
// to that recipient hangs, so a slow recipient holds up no one else. What
// AsyncForwarder adds is the bound on the total.
type AsyncForwarder struct {
	mb    *Mailbox
	depth int64

	// queued counts the messages handed to a queue and not yet taken.
	queued atomic.Int64

	stopped atomic.Bool
}

// NewAsyncForwarder creates an AsyncForwarder in front of mb with room for
// depth waiting messages (DefaultAsyncDepth if depth < 1).
func NewAsyncForwarder(mb *Mailbox, depth int) *AsyncForwarder {
	if depth < 1 {
		depth = DefaultAsyncDepth
	}

	return &AsyncForwarder{mb: mb, depth: int64(depth)}
}

// Stop makes HandleForward refuse further messages. Those already handed
// over are stored by their queues until the mailbox stops.
func (a *AsyncForwarder) Stop() {
	a.stopped.Store(true)
}

// HandleForward hands a message to its recipient's queue. It implements the
// release intake's Forwarder. Messages the mailbox drops at once (bad
// input, unregistered recipient) are answered with that outcome.
func (a *AsyncForwarder) HandleForward(_ context.Context, next route.Vertex,
	msg *lnwire.OnionMessage) string {

	if a.stopped.Load() {
		a.mb.drop(DropNotRunning, 1)
		return string(OutcomeNotRunning)
	}
	if a.queued.Add(1) > a.depth {
		a.queued.Add(-1)
		a.mb.drop(DropBusy, 1)
		return OutcomeBusy
	}
	outcome := a.mb.enqueue(next, msg, func() { a.queued.Add(-1) })
	if outcome != OutcomeQueued {
		a.queued.Add(-1)
	}

	return string(outcome)
}
