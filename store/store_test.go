package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/stretchr/testify/require"
)

// t0 is a fixed UTC instant without a monotonic reading, so records
// compare with require.Equal after a round trip.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

func openTest(t testing.TB, path string) *Store {
	t.Helper()

	s, err := Open(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	return s
}

func newTestStore(t testing.TB) *Store {
	t.Helper()

	return openTest(t, filepath.Join(t.TempDir(), "holdd.db"))
}

// testHTLC returns a fresh held HTLC for key with every field non-zero.
func testHTLC(key plugin.CircuitKey, heldAt time.Time) plugin.HeldHTLC {
	h := plugin.HeldHTLC{
		Key:             key,
		IncomingAmtMsat: 1_000_000 + key.HtlcID,
		OutgoingAmtMsat: 999_000 + key.HtlcID,
		IncomingExpiry:  800_144,
		OutgoingExpiry:  800_104,
		OutgoingChanID:  0x0c3500000a0001,
		AutoFailHeight:  800_134,
		FailbackHeight:  800_124,
		HoldDeadline:    heldAt.Add(24 * time.Hour),
		PathExpiresAt:   heldAt.Add(20 * time.Hour).Truncate(time.Second),
		State:           plugin.StateHeld,
		HeldAt:          heldAt,
		UpdatedAt:       heldAt,
	}
	for i := range h.PaymentHash {
		h.PaymentHash[i] = byte(i) ^ byte(key.HtlcID)
	}
	h.IncomingPeer[0] = 0x02
	for i := 1; i < len(h.IncomingPeer); i++ {
		h.IncomingPeer[i] = byte(0xa0 + i)
	}

	return h
}

func TestOpenReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "new", "data")
	path := filepath.Join(dir, "holdd.db")

	s, err := Open(ctx, path)
	require.NoError(t, err)
	require.Equal(t, path, s.Path())

	h := testHTLC(plugin.CircuitKey{ChanID: 7, HtlcID: 3}, t0)
	_, inserted, err := s.InsertHeld(ctx, h)
	require.NoError(t, err)
	require.True(t, inserted)
	require.NoError(t, s.PutSetting(ctx, "policy", []byte(`{"a":1}`)))

	// Files must be private while the database is live, -wal included.
	for _, c := range []struct {
		path string
		perm os.FileMode
	}{
		{dir, 0o700},
		{path, 0o600},
		{path + "-wal", 0o600},
	} {
		fi, err := os.Stat(c.path)
		require.NoError(t, err, c.path)
		require.Equal(t, c.perm, fi.Mode().Perm(), c.path)
	}
	require.NoError(t, s.Close())

	s = openTest(t, path)
	got, err := s.GetHeld(ctx, h.Key)
	require.NoError(t, err)
	require.Equal(t, h, got)
	v, err := s.GetSetting(ctx, "policy")
	require.NoError(t, err)
	require.Equal(t, []byte(`{"a":1}`), v)
}

func TestOpenPragmas(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	// The pool has one connection, so these read the connection that
	// every write uses.
	var mode string
	require.NoError(t, s.db.QueryRowContext(ctx,
		"PRAGMA journal_mode").Scan(&mode))
	require.Equal(t, "wal", mode)

	for _, c := range []struct {
		pragma string
		want   int
	}{
		{"synchronous", 2},
		{"foreign_keys", 1},
		{"busy_timeout", busyTimeoutMs},
	} {
		var got int
		require.NoError(t, s.db.QueryRowContext(ctx,
			"PRAGMA "+c.pragma).Scan(&got))
		require.Equal(t, c.want, got, c.pragma)
	}
	require.Equal(t, 1, s.db.Stats().MaxOpenConnections)
}

func TestOpenTightensExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "holdd.db")
	require.NoError(t, os.WriteFile(path, nil, 0o644))
	require.NoError(t, os.Chmod(path, 0o644))

	openTest(t, path)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestOpenRejectsBadPaths(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	tests := []struct {
		name string
		path string
	}{
		{"empty", ""},
		{"query", filepath.Join(dir, "a.db?mode=ro")},
		{"fragment", filepath.Join(dir, "a#b.db")},
		{"directory", dir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, tc.path)
			require.Error(t, err)
			require.Nil(t, s)
		})
	}
}
