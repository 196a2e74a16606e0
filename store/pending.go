package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PutPendingRelease stores a release that arrived before its HTLC was
// offered. It is idempotent per (key, payment hash): a repeat leaves the
// stored release as it is, unless that one had already expired at
// r.ReceivedAt, in which case r replaces it so a late retry still counts.
// ReceivedAt and ExpiresAt are required and ExpiresAt must be after
// ReceivedAt, which bounds how long an unmatched release occupies storage.
func (s *Store) PutPendingRelease(ctx context.Context, r PendingRelease) error {
	if r.ReceivedAt.IsZero() || !r.ExpiresAt.After(r.ReceivedAt) {
		return fmt.Errorf("%w: pending release for %v needs ReceivedAt "+
			"before ExpiresAt", ErrInvalidArgument, r.Key)
	}
	recv, err := timeNanos(r.ReceivedAt, "ReceivedAt")
	if err != nil {
		return err
	}
	exp, err := timeNanos(r.ExpiresAt, "ExpiresAt")
	if err != nil {
		return err
	}

	_, err = s.db.ExecContext(ctx, `INSERT INTO pending_releases
		(chan_id, htlc_id, payment_hash, source, received_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (chan_id, htlc_id, payment_hash) DO UPDATE SET
			source = excluded.source,
			received_at = excluded.received_at,
			expires_at = excluded.expires_at
		WHERE pending_releases.expires_at <= excluded.received_at`,
		u64Blob(r.Key.ChanID), u64Blob(r.Key.HtlcID), r.PaymentHash[:],
		r.Source, recv, exp)
	if err != nil {
		return fmt.Errorf("store pending release for %v: %w", r.Key, err)
	}

	return nil
}

// TakePendingRelease removes and returns the unexpired pending release for
// (key, hash). found is false if there is none; an expired one is left for
// PrunePendingReleases and not returned.
func (s *Store) TakePendingRelease(ctx context.Context, key CircuitKey,
	hash [32]byte, now time.Time) (PendingRelease, bool, error) {

	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return PendingRelease{}, false, err
	}

	var (
		r     PendingRelease
		found bool
	)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var recv, exp int64
		err := tx.QueryRowContext(ctx, `SELECT source, received_at,
			expires_at FROM pending_releases WHERE chan_id = ? AND
			htlc_id = ? AND payment_hash = ? AND expires_at > ?`,
			u64Blob(key.ChanID), u64Blob(key.HtlcID), hash[:],
			nowNs).Scan(&r.Source, &recv, &exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return err
		}

		_, err = tx.ExecContext(ctx, `DELETE FROM pending_releases
			WHERE chan_id = ? AND htlc_id = ? AND payment_hash = ?`,
			u64Blob(key.ChanID), u64Blob(key.HtlcID), hash[:])
		if err != nil {
			return err
		}

		r.Key = key
		r.PaymentHash = hash
		r.ReceivedAt = nanosTime(recv)
		r.ExpiresAt = nanosTime(exp)
		found = true

		return nil
	})
	if err != nil {
		return PendingRelease{}, false, fmt.Errorf("take pending "+
			"release for %v: %w", key, err)
	}

	return r, found, nil
}

// PrunePendingReleases deletes the pending releases expired at now and
// returns how many it deleted.
func (s *Store) PrunePendingReleases(ctx context.Context, now time.Time) (int64,
	error) {

	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx,
		"DELETE FROM pending_releases WHERE expires_at <= ?", nowNs)
	if err != nil {
		return 0, fmt.Errorf("prune pending releases: %w", err)
	}

	return res.RowsAffected()
}

// CountPendingReleases returns the number of stored pending releases,
// expired ones not yet pruned included, since those still take space.
func (s *Store) CountPendingReleases(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM pending_releases").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count pending releases: %w", err)
	}

	return n, nil
}
