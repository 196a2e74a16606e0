package mailbox

import (
	"context"
	"errors"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// storeWriteTimeout bounds the store writes that follow a send. They use a
// context Stop does not cancel: a message lnd took must be deleted, one it
// refused unclaimed, or the next start drops it.
const storeWriteTimeout = 10 * time.Second

// kick makes sure someone delivers peer's stored messages: it starts a
// drain, or tells the one running to look at the store again.
func (m *Mailbox) kick(peer [33]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()

	if q := m.queues[peer]; q != nil {
		q.more = true
		return
	}
	if !m.running() {
		return
	}
	m.queues[peer] = &queue{}
	m.spawnLocked(peer)
}

// handOver passes a queue the caller owns to a new drain.
func (m *Mailbox) handOver(peer [33]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()

	if !m.running() {
		delete(m.queues, peer)
		return
	}
	m.spawnLocked(peer)
}

// spawnLocked starts a drain that owns peer's queue. m.mu must be held and
// the mailbox running, so Stop's Wait cannot have begun.
func (m *Mailbox) spawnLocked(peer [33]byte) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.drain(peer)
	}()
}

// finish lets go of peer's queue after an inline send, unless someone
// kicked it meanwhile (new messages, the recipient becoming ready): then a drain takes
// over, so no wake-up is lost.
func (m *Mailbox) finish(peer [33]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()

	q := m.queues[peer]
	if q != nil && q.more && m.running() {
		q.more = false
		m.spawnLocked(peer)
		return
	}
	delete(m.queues, peer)
}

// release lets go of peer's queue, unless someone kicked it since the
// drain last looked: then the drain must look again, and release reports
// that it still owns the queue.
func (m *Mailbox) release(peer [33]byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()

	q := m.queues[peer]
	if q != nil && q.more && m.running() {
		q.more = false
		return true
	}
	delete(m.queues, peer)

	return false
}

func (m *Mailbox) isOnline(peer [33]byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()

	_, ok := m.online[peer]
	return ok
}

// drain delivers peer's stored messages in order while peer is online. It
// owns peer's queue and lets go of it when the store has nothing more, the
// peer goes offline, a send fails or the mailbox stops; a kick in the
// meantime makes it look again instead.
func (m *Mailbox) drain(peer [33]byte) {
	select {
	case m.drains <- struct{}{}:
		defer func() { <-m.drains }()
	case <-m.ctx.Done():
		m.release(peer)
		return
	}

	for {
		m.drainOnce(peer)
		if !m.release(peer) {
			return
		}
	}
}

// drainOnce delivers peer's messages until the store has no more or the
// drain has to stop.
func (m *Mailbox) drainOnce(peer [33]byte) {
	for {
		if m.ctx.Err() != nil || !m.isOnline(peer) {
			return
		}
		batch, err := m.cfg.Store.NextMailboxMessages(m.ctx, peer,
			drainBatch)
		if err != nil {
			if m.ctx.Err() == nil {
				m.log.Errorf("Reading messages for %x: %v", peer,
					err)
			}
			return
		}
		if len(batch) == 0 {
			return
		}
		for _, msg := range batch {
			if m.ctx.Err() != nil || !m.isOnline(peer) {
				return
			}
			if !m.deliverStored(msg) {
				return
			}
		}
	}
}

// sendResult is what became of a claimed message.
type sendResult int

const (
	// sent: lnd took it; it is deleted.
	sent sendResult = iota

	// kept: lnd refused it; it is unclaimed and waits for the next
	// readiness or sweep.
	kept

	// uncertain: the send timed out or was cancelled, so lnd may have
	// sent it; it is dropped, never sent twice.
	uncertain

	// unsendable: the stored row cannot be sent; it is dropped.
	unsendable
)

// deliverStored claims and sends one stored message. It returns false when
// the drain must stop.
func (m *Mailbox) deliverStored(msg StoredMessage) bool {
	now := m.cfg.Clock.Now()
	if !msg.ReceivedAt.After(now.Add(-m.lim.MaxAge)) {
		ok, err := m.cfg.Store.DeleteMailboxMessage(m.ctx, msg.ID)
		if err != nil {
			m.log.Errorf("Dropping expired message %d: %v", msg.ID,
				err)
			return false
		}
		if ok {
			m.removed(DropExpired, []RemovedMessage{{
				ID: msg.ID, Size: msg.Size(),
			}})
		}
		return true
	}

	ok, err := m.cfg.Store.ClaimMailboxMessage(m.ctx, msg.ID, now)
	if err != nil {
		m.log.Errorf("Claiming message %d for %x: %v", msg.ID,
			msg.Recipient, err)
		return false
	}
	// Evicted or expired since it was read: nothing to send.
	if !ok {
		return true
	}

	switch m.deliverClaimed(msg) {
	case sent:
		m.mu.Lock()
		m.stats.Delivered++
		m.mu.Unlock()
		return true

	case unsendable:
		return true
	}

	// Refused: the recipient is most likely gone. Uncertain: lnd is
	// slow or restarting. Either way the next message would fare the
	// same; the next readiness or sweep resumes.
	return false
}

