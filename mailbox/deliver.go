package mailbox

import (
	"context"
	"errors"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// storeWriteTimeout bounds the store writes Stop does not cancel: storing
// a message (its outcome must be known to be counted) and the writes that
// follow a send (a message lnd took must be deleted, one it refused
// unclaimed, or the next start drops it).
const storeWriteTimeout = 10 * time.Second

// kick asks peer's queue to look at the store: peer became ready, or a
// sweep found messages waiting for it. It starts the queue if none runs.
func (m *Mailbox) kick(peer route.Vertex) {
	m.mu.Lock()
	defer m.mu.Unlock()

	q := m.queueLocked(peer)
	if q == nil {
		return
	}
	select {
	case q.kick <- struct{}{}:
	default:
		// One is pending already; it covers this one.
	}
}

// isOnline reports whether peer is a registered recipient ready for
// delivery.
func (m *Mailbox) isOnline(peer route.Vertex) bool {
	m.mu.Lock()
	defer m.mu.Unlock()

	r := m.recipients[peer]
	return r != nil && r.ready
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

// deliverClaimed sends a message that is stored claimed, then deletes it,
// or unclaims it if lnd refused it.
func (m *Mailbox) deliverClaimed(msg StoredMessage) sendResult {
	pathKey, err := btcec.ParsePubKey(msg.PathKey[:])
	if err != nil {
		// Only a corrupted row gets here: Handle stored a valid key.
		m.log.Errorf("Dropping message %d for %v: bad path key: %v",
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
		m.log.Debugf("Delivered message %d to %v", msg.ID,
			msg.Recipient)
		return sent

	case isUncertain(err):
		m.log.Warnf("Dropping message %d for %v: send outcome "+
			"unknown: %v", msg.ID, msg.Recipient, err)
		m.deleteAfterSend(msg, DropSendUncertain)
		return uncertain
	}

	m.mu.Lock()
	m.stats.SendFailures++
	m.mu.Unlock()
	m.log.Infof("Keeping message %d for %v: lnd did not send it: %v",
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

// sweep drops expired messages, re-reads the usage from the store, and
// kicks the queue of every ready recipient with waiting messages, which retries sends lnd refused while the
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

	m.kickWaiting(ctx)
}

// kickWaiting kicks the queues of the ready recipients with waiting
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
