package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdd/holdd/release"
	"github.com/stretchr/testify/require"
)

// TestDeliveryPeersPersist checks that a proven peer keeps its first proof
// time, gets its refresh time updated, and survives reopening the store.
func TestDeliveryPeersPersist(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "holdd.db")
	s, err := Open(ctx, path)
	require.NoError(t, err)

	t0 := time.Unix(1_700_000_000, 0).UTC()
	a, b := mbPeer(1), mbPeer(2)
	got, err := s.PutDeliveryPeer(ctx, a, t0)
	require.NoError(t, err)
	require.Equal(t, release.DeliveryPeer{Peer: a, ProvenAt: t0,
		RefreshedAt: t0}, got)
	_, err = s.PutDeliveryPeer(ctx, b, t0.Add(time.Second))
	require.NoError(t, err)
	got, err = s.PutDeliveryPeer(ctx, a, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, release.DeliveryPeer{Peer: a, ProvenAt: t0,
		RefreshedAt: t0.Add(time.Hour)}, got)

	_, err = s.PutDeliveryPeer(ctx, a, time.Time{})
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.NoError(t, s.Close())

	s, err = Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	list, err := s.ListDeliveryPeers(ctx)
	require.NoError(t, err)
	require.Equal(t, []release.DeliveryPeer{
		{Peer: a, ProvenAt: t0, RefreshedAt: t0.Add(time.Hour)},
		{Peer: b, ProvenAt: t0.Add(time.Second),
			RefreshedAt: t0.Add(time.Second)},
	}, list)
}

// TestPutDeliveryPeerTakesTurns: a delivery peer write waits for its turn
// at the connection behind a running hold batch, like every mailbox write,
// and shares the mailbox's group commit instead of a transaction of its
// own.
func TestPutDeliveryPeerTakesTurns(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	release, blocked := blockGroup(t, s)
	before := s.mailbox.batches.Load()
	done := make(chan error, 1)
	go func() {
		_, err := s.PutDeliveryPeer(ctx, mbPeer(1), t0)
		done <- err
	}()
	require.Eventually(t, func() bool { return turnWaiting(s) == 1 },
		10*time.Second, time.Millisecond)
	release()
	require.NoError(t, <-blocked)
	require.NoError(t, <-done)
	require.EqualValues(t, 1, s.mailbox.batches.Load()-before)
}

// TestPutDeliveryPeerBound: with MaxDeliveryPeers recorded, a new peer is
// refused and nothing is written, while a recorded one is still refreshed
// and keeps its first proof time.
func TestPutDeliveryPeerBound(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	first, err := s.PutDeliveryPeer(ctx, mbPeer(1), t0)
	require.NoError(t, err)
	// Fill the table up to the bound with made-up 33-byte keys.
	_, err = s.db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1
		UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO delivery_peers (peer, proven_at, refreshed_at)
		SELECT unhex(printf('04%064x', i)), 1, 1 FROM n`,
		MaxDeliveryPeers-1)
	require.NoError(t, err)

	_, err = s.PutDeliveryPeer(ctx, mbPeer(2), t0)
	require.ErrorIs(t, err, ErrInvalidArgument)
	var n int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM
		delivery_peers`).Scan(&n))
	require.Equal(t, MaxDeliveryPeers, n)

	later := t0.Add(time.Hour)
	got, err := s.PutDeliveryPeer(ctx, mbPeer(1), later)
	require.NoError(t, err)
	require.Equal(t, release.DeliveryPeer{Peer: mbPeer(1),
		ProvenAt: first.ProvenAt, RefreshedAt: later}, got)
}
