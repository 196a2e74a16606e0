package mailbox

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
)

// asyncPerRecipient bounds how many of a recipient's messages may wait in
// its queue's inbox, so that a recipient whose store writes stall cannot
// hold everyone's memory.
const asyncPerRecipient = 128

// putRequest is one message for a queue to store and, if it can, send.
type putRequest struct {
	msg *lnwire.OnionMessage

	// reply, if set, gets what became of the message (Handle waits on
	// it); it has room for the one answer.
	reply chan Outcome

	// taken, if set, is called when the queue takes the request (the
	// AsyncForwarder's count of what waits in front of the mailbox).
	taken func()
}

// sendDone is what the goroutine that sent a claimed message reports back
// to its queue.
type sendDone struct {
	res sendResult

	// inline is set for a message sent as it was stored; reply is the
	// Handle waiting for it, if any.
	inline bool
	reply  chan Outcome

	// kicks is the queue's kick count when the send began.
	kicks uint64
}

// queue owns one recipient's stored messages while it runs: it alone
// stores, claims, sends and deletes them, one send at a time, in the order
// they arrived, which is what keeps delivery in order and at most once. The
// mailbox starts it on demand (a message or a kick for the recipient) and
// it exits once it is idle: nothing in its inbox, no kick pending, no send
// in flight and nothing it could deliver now.
type queue struct {
	m    *Mailbox
	peer route.Vertex

	// inbox carries the recipient's messages in arrival order.
	inbox chan *putRequest

	// kick asks the queue to look at the store again.
	kick chan struct{}

	// done reports the one send in flight.
	done chan sendDone

	// exited is closed when the queue no longer takes requests.
	exited chan struct{}

	// senders counts Handle calls about to put into inbox; guarded by
	// m.mu. The queue does not retire while one is.
	senders int

	// The fields below belong to run.

	// backlog is set while the store may hold messages to deliver.
	backlog bool

	// batch is what was read from the store and not yet sent, oldest
	// first.
	batch []StoredMessage

	// sending is set while a send is in flight.
	sending bool

	// kicks counts kicks and messages stored behind others, so that a
	// failed send does not swallow one that came while it ran. Only run
	// writes it; it is atomic so tests can watch it.
	kicks atomic.Uint64
}

// queueLocked returns peer's running queue, starting one if none runs, or
// nil if the mailbox is not running. m.mu must be held.
func (m *Mailbox) queueLocked(peer route.Vertex) *queue {
	if !m.running() {
		return nil
	}
	if q := m.queues[peer]; q != nil {
		return q
	}
	q := &queue{
		m:      m,
		peer:   peer,
		inbox:  make(chan *putRequest, m.inboxSize),
		kick:   make(chan struct{}, 1),
		done:   make(chan sendDone, 1),
		exited: make(chan struct{}),
	}
	m.queues[peer] = q
	// Stop sets stopped under m.mu before it waits, so this Add comes
	// before the Wait.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		q.run()
	}()

	return q
}

// retire removes q from the running queues if nothing can reach it any
// more, and reports whether it did.
func (m *Mailbox) retire(q *queue) bool {
	m.mu.Lock()
	defer m.mu.Unlock()

	if len(q.inbox) > 0 || len(q.kick) > 0 || q.senders > 0 {
		return false
	}
	if m.queues[q.peer] == q {
		delete(m.queues, q.peer)
	}
	close(q.exited)

	return true
}

// run is the queue's goroutine.
func (q *queue) run() {
	m := q.m
	for {
		deliverable := q.backlog && m.ctx.Err() == nil &&
			m.isOnline(q.peer)
		switch {
		case !q.sending && deliverable:
			q.sendNext()
			continue

		case !q.sending && q.m.retire(q):
			return
		}

		select {
		case req := <-q.inbox:
			q.put(req)

		case <-q.kick:
			q.kicked()

		case d := <-q.done:
			q.finishSend(d)

		case <-m.ctx.Done():
			q.shutdown()
			return
		}
	}
}

// kicked notes that the store may hold messages to deliver.
func (q *queue) kicked() {
	q.backlog = true
	q.kicks.Add(1)
}

// put stores one message, claimed if the recipient is ready and nothing
// is in flight for it, and then sends it at once.
func (q *queue) put(req *putRequest) {
	if req.taken != nil {
		req.taken()
	}
	m := q.m
	inline := !q.sending && m.isOnline(q.peer)

	rec := StoredMessage{
		Recipient:  q.peer,
		Onion:      req.msg.OnionBlob,
		ReceivedAt: m.cfg.Clock.Now(),
	}
	copy(rec.PathKey[:], req.msg.PathKey.SerializeCompressed())

	// Not cancelled by Stop: a write the store may commit must be
	// answered by the store, or the counts would miss it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx),
		storeWriteTimeout)
	put, err := m.cfg.Store.PutMailboxMessage(ctx, rec, inline,
		m.storeLimits())
	cancel()
	switch {
	case errors.Is(err, ErrNotRegistered):
		// Unregistered after admit.
		m.drop(DropUnregistered, 1)
		req.answer(OutcomeUnregistered)
		return

	case err != nil:
		m.drop(DropStoreError, 1)
		m.log.Errorf("Dropping message for %v: %v", q.peer, err)
		req.answer(OutcomeStoreError)
		return
	}
	m.noteStored(put, rec.Size())

	// Older messages are waiting, or a send is in flight: it goes out
	// behind them.
	if !put.Claimed {
		q.kicked()
		req.answer(OutcomeStored)
		return
	}
	rec.ID = put.ID
	q.startSend(rec, true, req.reply)
}

