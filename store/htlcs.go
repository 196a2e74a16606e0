package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/lntypes"
)

type rowScanner interface {
	Scan(dest ...any) error
}

func scanHTLC(r rowScanner) (plugin.HeldHTLC, error) {
	var (
		h                                 plugin.HeldHTLC
		chanID, htlcID, hash, peer, outCh []byte
		inAmt, outAmt                     int64
		deadline, heldAt, updatedAt       int64
		releasedAt, resolvedAt, pathExp   int64
		state                             string
	)
	err := r.Scan(&chanID, &htlcID, &hash, &peer, &inAmt, &outAmt,
		&h.IncomingExpiry, &h.OutgoingExpiry, &outCh, &h.AutoFailHeight,
		&h.FailbackHeight, &deadline, &state, &h.FailReason,
		&h.ReleaseSource, &heldAt, &updatedAt, &releasedAt, &resolvedAt,
		&pathExp)
	if err != nil {
		return plugin.HeldHTLC{}, err
	}

	if h.Key.ChanID, err = blobU64(chanID, "chan_id"); err != nil {
		return plugin.HeldHTLC{}, err
	}
	if h.Key.HtlcID, err = blobU64(htlcID, "htlc_id"); err != nil {
		return plugin.HeldHTLC{}, err
	}
	if h.OutgoingChanID, err = blobU64(outCh, "outgoing_chan_id"); err != nil {
		return plugin.HeldHTLC{}, err
	}
	if err := blobFixed(h.PaymentHash[:], hash, "payment_hash"); err != nil {
		return plugin.HeldHTLC{}, err
	}
	if err := blobFixed(h.IncomingPeer[:], peer, "incoming_peer"); err != nil {
		return plugin.HeldHTLC{}, err
	}
	h.IncomingAmtMsat = uint64(inAmt)
	h.OutgoingAmtMsat = uint64(outAmt)
	h.State = plugin.HoldState(state)
	h.HoldDeadline = nanosTime(deadline)
	h.HeldAt = nanosTime(heldAt)
	h.UpdatedAt = nanosTime(updatedAt)
	h.ReleasedAt = nanosTime(releasedAt)
	h.ResolvedAt = nanosTime(resolvedAt)
	h.PathExpiresAt = nanosTime(pathExp)

	return h, nil
}

// getHTLC reads key in tx, or outside a transaction if tx is nil.
func (s *Store) getHTLC(ctx context.Context, tx *sql.Tx, key plugin.CircuitKey) (
	plugin.HeldHTLC, error) {

	h, err := scanHTLC(s.row(ctx, tx, &s.stmts.getHTLC,
		u64Blob(key.ChanID), u64Blob(key.HtlcID)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return plugin.HeldHTLC{}, fmt.Errorf("htlc %v: %w", key, notFound(plugin.ErrUnknownHTLC))
	case err != nil:
		return plugin.HeldHTLC{}, fmt.Errorf("read htlc %v: %w", key, err)
	}

	return h, nil
}

func (s *Store) insertEvent(ctx context.Context, tx *sql.Tx,
	key plugin.CircuitKey, from, to plugin.HoldState, note string, at int64) error {

	_, err := s.exec(ctx, tx, &s.stmts.insertEvent, u64Blob(key.ChanID), u64Blob(key.HtlcID), string(from),
		string(to), note, at)
	if err != nil {
		return fmt.Errorf("record event for %v: %w", key, err)
	}

	return nil
}

// InsertHeld stores a new held HTLC. If the key exists already (lnd
// replaying it after a reconnect or restart) it returns the stored record
// and inserted=false, changing nothing; the caller decides from the stored
// state what lnd is owed.
//
// h.State must be empty or held, HeldAt must be set, and the release and
// resolution fields must be empty: a record enters the state machine at
// held only. A zero UpdatedAt is set to HeldAt.
func (s *Store) InsertHeld(ctx context.Context, h plugin.HeldHTLC) (plugin.HeldHTLC, bool,
	error) {

	fresh, times, err := checkNewHeld(h)
	if err != nil {
		return plugin.HeldHTLC{}, false, err
	}

	var (
		stored   plugin.HeldHTLC
		inserted bool
	)
	err = s.group.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// A write may run twice (see groupCommit): start afresh.
		stored, inserted = plugin.HeldHTLC{}, false

		n, err := s.insertHeldRow(ctx, tx, fresh, times)
		if err != nil {
			return err
		}
		if n == 0 {
			// The key exists: lnd replayed it.
			stored, err = s.getHTLC(ctx, tx, h.Key)

			return err
		}
		err = s.insertEvent(ctx, tx, h.Key, "", plugin.StateHeld, "", times[1])
		if err != nil {
			return err
		}
		stored, inserted = fresh, true

		return nil
	})
	if err != nil {
		return plugin.HeldHTLC{}, false, err
	}

	return stored, inserted, nil
}

