package store

import (
	"context"
	"testing"
	"time"

	"github.com/holdd/holdd/recipient"
	"github.com/stretchr/testify/require"
)

func TestReceivePaths(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	t0 := time.Unix(1_800_000_000, 0).UTC()

	a := recipient.ReceivePath{
		ID: [8]byte{1}, Path: []byte{0xaa, 0xbb}, CreatedAt: t0,
		ExpiresAt: t0.Add(time.Hour),
	}
	b := recipient.ReceivePath{
		ID: [8]byte{2}, Path: []byte{0xcc}, CreatedAt: t0.Add(time.Minute),
		ExpiresAt: t0.Add(2 * time.Hour), MailboxLSP: []byte{0x02, 0x03},
	}
	require.NoError(t, s.InsertReceivePath(ctx, a))
	require.NoError(t, s.InsertReceivePath(ctx, b))
	require.Error(t, s.InsertReceivePath(ctx, a), "duplicate id")
	require.ErrorIs(t, s.InsertReceivePath(ctx, recipient.ReceivePath{
		ID: [8]byte{3}, Path: []byte{1}, CreatedAt: t0, ExpiresAt: t0,
	}), ErrInvalidArgument)

	got, err := s.GetReceivePath(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a, got)
	_, err = s.GetReceivePath(ctx, [8]byte{9})
	require.ErrorIs(t, err, ErrNotFound)

	list, err := s.ListReceivePaths(ctx, t0, false)
	require.NoError(t, err)
	require.Equal(t, []recipient.ReceivePath{b, a}, list)

	// a expires first; at its expiry only b is usable.
	list, err = s.ListReceivePaths(ctx, a.ExpiresAt, false)
	require.NoError(t, err)
	require.Equal(t, []recipient.ReceivePath{b}, list)

	require.NoError(t, s.RevokeReceivePath(ctx, b.ID, t0.Add(time.Second)))
	require.NoError(t, s.RevokeReceivePath(ctx, b.ID, t0.Add(time.Hour)))
	require.ErrorIs(t, s.RevokeReceivePath(ctx, [8]byte{9}, t0), ErrNotFound)
	list, err = s.ListReceivePaths(ctx, t0, false)
	require.NoError(t, err)
	require.Equal(t, []recipient.ReceivePath{a}, list)

	all, err := s.ListReceivePaths(ctx, t0, true)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, t0.Add(time.Second), all[0].RevokedAt)
	require.False(t, all[0].Usable(t0))
	require.True(t, all[1].Usable(t0))

	require.NoError(t, s.RecordReceiveReply(ctx, a.ID, t0.Add(3*time.Second)))
	require.NoError(t, s.RecordReceiveReply(ctx, a.ID, t0.Add(4*time.Second)))
	require.ErrorIs(t, s.RecordReceiveReply(ctx, [8]byte{9}, t0), ErrNotFound)
	got, err = s.GetReceivePath(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, uint64(2), got.Replies)
	require.Equal(t, t0.Add(4*time.Second), got.LastReplyAt)
}
