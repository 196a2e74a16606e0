package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
)

// migration is one numbered schema step, applied in its own transaction
// together with the schema_version bump.
type migration struct {
	version int
	name    string
	sql     string
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.up\.sql$`)

// loadMigrations reads NNNN_name.up.sql files from the root of fsys. The
// versions must run 1..n without gaps, so a missing file is caught at open
// rather than skipped. There are no down migrations: a downgrade is refused
// with ErrSchemaTooNew instead.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}

	var migs []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			return nil, fmt.Errorf("unexpected migration file %q",
				e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", e.Name(), err)
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", e.Name(),
				err)
		}
		migs = append(migs, migration{
			version: v, name: e.Name(), sql: string(body),
		})
	}
	sort.Slice(migs, func(i, j int) bool {
		return migs[i].version < migs[j].version
	})
	for i, m := range migs {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %q: want version %d",
				m.name, i+1)
		}
	}
	if len(migs) == 0 {
		return nil, errors.New("no migrations")
	}

	return migs, nil
}

// LatestSchemaVersion is the schema version this binary creates.
func LatestSchemaVersion() int {
	migs, err := loadMigrations(embeddedFS())
	if err != nil {
		panic(err)
	}

	return len(migs)
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_version (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
)`

// readVersion returns the recorded schema version, 0 for a fresh database.
func readVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {

	var v int
	err := q.QueryRowContext(ctx,
		"SELECT version FROM schema_version WHERE id = 1").Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read schema version: %w", err)
	}

	return v, nil
}

// migrate brings the database up to the last of migs, one migration per
// transaction. The version is re-read inside each (immediate) transaction,
// so two processes opening the same file cannot both apply a step, and a
// failed step leaves the database at the previous version.
func migrate(ctx context.Context, db *sql.DB, migs []migration) error {
	latest := len(migs)
	for {
		done, err := migrateStep(ctx, db, migs, latest)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func migrateStep(ctx context.Context, db *sql.DB, migs []migration,
	latest int) (bool, error) {

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	if _, err := tx.ExecContext(ctx, createVersionTable); err != nil {
		return false, fmt.Errorf("create schema_version: %w", err)
	}
	cur, err := readVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	switch {
	case cur > latest:
		return false, fmt.Errorf("%w: database is at schema version "+
			"%d, this holdd knows up to %d; upgrade holdd",
			ErrSchemaTooNew, cur, latest)

	case cur < 0:
		return false, fmt.Errorf("corrupt schema version %d", cur)

	case cur == latest:
		return true, tx.Commit()
	}

	m := migs[cur]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("apply migration %s: %w", m.name, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_version (id, version)
		VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version`,
		m.version)
	if err != nil {
		return false, fmt.Errorf("record schema version %d: %w",
			m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration %s: %w", m.name, err)
	}

	return false, nil
}

// SchemaVersion returns the database's schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	return readVersion(ctx, s.db)
}