// checkNewHeld checks a new record as InsertHeld takes it and returns it
// as a read of the new row returns it, with its times in unix nanoseconds
// (HoldDeadline, HeldAt, UpdatedAt, PathExpiresAt).
func checkNewHeld(h plugin.HeldHTLC) (plugin.HeldHTLC, [4]int64, error) {
	var times [4]int64
	if h.State == "" {
		h.State = plugin.StateHeld
	}
	switch {
	case h.State != plugin.StateHeld:
		return plugin.HeldHTLC{}, times, fmt.Errorf("%w: new htlc %v in state "+
			"%q, want held", ErrInvalidArgument, h.Key, h.State)
	case h.HeldAt.IsZero():
		return plugin.HeldHTLC{}, times, fmt.Errorf("%w: htlc %v without "+
			"HeldAt", ErrInvalidArgument, h.Key)
	case h.FailReason != "" || h.ReleaseSource != "" ||
		!h.ReleasedAt.IsZero() || !h.ResolvedAt.IsZero():

		return plugin.HeldHTLC{}, times, fmt.Errorf("%w: new htlc %v carries "+
			"release or resolution fields", ErrInvalidArgument, h.Key)
	}
	if h.UpdatedAt.IsZero() {
		h.UpdatedAt = h.HeldAt
	}

	for i, t := range []struct {
		t    time.Time
		name string
	}{
		{h.HoldDeadline, "HoldDeadline"},
		{h.HeldAt, "HeldAt"},
		{h.UpdatedAt, "UpdatedAt"},
		{h.PathExpiresAt, "PathExpiresAt"},
	} {
		var err error
		if times[i], err = timeNanos(t.t, t.name); err != nil {
			return plugin.HeldHTLC{}, times, err
		}
	}

	// What a read of the new row returns: the times as they round-trip
	// through unix nanoseconds, every other field as given.
	fresh := h
	fresh.HoldDeadline = nanosTime(times[0])
	fresh.HeldAt = nanosTime(times[1])
	fresh.UpdatedAt = nanosTime(times[2])
	fresh.PathExpiresAt = nanosTime(times[3])

	return fresh, times, nil
}

// insertHeldRow inserts h's row unless its key exists; it returns the rows
// inserted.
func (s *Store) insertHeldRow(ctx context.Context, tx *sql.Tx, h plugin.HeldHTLC,
	times [4]int64) (int64, error) {

	res, err := s.exec(ctx, tx, &s.stmts.insertHTLC,
		u64Blob(h.Key.ChanID), u64Blob(h.Key.HtlcID),
		h.PaymentHash[:], h.IncomingPeer[:],
		int64(h.IncomingAmtMsat), int64(h.OutgoingAmtMsat),
		h.IncomingExpiry, h.OutgoingExpiry,
		u64Blob(h.OutgoingChanID), h.AutoFailHeight,
		h.FailbackHeight, times[0], string(plugin.StateHeld), times[1],
		times[2], times[3])
	if err != nil {
		return 0, fmt.Errorf("insert htlc %v: %w", h.Key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("insert htlc %v: %w", h.Key, err)
	}

	return n, nil
}

// GetHeld returns the HTLC stored under key, or ErrNotFound.
func (s *Store) GetHeld(ctx context.Context, key plugin.CircuitKey) (plugin.HeldHTLC,
	error) {

	return s.getHTLC(ctx, nil, key)
}

// LookupHTLC returns, in one call, what a decision about a new offer of key
// needs: the record stored under key, if any, and when there is none the
// pending release for (key, hash) unexpired at now, if any. Neither is an
// error when absent.
func (s *Store) LookupHTLC(ctx context.Context, key plugin.CircuitKey,
	hash lntypes.Hash, now time.Time) (plugin.HTLCLookup, error) {

	var l plugin.HTLCLookup
	rec, err := s.getHTLC(ctx, nil, key)
	switch {
	case err == nil:
		l.HTLC, l.Found = rec, true
		return l, nil
	case !errors.Is(err, ErrNotFound):
		return l, err
	}

	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return l, err
	}
	var recv, exp int64
	err = s.db.QueryRowContext(ctx, `SELECT source, received_at,
		expires_at FROM pending_releases WHERE chan_id = ? AND
		htlc_id = ? AND payment_hash = ? AND expires_at > ?`,
		u64Blob(key.ChanID), u64Blob(key.HtlcID), hash[:],
		nowNs).Scan(&l.Pending.Source, &recv, &exp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return l, nil
	case err != nil:
		return l, fmt.Errorf("read pending release for %v: %w", key,
			err)
	}
	l.Pending.Key = key
	l.Pending.PaymentHash = hash
	l.Pending.ReceivedAt = nanosTime(recv)
	l.Pending.ExpiresAt = nanosTime(exp)
	l.HasPending = true

	return l, nil
}

