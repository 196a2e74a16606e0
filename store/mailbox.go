package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/holdd/holdd/mailbox"
	"github.com/lightningnetwork/lnd/routing/route"
)

// RegisterMailboxRecipient registers peer, or refreshes its registration.
// created reports a new registration; a refresh keeps RegisteredAt.
func (s *Store) RegisterMailboxRecipient(ctx context.Context, peer route.Vertex,
	now time.Time) (mailbox.Recipient, bool, error) {

	if now.IsZero() {
		return mailbox.Recipient{}, false, fmt.Errorf("%w: zero "+
			"registration time", ErrInvalidArgument)
	}
	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return mailbox.Recipient{}, false, err
	}

	var (
		r       = mailbox.Recipient{Peer: peer}
		created bool
	)
	err = s.mailbox.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// A write may run twice (see groupCommit): start afresh.
		created = false
		var reg int64
		err := tx.QueryRowContext(ctx, `SELECT registered_at FROM
			mailbox_recipients WHERE peer = ?`, peer[:]).Scan(&reg)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			reg = nowNs
			_, err = tx.ExecContext(ctx, `INSERT INTO
				mailbox_recipients (peer, registered_at,
				refreshed_at) VALUES (?, ?, ?)`, peer[:], reg,
				nowNs)

		case err == nil:
			_, err = tx.ExecContext(ctx, `UPDATE mailbox_recipients
				SET refreshed_at = ? WHERE peer = ?`, nowNs,
				peer[:])
		}
		if err != nil {
			return err
		}
		r.RegisteredAt = nanosTime(reg)
		r.RefreshedAt = nanosTime(nowNs)

		return nil
	})
	if err != nil {
		return mailbox.Recipient{}, false, fmt.Errorf("register mailbox "+
			"recipient %v: %w", peer, err)
	}

	return r, created, nil
}

// UnregisterMailboxRecipient removes peer's registration and every message
// stored for it. found is false if peer was not registered. The messages go
// in chunks of at most deleteChunk, each a write of its own, so that no
// mailbox batch, and no hold write waiting for it, waits for one large
// delete; the registration goes with the last chunk, so a crash in between
// leaves the recipient registered with fewer messages, never messages
// without a recipient. On an error it returns the messages it deleted
// before it.
func (s *Store) UnregisterMailboxRecipient(ctx context.Context,
	peer route.Vertex) ([]mailbox.RemovedMessage, bool, error) {

	var removed []mailbox.RemovedMessage
	for {
		var (
			chunk []mailbox.RemovedMessage
			found bool
			last  bool
		)
		err := s.mailbox.do(ctx, func(ctx context.Context,
			tx *sql.Tx) error {

			found, last = false, false
			var err error
			chunk, err = deleteReturning(ctx, tx, `DELETE FROM
				mailbox_messages WHERE id IN (SELECT id FROM
				mailbox_messages WHERE recipient = ?
				ORDER BY id LIMIT ?)
				RETURNING id, recipient, size`, peer[:],
				deleteChunk)
			if err != nil || len(chunk) == deleteChunk {
				return err
			}
			last = true
			res, err := tx.ExecContext(ctx, `DELETE FROM
				mailbox_recipients WHERE peer = ?`, peer[:])
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			found = n == 1

			return err
		})
		if err != nil {
			return removed, false, fmt.Errorf("unregister mailbox "+
				"recipient %v: %w", peer, err)
		}
		removed = append(removed, chunk...)
		if last {
			return removed, found, nil
		}
	}
}

