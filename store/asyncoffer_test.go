package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/holdd/holdd/asyncoffer"
	"github.com/stretchr/testify/require"
)

func TestAsyncOfferSlots(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	got, err := s.ListAsyncOfferSlots(ctx)
	require.NoError(t, err)
	require.Empty(t, got)

	now := time.Date(2026, 12, 2, 10, 0, 0, 123, time.UTC)
	slot := asyncoffer.Slot{
		Slot:             3,
		Phase:            asyncoffer.PhaseLive,
		Live:             true,
		Offer:            []byte{1, 2, 3},
		OfferKey:         bytes.Repeat([]byte{4}, 32),
		VirtualKey:       bytes.Repeat([]byte{5}, 32),
		FakeSCID:         1 << 62,
		PathsExpiresAt:   time.Unix(4_000_000_000, 0).UTC(),
		ServePath:        []byte{6},
		Invoice:          []byte{7, 8},
		InvoiceExpiresAt: time.Unix(1_800_000_000, 0).UTC(),
		ServedAt:         now,
		UpdatedAt:        now,
	}
	first := asyncoffer.Slot{Slot: 0, Phase: asyncoffer.PhaseRequesting}
	require.NoError(t, s.PutAsyncOfferSlot(ctx, slot))
	require.NoError(t, s.PutAsyncOfferSlot(ctx, first))
	got, err = s.ListAsyncOfferSlots(ctx)
	require.NoError(t, err)
	require.Equal(t, []asyncoffer.Slot{first, slot}, got)

	// A replacement replaces the whole row.
	slot.Phase = asyncoffer.PhaseServing
	slot.Invoice = nil
	require.NoError(t, s.PutAsyncOfferSlot(ctx, slot))
	got, err = s.ListAsyncOfferSlots(ctx)
	require.NoError(t, err)
	require.Equal(t, slot, got[1])

	// The schema refuses a bad phase and a short key.
	bad := first
	bad.Phase = "bogus"
	require.Error(t, s.PutAsyncOfferSlot(ctx, bad))
	bad = first
	bad.OfferKey = []byte{1}
	require.Error(t, s.PutAsyncOfferSlot(ctx, bad))

	require.NoError(t, s.InsertForwardedInvoiceRequest(ctx,
		asyncoffer.ForwardedRequest{
			Slot: 3, Request: []byte{9}, ReceivedAt: now,
		}))
	n, err := s.CountForwardedInvoiceRequests(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}
