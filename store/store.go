package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	// Registers the pure-Go "sqlite" database/sql driver.
	_ "modernc.org/sqlite"
)

//go:embed migrations/*.up.sql
var embeddedMigrations embed.FS

// busyTimeoutMs bounds how long a write waits for another process holding
// the database lock (e.g. an operator's sqlite3 shell) before failing.
const busyTimeoutMs = 5000

// Store is holdd's durable state. It is safe for concurrent use.
//
// The underlying *sql.DB is limited to one open connection. SQLite admits a
// single writer anyway, so a pool would only add SQLITE_BUSY retries between
// our own connections; with one connection every call is serialized by
// database/sql, read-modify-write transactions (Transition, Secret) cannot
// interleave, and the per-connection PRAGMAs (synchronous, foreign_keys) are
// guaranteed to be in force on the connection that writes. The consequence
// for callers is that no callback invoked while the store holds the
// connection (Secret's generate) may call back into the store.
//
// The hold path's writes (InsertHeld, Transition and the pending release
// writes) go through a group commit: writes that arrive while a transaction
// is being committed share the next one, and its single fsync. Each still
// returns only once its own write is durable, with its own result.
//
// The mailbox's writes have a group commit of their own (mailbox). A flood
// of stored onion messages then costs one fsync per batch, and since the
// groups take turns at the connection, hold batches first (writeTurn), a
// hold write waits for at most one mailbox batch, never behind a queue of
// mailbox writes, and a mailbox batch waits for at most maxHoldRun hold
// batches, however fast hold writes come. A second connection for the
// mailbox would not help:
// SQLite admits one writer, so hold writes would meet SQLITE_BUSY and the
// busy handler's sleep-and-retry instead of a wait for one transaction.
type Store struct {
	db      *sql.DB
	path    string
	stmts   *stmts
	group   *groupCommit
	mailbox *groupCommit
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and verifies the durability settings. The parent directory is
// created with mode 0700 and the database file with mode 0600; an existing
// file readable by group or others is tightened to 0600 because it holds
// secrets. SQLite creates the -wal and -shm files with the main file's
// permissions.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, embeddedFS())
}

func embeddedFS() fs.FS {
	sub, err := fs.Sub(embeddedMigrations, "migrations")
	if err != nil {
		// The embed pattern guarantees the directory exists.
		panic(err)
	}

	return sub
}

func open(ctx context.Context, path string, migFS fs.FS) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty database path",
			ErrInvalidArgument)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database path %q: %w", path, err)
	}
	// The driver splits a plain file name at the first '?' to find its
	// parameters; such a path would silently open a different file.
	if strings.ContainsAny(abs, "?#") {
		return nil, fmt.Errorf("%w: database path %q must not contain "+
			"'?' or '#'", ErrInvalidArgument, abs)
	}

	migs, err := loadMigrations(migFS)
	if err != nil {
		return nil, err
	}

	if err := prepareFile(abs); err != nil {
		return nil, err
	}

	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "1")
	q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMs))
	// BEGIN IMMEDIATE takes the write lock up front, so a read-then-write
	// transaction cannot fail half way with SQLITE_BUSY when another
	// process holds the database.
	q.Set("_txlock", "immediate")

	db, err := sql.Open("sqlite", abs+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", abs, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, path: abs}
	if err := s.checkPragmas(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := migrate(ctx, db, migs); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.stmts = newStmts()
	s.stmts.prepare(db)
	turn := newWriteTurn()
	s.group = &groupCommit{
		db:       db,
		stmts:    s.stmts,
		maxBatch: defaultMaxBatch,
		turn:     turn,
		urgent:   true,
	}
	s.mailbox = &groupCommit{
		db:       db,
		stmts:    s.stmts,
		maxBatch: mailboxMaxBatch,
		turn:     turn,
	}

	return s, nil
}

// prepareFile creates the parent directory and the database file with
// owner-only permissions before SQLite opens it, since SQLite would create
// it honouring only the umask.
func prepareFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create database directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("stat database file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: database %s is not a regular file",
			ErrInvalidArgument, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("restrict database permissions: %w",
				err)
		}
	}

	return nil
}

// checkPragmas verifies that the DSN settings took effect: a filesystem
// without shared-memory support, for instance, silently stays out of WAL.
func (s *Store) checkPragmas(ctx context.Context) error {
	var mode string
	err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
	if err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}

	checks := []struct {
		pragma string
		want   int
	}{
		{"synchronous", 2}, // FULL
		{"foreign_keys", 1},
	}
	for _, c := range checks {
		var got int
		err := s.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got)
		if err != nil {
			return fmt.Errorf("read %s: %w", c.pragma, err)
		}
		if got != c.want {
			return fmt.Errorf("%s is %d, want %d", c.pragma, got,
				c.want)
		}
	}

	return nil
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string {
	return s.path
}

// Close closes the database. Every write has already been made durable.
func (s *Store) Close() error {
	return errors.Join(s.stmts.close(), s.db.Close())
}

// inTx runs fn in a write transaction of its own and commits it; fn's
// error rolls it back. Unlike the group commit, fn may use its caller's
// ctx: a cancellation then interrupts only this transaction.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil &&
			!errors.Is(rerr, sql.ErrTxDone) {

			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}

		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}

	return nil
}