// answer tells the Handle waiting for req, if any, what became of it.
func (req *putRequest) answer(outcome Outcome) {
	if req.reply != nil {
		req.reply <- outcome
	}
}

// sendNext claims and sends the recipient's oldest stored message, dropping
// expired ones on the way, or clears the backlog when there is none.
func (q *queue) sendNext() {
	m := q.m
	if len(q.batch) == 0 {
		batch, err := m.cfg.Store.NextMailboxMessages(m.ctx, q.peer,
			drainBatch)
		if err != nil {
			if m.ctx.Err() == nil {
				m.log.Errorf("Reading messages for %v: %v",
					q.peer, err)
			}
			// The next kick or sweep retries.
			q.backlog = false
			return
		}
		if len(batch) == 0 {
			q.backlog = false
			return
		}
		q.batch = batch
	}
	msg := q.batch[0]
	q.batch = q.batch[1:]

	now := m.cfg.Clock.Now()
	if !msg.ReceivedAt.After(now.Add(-m.lim.MaxAge)) {
		ok, err := m.cfg.Store.DeleteMailboxMessage(m.ctx, msg.ID)
		if err != nil {
			m.log.Errorf("Dropping expired message %d: %v", msg.ID,
				err)
			q.backlog, q.batch = false, nil
			return
		}
		if ok {
			m.removed(DropExpired, []RemovedMessage{{
				ID: msg.ID, Size: msg.Size(),
			}})
		}
		return
	}

	ok, err := m.cfg.Store.ClaimMailboxMessage(m.ctx, msg.ID, now)
	if err != nil {
		m.log.Errorf("Claiming message %d for %v: %v", msg.ID,
			msg.Recipient, err)
		q.backlog, q.batch = false, nil
		return
	}
	// Evicted, expired or unregistered since it was read.
	if !ok {
		return
	}
	q.startSend(msg, false, nil)
}

// startSend sends a claimed message from a goroutine of its own, so that
// the queue keeps taking messages (and storing them behind it) while lnd
// takes its time. The queue waits for it before it exits.
func (q *queue) startSend(msg StoredMessage, inline bool,
	reply chan Outcome) {

	q.sending = true
	d := sendDone{inline: inline, reply: reply, kicks: q.kicks.Load()}
	go func() {
		d.res = q.m.sendClaimed(msg)
		q.done <- d
	}()
}

// finishSend applies the outcome of a send.
func (q *queue) finishSend(d sendDone) {
	q.sending = false
	m := q.m

	switch d.res {
	case sent:
		m.mu.Lock()
		if d.inline {
			m.stats.ForwardedDirect++
		} else {
			m.stats.Delivered++
		}
		m.mu.Unlock()
		if d.reply != nil {
			d.reply <- OutcomeForwarded
		}
		return

	case unsendable:
		if d.reply != nil {
			d.reply <- OutcomeStored
		}
		return

	case uncertain:
		if d.reply != nil {
			d.reply <- OutcomeSendUncertain
		}

	case kept:
		if d.reply != nil {
			d.reply <- OutcomeStored
		}
	}

	// Refused: the recipient is most likely gone. Uncertain: lnd is slow
	// or restarting. Either way the next message would fare the same:
	// the next kick or sweep resumes, unless one came during the send.
	q.batch = nil
	if q.kicks.Load() == d.kicks {
		q.backlog = false
	}
}

// shutdown ends the queue when the mailbox stops: it waits for the send in
// flight and answers what is left in the inbox.
func (q *queue) shutdown() {
	if q.sending {
		q.finishSend(<-q.done)
	}
	m := q.m
	m.mu.Lock()
	if m.queues[q.peer] == q {
		delete(m.queues, q.peer)
	}
	m.mu.Unlock()

	// What is in the inbox is answered (and counted) here, before exited
	// closes: a Handle that sees exited then finds its answer, or, if
	// its request came in after this drain, counts the drop itself.
	// Either way a request is counted once.
	defer close(q.exited)
	for {
		select {
		case req := <-q.inbox:
			if req.taken != nil {
				req.taken()
			}
			m.drop(DropNotRunning, 1)
			req.answer(OutcomeNotRunning)

		default:
			return
		}
	}
}

// sendClaimed waits for a send slot and sends a claimed message. If the
// mailbox stops first, the message goes back to the queue unsent.
func (m *Mailbox) sendClaimed(msg StoredMessage) sendResult {
	m.slotWaiters.Add(1)
	select {
	case m.slots <- struct{}{}:
		m.slotWaiters.Add(-1)
		defer func() { <-m.slots }()

	case <-m.ctx.Done():
		m.slotWaiters.Add(-1)
		ctx, cancel := context.WithTimeout(
			context.WithoutCancel(m.ctx), storeWriteTimeout,
		)
		defer cancel()
		_, err := m.cfg.Store.UnclaimMailboxMessage(ctx, msg.ID)
		if err != nil {
			// It stays claimed and is dropped at the next start.
			m.log.Errorf("Unclaiming message %d: %v", msg.ID, err)
		}
		return kept
	}

	return m.deliverClaimed(msg)
}
