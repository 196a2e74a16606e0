package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

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
	require.Equal(t, DeliveryPeer{Peer: a, ProvenAt: t0,
		RefreshedAt: t0}, got)
	_, err = s.PutDeliveryPeer(ctx, b, t0.Add(time.Second))
	require.NoError(t, err)
	got, err = s.PutDeliveryPeer(ctx, a, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, DeliveryPeer{Peer: a, ProvenAt: t0,
		RefreshedAt: t0.Add(time.Hour)}, got)

	_, err = s.PutDeliveryPeer(ctx, a, time.Time{})
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.NoError(t, s.Close())

	s, err = Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	list, err := s.ListDeliveryPeers(ctx)
	require.NoError(t, err)
	require.Equal(t, []DeliveryPeer{
		{Peer: a, ProvenAt: t0, RefreshedAt: t0.Add(time.Hour)},
		{Peer: b, ProvenAt: t0.Add(time.Second),
			RefreshedAt: t0.Add(time.Second)},
	}, list)
}