// ListMailboxRecipients returns every registration with what is stored for
// it, ordered by peer key.
func (s *Store) ListMailboxRecipients(ctx context.Context) ([]mailbox.Recipient,
	error) {

	rows, err := s.db.QueryContext(ctx, `SELECT r.peer, r.registered_at,
		r.refreshed_at, COUNT(m.id), COALESCE(SUM(m.size), 0)
		FROM mailbox_recipients r
		LEFT JOIN mailbox_messages m ON m.recipient = r.peer
		GROUP BY r.peer ORDER BY r.peer`)
	if err != nil {
		return nil, fmt.Errorf("list mailbox recipients: %w", err)
	}
	defer rows.Close()

	var out []mailbox.Recipient
	for rows.Next() {
		var (
			r        mailbox.Recipient
			peer     []byte
			reg, ref int64
		)
		err := rows.Scan(&peer, &reg, &ref, &r.Messages, &r.Bytes)
		if err != nil {
			return nil, fmt.Errorf("list mailbox recipients: %w", err)
		}
		if err := blobFixed(r.Peer[:], peer, "peer"); err != nil {
			return nil, err
		}
		r.RegisteredAt = nanosTime(reg)
		r.RefreshedAt = nanosTime(ref)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list mailbox recipients: %w", err)
	}

	return out, nil
}

// PutMailboxMessage stores m for a registered recipient, first evicting the
// oldest unclaimed messages as needed so the new one fits lim: the
// recipient's own for a recipient bound, anyone's for a total bound. If
// claim is set and the recipient has no other stored message, the message
// is stored already claimed, so a caller that delivers it at once needs no
// second write before sending. m.ID and m.ClaimedAt are ignored.
//
// A recipient that is not registered gets ErrNotFound; a message larger
// than a byte bound can never fit and gets ErrInvalidArgument. Neither
// changes anything.
func (s *Store) PutMailboxMessage(ctx context.Context, m mailbox.StoredMessage,
	claim bool, lim mailbox.StoreLimits) (mailbox.PutResult, error) {

	size := m.Size()
	switch {
	case size == 0:
		return mailbox.PutResult{}, fmt.Errorf("%w: empty onion",
			ErrInvalidArgument)

	case m.ReceivedAt.IsZero():
		return mailbox.PutResult{}, fmt.Errorf("%w: zero received time",
			ErrInvalidArgument)

	case lim.RecipientCount < 0 || lim.RecipientBytes < 0 ||
		lim.TotalCount < 0 || lim.TotalBytes < 0:

		return mailbox.PutResult{}, fmt.Errorf("%w: negative mailbox limit",
			ErrInvalidArgument)

	case (lim.RecipientBytes > 0 && size > lim.RecipientBytes) ||
		(lim.TotalBytes > 0 && size > lim.TotalBytes):

		return mailbox.PutResult{}, fmt.Errorf("%w: %d-byte message exceeds "+
			"a byte bound", ErrInvalidArgument, size)
	}
	recv, err := timeNanos(m.ReceivedAt, "ReceivedAt")
	if err != nil {
		return mailbox.PutResult{}, err
	}

	var put mailbox.PutResult
	err = s.mailbox.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		put, err = putMailboxMessage(ctx, tx, m, recv, claim, lim)
		return err
	})
	if err != nil {
		return mailbox.PutResult{}, fmt.Errorf("store mailbox message for %v: "+
			"%w", m.Recipient, err)
	}

	return put, nil
}

// putMailboxMessage is PutMailboxMessage's write, in tx. recv is
// m.ReceivedAt in unix nanoseconds.
func putMailboxMessage(ctx context.Context, tx *sql.Tx, m mailbox.StoredMessage,
	recv int64, claim bool, lim mailbox.StoreLimits) (mailbox.PutResult, error) {

	var (
		size = m.Size()
		put  mailbox.PutResult
		n    int
	)
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM
		mailbox_recipients WHERE peer = ?`,
		m.Recipient[:]).Scan(&n)
	if err != nil {
		return put, err
	}
	if n == 0 {
		return put, notFound(mailbox.ErrNotRegistered)
	}

	evicted, err := evictRecipient(ctx, tx, m.Recipient, size, lim)
	if err != nil {
		return put, err
	}
	put.Evicted = evicted

	evicted, err = evictTotal(ctx, tx, size, lim)
	if err != nil {
		return put, err
	}
	put.Evicted = append(put.Evicted, evicted...)

	if claim {
		var others int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM
			mailbox_messages WHERE recipient = ?`,
			m.Recipient[:]).Scan(&others)
		if err != nil {
			return put, err
		}
		put.Claimed = others == 0
	}
	claimedAt := int64(0)
	if put.Claimed {
		claimedAt = recv
	}

	res, err := tx.ExecContext(ctx, `INSERT INTO mailbox_messages
		(recipient, path_key, onion, size, received_at,
		claimed_at) VALUES (?, ?, ?, ?, ?, ?)`,
		m.Recipient[:], m.PathKey[:], m.Onion, size, recv,
		claimedAt)
	if err != nil {
		return put, err
	}
	put.ID, err = res.LastInsertId()

	return put, err
}

