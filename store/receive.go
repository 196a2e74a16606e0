package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/holdd/holdd/recipient"
)

// InsertReceivePath stores a newly minted receive path.
func (s *Store) InsertReceivePath(ctx context.Context, p recipient.ReceivePath) error {
	if len(p.Path) == 0 || !p.ExpiresAt.After(p.CreatedAt) {
		return fmt.Errorf("%w: receive path %x needs a path and "+
			"CreatedAt before ExpiresAt", ErrInvalidArgument, p.ID)
	}
	created, err := timeNanos(p.CreatedAt, "CreatedAt")
	if err != nil {
		return err
	}
	expires, err := timeNanos(p.ExpiresAt, "ExpiresAt")
	if err != nil {
		return err
	}
	mailbox := p.MailboxLSP
	if mailbox == nil {
		mailbox = []byte{}
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO receive_paths
		(id, path, created_at, expires_at, mailbox_lsp)
		VALUES (?, ?, ?, ?, ?)`, p.ID[:], p.Path, created, expires,
		mailbox)
	if err != nil {
		return fmt.Errorf("store receive path %x: %w", p.ID, err)
	}
	return nil
}

const receivePathColumns = `id, path, created_at, expires_at, mailbox_lsp,
	revoked_at, replies, last_reply_at`

func scanReceivePath(r rowScanner) (recipient.ReceivePath, error) {
	var (
		p                                 recipient.ReceivePath
		id, mailbox                       []byte
		created, expires, revoked, replyT int64
		replies                           int64
	)
	err := r.Scan(&id, &p.Path, &created, &expires, &mailbox, &revoked,
		&replies, &replyT)
	if err != nil {
		return recipient.ReceivePath{}, err
	}
	if err := blobFixed(p.ID[:], id, "id"); err != nil {
		return recipient.ReceivePath{}, err
	}
	p.CreatedAt = nanosTime(created)
	p.ExpiresAt = nanosTime(expires)
	p.RevokedAt = nanosTime(revoked)
	p.LastReplyAt = nanosTime(replyT)
	p.Replies = uint64(replies)
	if len(mailbox) > 0 {
		p.MailboxLSP = mailbox
	}
	return p, nil
}

// GetReceivePath returns the receive path with id, or ErrNotFound.
func (s *Store) GetReceivePath(ctx context.Context,
	id [8]byte) (recipient.ReceivePath, error) {

	row := s.db.QueryRowContext(ctx, `SELECT `+receivePathColumns+`
		FROM receive_paths WHERE id = ?`, id[:])
	p, err := scanReceivePath(row)
	if errors.Is(err, sql.ErrNoRows) {
		return recipient.ReceivePath{}, fmt.Errorf("receive path %x: %w", id,
			notFound(recipient.ErrUnknownPath))
	}
	if err != nil {
		return recipient.ReceivePath{}, fmt.Errorf("receive path %x: %w", id, err)
	}
	return p, nil
}

// ListReceivePaths returns receive paths, newest first: only the usable
// ones at now unless all is set.
func (s *Store) ListReceivePaths(ctx context.Context, now time.Time,
	all bool) ([]recipient.ReceivePath, error) {

	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+receivePathColumns+`
		FROM receive_paths
		WHERE ? OR (revoked_at = 0 AND expires_at > ?)
		ORDER BY created_at DESC, id`, all, nowNs)
	if err != nil {
		return nil, fmt.Errorf("list receive paths: %w", err)
	}
	defer rows.Close()

	var out []recipient.ReceivePath
	for rows.Next() {
		p, err := scanReceivePath(rows)
		if err != nil {
			return nil, fmt.Errorf("list receive paths: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// RevokeReceivePath marks a path revoked at now, so holdd stops answering
// over it. Revoking twice keeps the first time.
func (s *Store) RevokeReceivePath(ctx context.Context, id [8]byte,
	now time.Time) error {

	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE receive_paths
		SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END
		WHERE id = ?`, nowNs, id[:])
	if err != nil {
		return fmt.Errorf("revoke receive path %x: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("receive path %x: %w", id, notFound(recipient.ErrUnknownPath))
	}
	return nil
}

// RecordReceiveReply counts one reply sent for a message over path id.
func (s *Store) RecordReceiveReply(ctx context.Context, id [8]byte,
	at time.Time) error {

	atNs, err := timeNanos(at, "at")
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE receive_paths
		SET replies = replies + 1, last_reply_at = ? WHERE id = ?`,
		atNs, id[:])
	if err != nil {
		return fmt.Errorf("record reply on receive path %x: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("receive path %x: %w", id, notFound(recipient.ErrUnknownPath))
	}
	return nil
}
