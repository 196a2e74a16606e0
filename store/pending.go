package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/lntypes"
)

// PutPendingRelease stores a release that arrived before its HTLC was
// offered. It is idempotent per (key, payment hash): a repeat leaves the
// stored release as it is, unless that one had already expired at
// r.ReceivedAt, in which case r replaces it so a late retry still counts.
// ReceivedAt and ExpiresAt are required and ExpiresAt must be after
// ReceivedAt, which bounds how long an unmatched release occupies storage.
func (s *Store) PutPendingRelease(ctx context.Context, r plugin.PendingRelease) error {
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

	err = s.group.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, &s.stmts.putPending,
			u64Blob(r.Key.ChanID), u64Blob(r.Key.HtlcID),
			r.PaymentHash[:], r.Source, recv, exp)

		return err
	})
	if err != nil {
		return fmt.Errorf("store pending release for %v: %w", r.Key, err)
	}

	return nil
}

// TakePendingRelease removes and returns the unexpired pending release for
// (key, hash). found is false if there is none; an expired one is left for
// PrunePendingReleases and not returned.
func (s *Store) TakePendingRelease(ctx context.Context, key plugin.CircuitKey,
	hash lntypes.Hash, now time.Time) (plugin.PendingRelease, bool, error) {

	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return plugin.PendingRelease{}, false, err
	}

	// The engine asks after every hold and almost never finds one: a
	// read answers that without taking the write lock. A release stored
	// after this read is the race the engine resolves itself (it looks
	// for the HTLC again after storing a release).
	var one int
	err = s.row(ctx, nil, &s.stmts.probePending, u64Blob(key.ChanID),
		u64Blob(key.HtlcID), hash[:], nowNs).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return plugin.PendingRelease{}, false, nil
	case err != nil:
		return plugin.PendingRelease{}, false, fmt.Errorf("take pending "+
			"release for %v: %w", key, err)
	}

	var (
		r     plugin.PendingRelease
		found bool
	)
	err = s.group.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		r, found = plugin.PendingRelease{}, false
		var recv, exp int64
		err := s.row(ctx, tx, &s.stmts.takePending,
			u64Blob(key.ChanID), u64Blob(key.HtlcID), hash[:],
			nowNs).Scan(&r.Source, &recv, &exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
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
		return plugin.PendingRelease{}, false, fmt.Errorf("take pending "+
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
