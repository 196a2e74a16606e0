package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// lazyStmt is a statement prepared once on the store's single connection
// and kept: parsing the hot path's statements again for every call cost a
// quarter of a durable insert's CPU time. Open prepares them all; one that
// failed there (a store opened on the migration tests' schemas lacks the
// tables) is prepared again on use, and a failed prepare is not kept, so a
// transient error does not stick.
type lazyStmt struct {
	query string

	st atomic.Pointer[sql.Stmt]

	// mu serializes preparing and closing.
	mu     sync.Mutex
	closed bool
}

// errStoreClosed is returned by a statement used after Close.
var errStoreClosed = errors.New("store closed")

// get returns the statement prepared on db, the store's. It needs the
// connection to prepare, so it must not be called inside a transaction of
// the store's; use in there.
func (l *lazyStmt) get(db *sql.DB) (*sql.Stmt, error) {
	if st := l.st.Load(); st != nil {
		return st, nil
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errStoreClosed
	}
	if st := l.st.Load(); st != nil {
		return st, nil
	}
	// Not the caller's ctx: preparing is not the caller's operation.
	st, err := db.PrepareContext(context.Background(), l.query)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", l.query, err)
	}
	l.st.Store(st)

	return st, nil
}

// in returns the statement bound to tx. One that is not prepared yet is
// prepared for tx alone: the connection is tx's until it ends.
func (l *lazyStmt) in(ctx context.Context, tx *sql.Tx) (*sql.Stmt, error) {
	if st := l.st.Load(); st != nil {
		return tx.StmtContext(ctx, st), nil
	}
	st, err := tx.PrepareContext(ctx, l.query)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", l.query, err)
	}

	return st, nil
}

func (l *lazyStmt) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if st := l.st.Swap(nil); st != nil {
		return st.Close()
	}

	return nil
}

// stmts are the store's prepared statements.
type stmts struct {
	getHTLC      lazyStmt
	insertHTLC   lazyStmt
	insertEvent  lazyStmt
	toReleased   lazyStmt
	toFailed     lazyStmt
	toResolved   lazyStmt
	putPending   lazyStmt
	probePending lazyStmt
	takePending  lazyStmt
	savepoint    lazyStmt
	release      lazyStmt
	rollbackTo   lazyStmt
}

const htlcColumns = `chan_id, htlc_id, payment_hash, incoming_peer,
	incoming_amt_msat, outgoing_amt_msat, incoming_expiry, outgoing_expiry,
	outgoing_chan_id, auto_fail_height, failback_height, hold_deadline,
	state, fail_reason, release_source, held_at, updated_at, released_at,
	resolved_at, path_expires_at`

// transitionSQL is Transition's compare-and-set; set assigns the columns
// particular to the target state from ?2 (the time) and ?3 (the note).
func transitionSQL(set string) string {
	return "UPDATE held_htlcs SET state = ?1, updated_at = ?2, " + set +
		" WHERE chan_id = ?4 AND htlc_id = ?5 AND state = ?6"
}

func newStmts() *stmts {
	return &stmts{
		getHTLC: lazyStmt{query: "SELECT " + htlcColumns +
			" FROM held_htlcs WHERE chan_id = ? AND htlc_id = ?"},
		insertHTLC: lazyStmt{query: "INSERT INTO held_htlcs (" +
			htlcColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, " +
			"?, ?, ?, '', '', ?, ?, 0, 0, ?) " +
			"ON CONFLICT (chan_id, htlc_id) DO NOTHING"},
		insertEvent: lazyStmt{query: `INSERT INTO htlc_events
			(chan_id, htlc_id, from_state, to_state, note, at)
			VALUES (?, ?, ?, ?, ?, ?)`},
		toReleased: lazyStmt{query: transitionSQL(
			"release_source = ?3, released_at = ?2")},
		toFailed: lazyStmt{query: transitionSQL(
			"fail_reason = ?3, resolved_at = ?2")},
		toResolved: lazyStmt{query: transitionSQL("resolved_at = ?2")},
		putPending: lazyStmt{query: `INSERT INTO pending_releases
			(chan_id, htlc_id, payment_hash, source, received_at,
			expires_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (chan_id, htlc_id, payment_hash) DO UPDATE SET
				source = excluded.source,
				received_at = excluded.received_at,
				expires_at = excluded.expires_at
			WHERE pending_releases.expires_at <= excluded.received_at`},
		probePending: lazyStmt{query: `SELECT 1 FROM pending_releases
			WHERE chan_id = ? AND htlc_id = ? AND payment_hash = ?
			AND expires_at > ?`},
		takePending: lazyStmt{query: `DELETE FROM pending_releases
			WHERE chan_id = ? AND htlc_id = ? AND payment_hash = ?
			AND expires_at > ? RETURNING source, received_at,
			expires_at`},
		savepoint:  lazyStmt{query: "SAVEPOINT holdd_write"},
		release:    lazyStmt{query: "RELEASE holdd_write"},
		rollbackTo: lazyStmt{query: "ROLLBACK TO holdd_write"},
	}
}

func (s *stmts) all() []*lazyStmt {
	return []*lazyStmt{
		&s.getHTLC, &s.insertHTLC, &s.insertEvent, &s.toReleased,
		&s.toFailed, &s.toResolved, &s.putPending, &s.probePending,
		&s.takePending, &s.savepoint, &s.release, &s.rollbackTo,
	}
}

// prepare prepares every statement it can on db. One that fails is
// prepared again on use, where its error is reported.
func (s *stmts) prepare(db *sql.DB) {
	for _, l := range s.all() {
		_, _ = l.get(db)
	}
}

func (s *stmts) close() error {
	var errs []error
	for _, l := range s.all() {
		errs = append(errs, l.close())
	}

	return errors.Join(errs...)
}

// exec runs l with args in tx.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, l *lazyStmt,
	args ...any) (sql.Result, error) {

	st, err := l.in(ctx, tx)
	if err != nil {
		return nil, err
	}

	return st.ExecContext(ctx, args...)
}

// row runs l with args in tx, or outside a transaction if tx is nil, for
// the one row it returns; no row scans as sql.ErrNoRows.
func (s *Store) row(ctx context.Context, tx *sql.Tx, l *lazyStmt,
	args ...any) rowScanner {

	var (
		st  *sql.Stmt
		err error
	)
	if tx != nil {
		st, err = l.in(ctx, tx)
	} else {
		st, err = l.get(s.db)
	}
	if err != nil {
		return errRow{err}
	}

	return st.QueryRowContext(ctx, args...)
}

// errRow is a row whose statement could not be prepared.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
