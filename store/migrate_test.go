package store

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/stretchr/testify/require"
)

// shippedMigrations counts the migration files in the source tree,
// independently of the embed and loader.
func shippedMigrations(t *testing.T) int {
	t.Helper()

	entries, err := os.ReadDir("migrations")
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".up.sql") {
			n++
		}
	}
	require.Positive(t, n)

	return n
}

func tableExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()

	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM sqlite_master
		WHERE type = 'table' AND name = ?`, name).Scan(&n))

	return n == 1
}

func TestMigrateFreshIsLatest(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	want := shippedMigrations(t)
	require.Equal(t, want, LatestSchemaVersion())
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, want, v)

	for _, table := range []string{"held_htlcs", "htlc_events",
		"pending_releases", "secrets", "settings"} {

		require.True(t, tableExists(t, s.db, table), table)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "holdd.db")

	s, err := Open(ctx, path)
	require.NoError(t, err)
	newer := shippedMigrations(t) + 1
	_, err = s.db.Exec("UPDATE schema_version SET version = ?", newer)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = Open(ctx, path)
	require.ErrorIs(t, err, ErrSchemaTooNew)
	require.Nil(t, s)
	require.Contains(t, err.Error(), "upgrade holdd")

	// The refusal must not have touched the recorded version.
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var v int
	require.NoError(t, db.QueryRow(
		"SELECT version FROM schema_version").Scan(&v))
	require.Equal(t, newer, v)
}

func TestMigrateStepsAndRollback(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "holdd.db")

	v1 := fstest.MapFS{
		"0001_a.up.sql": {Data: []byte("CREATE TABLE a (x INTEGER);")},
	}
	s, err := open(ctx, path, v1)
	require.NoError(t, err)
	_, err = s.db.Exec("INSERT INTO a (x) VALUES (42)")
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Migration 2 fails half way: its first table must be rolled back and
	// the version must stay at 1.
	broken := fstest.MapFS{
		"0001_a.up.sql": v1["0001_a.up.sql"],
		"0002_b.up.sql": {Data: []byte(
			"CREATE TABLE b (y INTEGER); CREATE TABLE a (z INTEGER);")},
	}
	_, err = open(ctx, path, broken)
	require.ErrorContains(t, err, "0002_b.up.sql")

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	var v int
	require.NoError(t, db.QueryRow(
		"SELECT version FROM schema_version").Scan(&v))
	require.Equal(t, 1, v)
	require.False(t, tableExists(t, db, "b"))
	require.NoError(t, db.Close())

	// A fixed migration 2 applies on top of the kept data.
	fixed := fstest.MapFS{
		"0001_a.up.sql": v1["0001_a.up.sql"],
		"0002_b.up.sql": {Data: []byte(
			"CREATE TABLE b (y INTEGER); ALTER TABLE a ADD COLUMN z;")},
	}
	s, err = open(ctx, path, fixed)
	require.NoError(t, err)
	defer s.Close()
	v, err = s.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, v)
	var x int
	require.NoError(t, s.db.QueryRow("SELECT x FROM a").Scan(&x))
	require.Equal(t, 42, x)
	require.True(t, tableExists(t, s.db, "b"))
}

func TestLoadMigrationsValidation(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}

	tests := []struct {
		name    string
		fsys    fstest.MapFS
		wantErr string
	}{
		{
			name:    "empty",
			fsys:    fstest.MapFS{},
			wantErr: "no migrations",
		},
		{
			name: "gap",
			fsys: fstest.MapFS{
				"0001_a.up.sql": sql, "0003_c.up.sql": sql,
			},
			wantErr: "want version 2",
		},
		{
			name:    "not starting at 1",
			fsys:    fstest.MapFS{"0002_b.up.sql": sql},
			wantErr: "want version 1",
		},
		{
			name: "stray file",
			fsys: fstest.MapFS{
				"0001_a.up.sql": sql, "0002_b.down.sql": sql,
			},
			wantErr: "unexpected migration file",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadMigrations(tc.fsys)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	migs, err := loadMigrations(fstest.MapFS{
		"0002_b.up.sql": sql, "0001_a.up.sql": sql,
	})
	require.NoError(t, err)
	require.Equal(t, []string{"0001_a.up.sql", "0002_b.up.sql"},
		[]string{migs[0].name, migs[1].name})
}

// TestMigratePathExpiryBackfill upgrades a version 3 database: active HTLCs
// get the path expiry their paths were minted with before version 4 (hold
// start + 7 days, or the hold deadline if earlier, rounded down to the
// second plus one), resolved ones none.
func TestMigratePathExpiryBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "holdd.db")

	v3 := fstest.MapFS{}
	full := embeddedFS()
	for _, name := range []string{"0001_init.up.sql",
		"0002_receive_paths.up.sql", "0003_mailbox.up.sql"} {

		body, err := fs.ReadFile(full, name)
		require.NoError(t, err)
		v3[name] = &fstest.MapFile{Data: body}
	}
	s, err := open(ctx, path, v3)
	require.NoError(t, err)

	heldAt := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	week := heldAt.Add(7 * 24 * time.Hour)
	rows := []struct {
		htlcID   uint64
		state    plugin.HoldState
		deadline time.Time
		want     time.Time
	}{
		{1, plugin.StateHeld, time.Time{},
			week.Truncate(time.Second).Add(time.Second)},
		{2, plugin.StateReleased, heldAt.Add(time.Hour),
			heldAt.Add(time.Hour).Truncate(time.Second).Add(
				time.Second)},
		{3, plugin.StateHeld, heldAt.Add(30 * 24 * time.Hour),
			week.Truncate(time.Second).Add(time.Second)},
		{4, plugin.StateFailed, time.Time{}, time.Time{}},
	}
	for _, r := range rows {
		var deadline int64
		if !r.deadline.IsZero() {
			deadline = r.deadline.UnixNano()
		}
		_, err := s.db.Exec(`INSERT INTO held_htlcs (chan_id, htlc_id,
			payment_hash, incoming_peer, incoming_amt_msat,
			outgoing_amt_msat, incoming_expiry, outgoing_expiry,
			outgoing_chan_id, auto_fail_height, failback_height,
			hold_deadline, state, held_at, updated_at)
			VALUES (?, ?, ?, ?, 1000, 900, 200, 160, ?, 190, 178, ?,
			?, ?, ?)`, u64Blob(9), u64Blob(r.htlcID),
			make([]byte, 32), make([]byte, 33), u64Blob(5),
			deadline, string(r.state), heldAt.UnixNano(),
			heldAt.UnixNano())
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())

	s = openTest(t, path)
	for _, r := range rows {
		h, err := s.GetHeld(ctx, plugin.CircuitKey{ChanID: 9, HtlcID: r.htlcID})
		require.NoError(t, err)
		require.True(t, r.want.Equal(h.PathExpiresAt), "htlc %d: %v",
			r.htlcID, h.PathExpiresAt)
	}
}