// evictBatch is how many eviction candidates are read at a time.
const evictBatch = 64

// usage is what a set of messages takes against a pair of bounds.
type usage struct {
	count, bytes       int64
	maxCount, maxBytes int64
	byCount, byBytes   mailbox.EvictReason
}

// over returns the bound one more message of size bytes would exceed.
func (u *usage) over(size int64) mailbox.EvictReason {
	switch {
	case u.maxCount > 0 && u.count+1 > u.maxCount:
		return u.byCount
	case u.maxBytes > 0 && u.bytes+size > u.maxBytes:
		return u.byBytes
	}

	return ""
}

// evictRecipient drops recipient's oldest unclaimed messages until one
// more of size bytes fits its bounds.
func evictRecipient(ctx context.Context, tx *sql.Tx, recipient route.Vertex,
	size int64, lim mailbox.StoreLimits) ([]mailbox.RemovedMessage, error) {

	u := usage{
		maxCount: lim.RecipientCount, maxBytes: lim.RecipientBytes,
		byCount: mailbox.EvictRecipientCount, byBytes: mailbox.EvictRecipientBytes,
	}
	if u.maxCount == 0 && u.maxBytes == 0 {
		return nil, nil
	}
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0)
		FROM mailbox_messages WHERE recipient = ?`,
		recipient[:]).Scan(&u.count, &u.bytes)
	if err != nil {
		return nil, err
	}

	return evictOldest(ctx, tx, &u, size, `SELECT id, recipient, size
		FROM mailbox_messages WHERE recipient = ? AND claimed_at = 0
		AND id > ? ORDER BY id LIMIT ?`, recipient[:])
}

// evictTotal drops the globally oldest unclaimed messages until one more of
// size bytes fits the total bounds.
func evictTotal(ctx context.Context, tx *sql.Tx, size int64,
	lim mailbox.StoreLimits) ([]mailbox.RemovedMessage, error) {

	u := usage{
		maxCount: lim.TotalCount, maxBytes: lim.TotalBytes,
		byCount: mailbox.EvictTotalCount, byBytes: mailbox.EvictTotalBytes,
	}
	if u.maxCount == 0 && u.maxBytes == 0 {
		return nil, nil
	}
	err := tx.QueryRowContext(ctx, `SELECT messages, bytes
		FROM mailbox_usage WHERE id = 1`).Scan(&u.count, &u.bytes)
	if err != nil {
		return nil, err
	}

	return evictOldest(ctx, tx, &u, size, `SELECT id, recipient, size
		FROM mailbox_messages WHERE claimed_at = 0 AND id > ?
		ORDER BY id LIMIT ?`)
}

// evictOldest deletes the candidates query yields (it takes args, then the
// last id seen and a batch size), oldest first, while one more message of
// size bytes would exceed u. When the candidates run out first, the rest
// is claimed and in flight, and the bound stays exceeded by those.
func evictOldest(ctx context.Context, tx *sql.Tx, u *usage, size int64,
	query string, args ...any) ([]mailbox.RemovedMessage, error) {

	var (
		out    []mailbox.RemovedMessage
		lastID int64
	)
	for u.over(size) != "" {
		rows, err := tx.QueryContext(ctx, query,
			append(args, lastID, evictBatch)...)
		if err != nil {
			return nil, err
		}
		batch, err := scanRemoved(rows)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		for _, c := range batch {
			reason := u.over(size)
			if reason == "" {
				break
			}
			_, err := tx.ExecContext(ctx,
				"DELETE FROM mailbox_messages WHERE id = ?",
				c.ID)
			if err != nil {
				return nil, err
			}
			c.Reason = reason
			out = append(out, c)
			u.count--
			u.bytes -= c.Size
			lastID = c.ID
		}
	}

	return out, nil
}

// NextMailboxMessages returns up to limit of recipient's unclaimed
// messages, oldest first.
func (s *Store) NextMailboxMessages(ctx context.Context, recipient route.Vertex,
	limit int) ([]mailbox.StoredMessage, error) {

	if limit <= 0 {
		return nil, fmt.Errorf("%w: limit %d", ErrInvalidArgument, limit)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, recipient, path_key,
		onion, received_at, claimed_at FROM mailbox_messages
		WHERE recipient = ? AND claimed_at = 0 ORDER BY id LIMIT ?`,
		recipient[:], limit)
	if err != nil {
		return nil, fmt.Errorf("read mailbox messages: %w", err)
	}
	defer rows.Close()

	var out []mailbox.StoredMessage
	for rows.Next() {
		var (
			m             mailbox.StoredMessage
			rcpt, pathKey []byte
			recv, claimed int64
		)
		err := rows.Scan(&m.ID, &rcpt, &pathKey, &m.Onion, &recv,
			&claimed)
		if err != nil {
			return nil, fmt.Errorf("read mailbox messages: %w", err)
		}
		if err := blobFixed(m.Recipient[:], rcpt, "recipient"); err != nil {
			return nil, err
		}
		if err := blobFixed(m.PathKey[:], pathKey, "path_key"); err != nil {
			return nil, err
		}
		m.ReceivedAt = nanosTime(recv)
		m.ClaimedAt = nanosTime(claimed)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read mailbox messages: %w", err)
	}

	return out, nil
}

