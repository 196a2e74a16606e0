package mailbox

import (
	"context"
	"sync"

	"github.com/lightningnetwork/lnd/lnwire"
)

// DefaultAsyncDepth is how many messages may wait in front of the mailbox.
const DefaultAsyncDepth = 1024

// Outcomes of AsyncForwarder.HandleForward.
const (
	OutcomeQueued = "queued"
	OutcomeBusy   = "dropped_busy"
)

type forward struct {
	next [33]byte
	msg  *lnwire.OnionMessage
}

// AsyncForwarder hands messages to the mailbox from a goroutine of its
// own, in the order they arrived. The transport that delivers onion
// messages (holdd's peer link, which also answers lnd's pings, and the
// release intake behind it) then never waits for a store write or a send to
// a recipient. When the queue is full the message is dropped and counted
// (DropBusy) rather than block the transport.
type AsyncForwarder struct {
	mb *Mailbox
	ch chan forward

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewAsyncForwarder creates an AsyncForwarder in front of mb with room for
// depth waiting messages (DefaultAsyncDepth if depth < 1).
func NewAsyncForwarder(mb *Mailbox, depth int) *AsyncForwarder {
	if depth < 1 {
		depth = DefaultAsyncDepth
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &AsyncForwarder{
		mb: mb, ch: make(chan forward, depth), ctx: ctx,
		cancel: cancel,
	}
}

// Start starts the goroutine that feeds the mailbox.
func (a *AsyncForwarder) Start() {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			select {
			case f := <-a.ch:
				a.mb.Handle(a.ctx, f.next, f.msg)
			case <-a.ctx.Done():
				return
			}
		}
	}()
}

// Stop stops feeding the mailbox; messages still queued are dropped, as an
// onion message that reached a stopping holdd would be.
func (a *AsyncForwarder) Stop() {
	a.cancel()
	a.wg.Wait()
}

// HandleForward queues a message for the mailbox. It implements the
// release intake's Forwarder.
func (a *AsyncForwarder) HandleForward(_ context.Context, next [33]byte,
	msg *lnwire.OnionMessage) string {

	select {
	case a.ch <- forward{next: next, msg: msg}:
		return OutcomeQueued
	default:
		a.mb.drop(DropBusy, 1)
		return OutcomeBusy
	}
}