// InsertReleased stores a new HTLC h that the early release p released:
// held, released by p.Source and resumed at at, with an event for each
// step, and deletes p, all in one transaction. h is checked as InsertHeld
// checks it. If the key exists already it returns the stored record and
// inserted=false, changing nothing.
func (s *Store) InsertReleased(ctx context.Context, h plugin.HeldHTLC,
	p plugin.PendingRelease, at time.Time) (plugin.HeldHTLC, bool, error) {

	if p.Key != h.Key || p.PaymentHash != h.PaymentHash {
		return plugin.HeldHTLC{}, false, fmt.Errorf("%w: release for %v does "+
			"not name htlc %v", ErrInvalidArgument, p.Key, h.Key)
	}
	fresh, times, err := checkNewHeld(h)
	if err != nil {
		return plugin.HeldHTLC{}, false, err
	}
	atNs, err := timeNanos(at, "at")
	if err != nil {
		return plugin.HeldHTLC{}, false, err
	}

	var (
		stored   plugin.HeldHTLC
		inserted bool
	)
	err = s.group.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// A write may run twice (see groupCommit): start afresh.
		stored, inserted = plugin.HeldHTLC{}, false

		n, err := s.insertHeldRow(ctx, tx, fresh, times)
		if err != nil {
			return err
		}
		if n == 0 {
			stored, err = s.getHTLC(ctx, tx, h.Key)

			return err
		}
		err = s.insertEvent(ctx, tx, h.Key, "", plugin.StateHeld, "", times[1])
		if err != nil {
			return err
		}
		steps := []struct {
			upd      *lazyStmt
			from, to plugin.HoldState
			note     string
		}{
			{&s.stmts.toReleased, plugin.StateHeld, plugin.StateReleased, p.Source},
			{&s.stmts.toResolved, plugin.StateReleased, plugin.StateResumed, ""},
		}
		for _, st := range steps {
			res, err := s.exec(ctx, tx, st.upd, string(st.to), atNs,
				st.note, u64Blob(h.Key.ChanID),
				u64Blob(h.Key.HtlcID), string(st.from))
			if err != nil {
				return fmt.Errorf("update htlc %v: %w", h.Key, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return fmt.Errorf("update htlc %v: %d rows (%v)",
					h.Key, n, err)
			}
			err = s.insertEvent(ctx, tx, h.Key, st.from, st.to,
				st.note, atNs)
			if err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM pending_releases
			WHERE chan_id = ? AND htlc_id = ? AND payment_hash = ?`,
			u64Blob(p.Key.ChanID), u64Blob(p.Key.HtlcID),
			p.PaymentHash[:])
		if err != nil {
			return fmt.Errorf("take pending release for %v: %w",
				p.Key, err)
		}

		stored = fresh
		stored.State = plugin.StateResumed
		stored.UpdatedAt = nanosTime(atNs)
		stored.ReleaseSource = p.Source
		stored.ReleasedAt = nanosTime(atNs)
		stored.ResolvedAt = nanosTime(atNs)
		inserted = true

		return nil
	})
	if err != nil {
		return plugin.HeldHTLC{}, false, err
	}

	return stored, inserted, nil
}

// Transition moves key from one of from to to atomically (compare-and-set)
// and returns the updated record. Every from -> to pair must be an edge of
// the state machine. note becomes ReleaseSource when moving to released and
// FailReason when moving to failed; it is kept in the event log in every
// case. at becomes UpdatedAt, and ReleasedAt (to released) or ResolvedAt
// (to a final state).
//
// A record in a state outside from yields a *TransitionError (wrapping
// ErrInvalidTransition) naming the current state and leaves it unchanged;
// an unknown key yields ErrNotFound.
func (s *Store) Transition(ctx context.Context, key plugin.CircuitKey,
	from []plugin.HoldState, to plugin.HoldState, note string, at time.Time) (plugin.HeldHTLC,
	error) {

	if len(from) == 0 {
		return plugin.HeldHTLC{}, fmt.Errorf("%w: no source state for %v -> %s",
			plugin.ErrInvalidTransition, key, to)
	}
	for _, f := range from {
		if !plugin.ValidTransition(f, to) {
			return plugin.HeldHTLC{}, fmt.Errorf("%w: %q -> %q is not an "+
				"edge of the hold state machine",
				plugin.ErrInvalidTransition, f, to)
		}
	}
	if at.IsZero() {
		return plugin.HeldHTLC{}, fmt.Errorf("%w: transition of %v without a "+
			"time", ErrInvalidArgument, key)
	}
	atNs, err := timeNanos(at, "at")
	if err != nil {
		return plugin.HeldHTLC{}, err
	}

	var upd *lazyStmt
	switch to {
	case plugin.StateReleased:
		upd = &s.stmts.toReleased
	case plugin.StateFailed:
		upd = &s.stmts.toFailed
	default:
		// resumed, gone: the only other targets ValidTransition allows.
		upd = &s.stmts.toResolved
	}

	var updated plugin.HeldHTLC
	err = s.group.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		updated = plugin.HeldHTLC{}
		cur, err := s.getHTLC(ctx, tx, key)
		if err != nil {
			return err
		}
		if !slices.Contains(from, cur.State) {
			return &plugin.TransitionError{
				Key: key, Current: cur.State,
				From: slices.Clone(from), To: to,
			}
		}

		res, err := s.exec(ctx, tx, upd, string(to), atNs, note, u64Blob(key.ChanID),
			u64Blob(key.HtlcID), string(cur.State))
		if err != nil {
			return fmt.Errorf("update htlc %v: %w", key, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("update htlc %v: %d rows (%v)", key, n,
				err)
		}
		err = s.insertEvent(ctx, tx, key, cur.State, to, note, atNs)
		if err != nil {
			return err
		}

		// The record as the update left it, without reading it back.
		updated = cur
		updated.State = to
		updated.UpdatedAt = nanosTime(atNs)
		switch to {
		case plugin.StateReleased:
			updated.ReleaseSource = note
			updated.ReleasedAt = nanosTime(atNs)
		case plugin.StateFailed:
			updated.FailReason = note
			updated.ResolvedAt = nanosTime(atNs)
		default:
			updated.ResolvedAt = nanosTime(atNs)
		}

		return nil
	})
	if err != nil {
		return plugin.HeldHTLC{}, err
	}

	return updated, nil
}

// ListHTLCs returns the HTLCs matching f, ordered by HeldAt, then key.
func (s *Store) ListHTLCs(ctx context.Context, f plugin.ListFilter) ([]plugin.HeldHTLC,
	error) {

	var (
		where []string
		args  []any
	)
	if len(f.States) > 0 {
		marks := make([]string, len(f.States))
		for i, st := range f.States {
			if !st.Valid() {
				return nil, fmt.Errorf("%w: unknown state %q",
					ErrInvalidArgument, st)
			}
			marks[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "state IN ("+strings.Join(marks, ", ")+")")
	}
	if f.Peer != nil {
		where = append(where, "incoming_peer = ?")
		args = append(args, f.Peer[:])
	}

	q := "SELECT " + htlcColumns + " FROM held_htlcs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY held_at, chan_id, htlc_id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}

	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list htlcs: %w", err)
	}
	defer rows.Close()

	var out []plugin.HeldHTLC
	for rows.Next() {
		h, err := scanHTLC(rows)
		if err != nil {
			return nil, fmt.Errorf("list htlcs: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list htlcs: %w", err)
	}

	return out, nil
}

// Events returns the state history of key, oldest first, or ErrNotFound.
func (s *Store) Events(ctx context.Context, key plugin.CircuitKey) ([]plugin.StateChange, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT from_state, to_state,
		note, at FROM htlc_events WHERE chan_id = ? AND htlc_id = ?
		ORDER BY id`, u64Blob(key.ChanID), u64Blob(key.HtlcID))
	if err != nil {
		return nil, fmt.Errorf("events of %v: %w", key, err)
	}
	defer rows.Close()

	var out []plugin.StateChange
	for rows.Next() {
		var (
			from, to, note string
			at             int64
		)
		if err := rows.Scan(&from, &to, &note, &at); err != nil {
			return nil, fmt.Errorf("events of %v: %w", key, err)
		}
		out = append(out, plugin.StateChange{
			Key: key, From: plugin.HoldState(from), To: plugin.HoldState(to),
			Note: note, At: nanosTime(at),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of %v: %w", key, err)
	}
	// The insert always writes an event, so no events means no HTLC.
	if len(out) == 0 {
		return nil, fmt.Errorf("htlc %v: %w", key, notFound(plugin.ErrUnknownHTLC))
	}

	return out, nil
}

// PruneResolved deletes HTLCs in a final state resolved before the given
// time, with their event logs, and returns how many HTLCs it deleted.
// Active HTLCs are never pruned.
func (s *Store) PruneResolved(ctx context.Context, before time.Time) (int64,
	error) {

	ns, err := timeNanos(before, "before")
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM held_htlcs
		WHERE state IN (?, ?, ?) AND resolved_at != 0 AND resolved_at < ?`,
		string(plugin.StateResumed), string(plugin.StateFailed), string(plugin.StateGone), ns)
	if err != nil {
		return 0, fmt.Errorf("prune resolved htlcs: %w", err)
	}

	return res.RowsAffected()
}