// deliverClaimed sends a message that is stored claimed, then deletes it,
// or unclaims it if lnd refused it.
func (m *Mailbox) deliverClaimed(msg StoredMessage) sendResult {
	pathKey, err := btcec.ParsePubKey(msg.PathKey[:])
	if err != nil {
		// Only a corrupted row gets here: Handle stored a valid key.
		m.log.Errorf("Dropping message %d for %x: bad path key: %v",
			msg.ID, msg.Recipient, err)
		m.deleteAfterSend(msg, DropInvalid)
		return unsendable
	}

	sendCtx, cancel := context.WithTimeout(
		context.WithoutCancel(m.ctx), m.lim.SendTimeout,
	)
	err = m.cfg.Forwarder.SendToPeer(sendCtx, msg.Recipient,
		lnwire.NewOnionMessage(pathKey, msg.Onion))
	cancel()

	switch {
	case err == nil:
		m.deleteAfterSend(msg, "")
		m.log.Debugf("Delivered message %d to %x", msg.ID,
			msg.Recipient)
		return sent

	case isUncertain(err):
		m.log.Warnf("Dropping message %d for %x: send outcome "+
			"unknown: %v", msg.ID, msg.Recipient, err)
		m.deleteAfterSend(msg, DropSendUncertain)
		return uncertain
	}

	m.mu.Lock()
	m.stats.SendFailures++
	m.mu.Unlock()
	m.log.Infof("Keeping message %d for %x: lnd did not send it: %v",
		msg.ID, msg.Recipient, err)

	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx),
		storeWriteTimeout)
	defer cancel()
	if _, err := m.cfg.Store.UnclaimMailboxMessage(ctx, msg.ID); err != nil {
		// It stays claimed and is dropped at the next start.
		m.log.Errorf("Unclaiming message %d: %v", msg.ID, err)
	}

	return kept
}

// deleteAfterSend deletes a claimed message, counting it as dropped for
// reason unless reason is empty (delivered).
func (m *Mailbox) deleteAfterSend(msg StoredMessage, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx),
		storeWriteTimeout)
	defer cancel()

	ok, err := m.cfg.Store.DeleteMailboxMessage(ctx, msg.ID)
	if err != nil {
		// It stays claimed, so it is never sent again; the next
		// start drops it.
		m.log.Errorf("Deleting message %d: %v", msg.ID, err)
		return
	}
	if !ok {
		// Unregistered meanwhile; already accounted for.
		return
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if reason != "" {
		m.removedLocked(reason, msg.Size())
		return
	}
	m.stats.StoredMessages--
	m.stats.StoredBytes -= msg.Size()
}

// isUncertain reports whether a send error leaves open whether lnd sent the
// message: the call timed out or was cancelled while lnd may have been
// writing it.
func isUncertain(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) {

		return true
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Canceled:
		return true
	}

	return false
}

// runSweeper drops expired messages and retries stalled deliveries every
// SweepInterval until Stop.
func (m *Mailbox) runSweeper() {
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.cfg.Clock.TickAfter(m.lim.SweepInterval):
		}
		m.sweep(m.ctx)
	}
}

// sweep drops expired messages, re-reads the usage from the store, forgets
// old rate-limit entries, and starts a drain for every online recipient
// with waiting messages, which retries sends lnd refused while the
// recipient stayed connected.
func (m *Mailbox) sweep(ctx context.Context) {
	now := m.cfg.Clock.Now()
	expired, err := m.cfg.Store.ExpireMailboxMessages(ctx,
		now.Add(-m.lim.MaxAge))
	// The store expires in chunks: those deleted before an error count.
	if err != nil {
		m.removed(DropExpired, expired)
		if ctx.Err() == nil {
			m.log.Errorf("Dropping expired messages: %v", err)
		}
		return
	}
	m.removed(DropExpired, expired)
	if len(expired) > 0 {
		m.log.Infof("Dropped %d expired message(s)", len(expired))
	}

	// Counting from the store corrects any drift of the gauges, e.g.
	// after a store write that failed half way through our accounting.
	count, bytes, err := m.cfg.Store.MailboxUsage(ctx)
	if err == nil {
		m.mu.Lock()
		m.stats.StoredMessages, m.stats.StoredBytes = count, bytes
		m.mu.Unlock()
	}

	m.mu.Lock()
	for p, t := range m.lastReg {
		if now.Sub(t) >= m.lim.RegisterInterval {
			delete(m.lastReg, p)
		}
	}
	m.mu.Unlock()

	m.kickWaiting(ctx)
}

// kickWaiting starts drains for the online recipients with waiting
// messages.
func (m *Mailbox) kickWaiting(ctx context.Context) {
	waiting, err := m.cfg.Store.MailboxRecipientsWithMessages(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Errorf("Listing recipients with messages: %v", err)
		}
		return
	}
	for _, p := range waiting {
		if m.isOnline(p) {
			m.kick(p)
		}
	}
}