// ClaimMailboxMessage marks message id as being handed to lnd. ok is false
// if the message is gone (evicted, expired) or already claimed: it must not
// be sent then.
func (s *Store) ClaimMailboxMessage(ctx context.Context, id int64,
	now time.Time) (bool, error) {

	if now.IsZero() {
		return false, fmt.Errorf("%w: zero claim time",
			ErrInvalidArgument)
	}
	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return false, err
	}

	return s.execOne(ctx, "claim mailbox message", `UPDATE mailbox_messages
		SET claimed_at = ? WHERE id = ? AND claimed_at = 0`, nowNs, id)
}

// UnclaimMailboxMessage returns a claimed message to the queue, in its old
// place, after lnd refused it. ok is false if it is gone or not claimed.
func (s *Store) UnclaimMailboxMessage(ctx context.Context, id int64) (bool,
	error) {

	return s.execOne(ctx, "unclaim mailbox message", `UPDATE
		mailbox_messages SET claimed_at = 0 WHERE id = ? AND
		claimed_at != 0`, id)
}

// DeleteMailboxMessage deletes message id. ok is false if it was gone.
func (s *Store) DeleteMailboxMessage(ctx context.Context, id int64) (bool,
	error) {

	return s.execOne(ctx, "delete mailbox message",
		"DELETE FROM mailbox_messages WHERE id = ?", id)
}

// execOne runs a mailbox write that touches at most one row and reports
// whether it did.
func (s *Store) execOne(ctx context.Context, what, query string,
	args ...any) (bool, error) {

	var n int64
	err := s.mailbox.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()

		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}

	return n == 1, nil
}

// deleteChunk is how many messages one transaction of a bulk delete
// (expiry, unregistration, dropping claimed messages) deletes at most.
const deleteChunk = 512

// ExpireMailboxMessages deletes the unclaimed messages received at or
// before cutoff and returns them. On an error it returns those it deleted
// before it.
func (s *Store) ExpireMailboxMessages(ctx context.Context,
	cutoff time.Time) ([]mailbox.RemovedMessage, error) {

	cut, err := timeNanos(cutoff, "cutoff")
	if err != nil {
		return nil, err
	}
	// In chunks, each a write of its own: a day's worth of a flood
	// expiring at once must not make one transaction that every hold
	// write waits for.
	return s.deleteMailboxInChunks(ctx, "expire mailbox messages",
		`DELETE FROM mailbox_messages WHERE id IN (SELECT id FROM
		mailbox_messages WHERE received_at <= ? AND claimed_at = 0
		ORDER BY id LIMIT ?) RETURNING id, recipient, size`, cut)
}

