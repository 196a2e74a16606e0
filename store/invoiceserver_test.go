package store

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdd/holdd/invoiceserver"
	"github.com/stretchr/testify/require"
)

func testStaticInvoice(id []byte, slot uint16, fill byte,
	at time.Time) invoiceserver.StaticInvoice {

	return invoiceserver.StaticInvoice{
		RecipientID: id,
		Slot:        slot,
		Invoice:     bytes.Repeat([]byte{fill}, 100),
		OfferID:     [32]byte{fill},
		ForwardPath: []byte{fill, fill},
		ExpiresAt:   at.Add(14 * 24 * time.Hour),
		StoredAt:    at,
	}
}

// TestInvoiceServerStore: recipients and their invoices survive a reopen,
// a replacement for a slot replaces, the recipient bound holds, and
// removing a recipient removes its invoices.
func TestInvoiceServerStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "holdd.db")
	s, err := Open(ctx, path)
	require.NoError(t, err)

	t0 := time.Unix(1_700_000_000, 0).UTC()
	alice, bob := []byte("alice"), bytes.Repeat([]byte{0xbb}, 1024)
	a, err := s.PutAsyncRecipient(ctx, invoiceserver.Recipient{
		ID: alice, CreatedAt: t0}, 2)
	require.NoError(t, err)
	require.Equal(t, invoiceserver.Recipient{ID: alice, CreatedAt: t0}, a)

	// Renewing keeps created_at and sets the new expiry.
	a, err = s.PutAsyncRecipient(ctx, invoiceserver.Recipient{ID: alice,
		CreatedAt: t0.Add(time.Hour), ExpiresAt: t0.Add(48 * time.Hour)},
		2)
	require.NoError(t, err)
	require.Equal(t, invoiceserver.Recipient{ID: alice, CreatedAt: t0,
		ExpiresAt: t0.Add(48 * time.Hour)}, a)

	_, err = s.PutAsyncRecipient(ctx, invoiceserver.Recipient{ID: bob,
		CreatedAt: t0}, 2)
	require.NoError(t, err)
	_, err = s.PutAsyncRecipient(ctx, invoiceserver.Recipient{
		ID: []byte("carol"), CreatedAt: t0}, 2)
	require.ErrorIs(t, err, invoiceserver.ErrTooManyRecipients)
	_, err = s.PutAsyncRecipient(ctx, invoiceserver.Recipient{
		ID: bytes.Repeat([]byte{1}, 1025), CreatedAt: t0}, 10)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = s.GetAsyncRecipient(ctx, []byte("carol"))
	require.ErrorIs(t, err, invoiceserver.ErrUnknownRecipient)

	_, err = s.GetStaticInvoice(ctx, alice, 0)
	require.ErrorIs(t, err, invoiceserver.ErrNoInvoice)
	require.ErrorIs(t, s.PutStaticInvoice(ctx,
		testStaticInvoice([]byte("carol"), 0, 1, t0)),
		invoiceserver.ErrUnknownRecipient)

	require.NoError(t, s.PutStaticInvoice(ctx,
		testStaticInvoice(alice, 3, 1, t0)))
	require.NoError(t, s.PutStaticInvoice(ctx,
		testStaticInvoice(alice, 3, 2, t0.Add(time.Minute))))
	require.NoError(t, s.PutStaticInvoice(ctx,
		testStaticInvoice(bob, 3, 7, t0)))
	require.NoError(t, s.Close())

	s, err = Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()

	want := testStaticInvoice(alice, 3, 2, t0.Add(time.Minute))
	want.RecipientExpiresAt = t0.Add(48 * time.Hour)
	got, err := s.GetStaticInvoice(ctx, alice, 3)
	require.NoError(t, err)
	require.Equal(t, want, got)

	list, err := s.ListAsyncRecipients(ctx)
	require.NoError(t, err)
	require.Equal(t, []invoiceserver.Recipient{
		{ID: alice, CreatedAt: t0, ExpiresAt: t0.Add(48 * time.Hour)},
		{ID: bob, CreatedAt: t0},
	}, list)

	require.NoError(t, s.RemoveAsyncRecipient(ctx, alice))
	require.ErrorIs(t, s.RemoveAsyncRecipient(ctx, alice),
		invoiceserver.ErrUnknownRecipient)
	_, err = s.GetStaticInvoice(ctx, alice, 3)
	require.ErrorIs(t, err, invoiceserver.ErrNoInvoice)
	var n int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM
		static_invoices`).Scan(&n))
	require.Equal(t, 1, n)

	wantBob := testStaticInvoice(bob, 3, 7, t0)
	got, err = s.GetStaticInvoice(ctx, bob, 3)
	require.NoError(t, err)
	require.Equal(t, wantBob, got)

	// Invalid invoices are refused before SQL.
	big := testStaticInvoice(bob, 1, 1, t0)
	big.Invoice = make([]byte, invoiceserver.MaxInvoiceSize+1)
	require.ErrorIs(t, s.PutStaticInvoice(ctx, big), ErrInvalidArgument)
}

// TestListStaticInvoiceSlots lists what is stored per (recipient, slot),
// ordered by recipient and slot, without the invoices' bytes; a removed
// recipient's slots go with it.
func TestListStaticInvoiceSlots(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "holdd.db"))
	require.NoError(t, err)
	defer s.Close()

	t0 := time.Unix(1_700_000_000, 0).UTC()
	alice, bob := []byte("alice"), []byte("bob")
	for _, id := range [][]byte{bob, alice} {
		_, err := s.PutAsyncRecipient(ctx, invoiceserver.Recipient{
			ID: id, CreatedAt: t0}, 10)
		require.NoError(t, err)
	}
	empty, err := s.ListStaticInvoiceSlots(ctx)
	require.NoError(t, err)
	require.Empty(t, empty)

	require.NoError(t, s.PutStaticInvoice(ctx,
		testStaticInvoice(bob, 3, 1, t0)))
	require.NoError(t, s.PutStaticInvoice(ctx,
		testStaticInvoice(bob, 0, 2, t0)))
	require.NoError(t, s.PutStaticInvoice(ctx,
		testStaticInvoice(alice, 7, 3, t0)))

	slots, err := s.ListStaticInvoiceSlots(ctx)
	require.NoError(t, err)
	slot := func(id []byte, n uint16, fill byte) invoiceserver.InvoiceSlot {
		return invoiceserver.InvoiceSlot{RecipientID: id, Slot: n,
			OfferID: [32]byte{fill}, Size: 100,
			ExpiresAt: t0.Add(14 * 24 * time.Hour), StoredAt: t0}
	}
	require.Equal(t, []invoiceserver.InvoiceSlot{slot(alice, 7, 3),
		slot(bob, 0, 2), slot(bob, 3, 1)}, slots)

	require.NoError(t, s.RemoveAsyncRecipient(ctx, bob))
	slots, err = s.ListStaticInvoiceSlots(ctx)
	require.NoError(t, err)
	require.Equal(t, []invoiceserver.InvoiceSlot{slot(alice, 7, 3)}, slots)
}