// DropClaimedMailboxMessages deletes every claimed message and returns
// them. Called at start-up: a message claimed by a previous run may or may
// not have reached lnd, and sending it again could deliver it twice. Like
// expiry it deletes in chunks, each a write of its own; on an error it
// returns those it deleted before it.
func (s *Store) DropClaimedMailboxMessages(ctx context.Context) (
	[]mailbox.RemovedMessage, error) {

	return s.deleteMailboxInChunks(ctx, "drop claimed mailbox messages",
		`DELETE FROM mailbox_messages WHERE id IN (SELECT id FROM
		mailbox_messages WHERE claimed_at != 0 ORDER BY id LIMIT ?)
		RETURNING id, recipient, size`)
}

// deleteMailboxInChunks runs query, a DELETE ... LIMIT ? RETURNING id,
// recipient, size, with args and deleteChunk as its last argument, as
// one mailbox write after another until a chunk comes back short, and
// returns every removed message. On an error it returns those removed
// before it.
func (s *Store) deleteMailboxInChunks(ctx context.Context, what,
	query string, args ...any) ([]mailbox.RemovedMessage, error) {

	args = append(args, deleteChunk)
	var removed []mailbox.RemovedMessage
	for {
		var chunk []mailbox.RemovedMessage
		err := s.mailbox.do(ctx, func(ctx context.Context,
			tx *sql.Tx) error {

			var err error
			chunk, err = deleteReturning(ctx, tx, query, args...)
			return err
		})
		if err != nil {
			return removed, fmt.Errorf("%s: %w", what, err)
		}
		removed = append(removed, chunk...)
		if len(chunk) < deleteChunk {
			return removed, nil
		}
	}
}

// MailboxRecipientsWithMessages returns the recipients that have unclaimed
// messages, ordered by key.
func (s *Store) MailboxRecipientsWithMessages(ctx context.Context) (
	[]route.Vertex, error) {

	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT recipient FROM
		mailbox_messages WHERE claimed_at = 0 ORDER BY recipient`)
	if err != nil {
		return nil, fmt.Errorf("list mailbox recipients with "+
			"messages: %w", err)
	}
	defer rows.Close()

	var out []route.Vertex
	for rows.Next() {
		var (
			b    []byte
			peer route.Vertex
		)
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("list mailbox recipients with "+
				"messages: %w", err)
		}
		if err := blobFixed(peer[:], b, "recipient"); err != nil {
			return nil, err
		}
		out = append(out, peer)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list mailbox recipients with "+
			"messages: %w", err)
	}

	return out, nil
}

// MailboxUsage returns how many messages are stored and their total size,
// claimed ones included.
func (s *Store) MailboxUsage(ctx context.Context) (int64, int64, error) {
	var count, bytes int64
	err := s.db.QueryRowContext(ctx, `SELECT messages, bytes
		FROM mailbox_usage WHERE id = 1`).Scan(&count, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("mailbox usage: %w", err)
	}

	return count, bytes, nil
}

// deleteReturning runs a DELETE ... RETURNING id, recipient, size.
func deleteReturning(ctx context.Context, tx *sql.Tx, query string,
	args ...any) ([]mailbox.RemovedMessage, error) {

	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}

	return scanRemoved(rows)
}

// scanRemoved reads (id, recipient, size) rows and closes them.
func scanRemoved(rows *sql.Rows) ([]mailbox.RemovedMessage, error) {
	defer rows.Close()

	var out []mailbox.RemovedMessage
	for rows.Next() {
		var (
			r    mailbox.RemovedMessage
			rcpt []byte
		)
		if err := rows.Scan(&r.ID, &rcpt, &r.Size); err != nil {
			return nil, err
		}
		if err := blobFixed(r.Recipient[:], rcpt, "recipient"); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	return out, nil
}
