package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/holdd/holdd/invoiceserver"
)

// The store implements the static invoice server's Store.
var (
	_ invoiceserver.Store      = (*Store)(nil)
	_ invoiceserver.SlotLister = (*Store)(nil)
)

// PutAsyncRecipient adds a recipient, or updates the expiry of one already
// registered (its created_at stays). A new recipient beyond maxRecipients
// fails with invoiceserver.ErrTooManyRecipients and nothing is written.
func (s *Store) PutAsyncRecipient(ctx context.Context,
	r invoiceserver.Recipient,
	maxRecipients int) (invoiceserver.Recipient, error) {

	if len(r.ID) == 0 || len(r.ID) > invoiceserver.MaxRecipientIDLen {
		return invoiceserver.Recipient{}, fmt.Errorf("%w: %w",
			ErrInvalidArgument, invoiceserver.ErrInvalidRecipientID)
	}
	if r.CreatedAt.IsZero() {
		return invoiceserver.Recipient{}, fmt.Errorf("%w: zero "+
			"CreatedAt", ErrInvalidArgument)
	}
	created, err := timeNanos(r.CreatedAt, "CreatedAt")
	if err != nil {
		return invoiceserver.Recipient{}, err
	}
	expires, err := timeNanos(r.ExpiresAt, "ExpiresAt")
	if err != nil {
		return invoiceserver.Recipient{}, err
	}
	var createdOut int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// One statement: insert under the count guard, or update an
		// existing row's expiry.
		res, err := tx.ExecContext(ctx, `INSERT INTO async_recipients
			(id, created_at, expires_at)
			SELECT ?, ?, ? WHERE (SELECT COUNT(*) FROM
			async_recipients) < ? OR EXISTS (SELECT 1 FROM
			async_recipients WHERE id = ?)
			ON CONFLICT (id) DO UPDATE SET
			expires_at = excluded.expires_at`,
			r.ID, created, expires, maxRecipients, r.ID)
		if err != nil {
			return fmt.Errorf("store async recipient: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store async recipient: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: %d registered already",
				invoiceserver.ErrTooManyRecipients,
				maxRecipients)
		}
		return tx.QueryRowContext(ctx, `SELECT created_at FROM
			async_recipients WHERE id = ?`, r.ID).Scan(&createdOut)
	})
	if err != nil {
		return invoiceserver.Recipient{}, err
	}
	return invoiceserver.Recipient{
		ID:        append([]byte(nil), r.ID...),
		CreatedAt: nanosTime(createdOut),
		ExpiresAt: nanosTime(expires),
	}, nil
}

// GetAsyncRecipient returns a recipient or invoiceserver.ErrUnknownRecipient.
func (s *Store) GetAsyncRecipient(ctx context.Context,
	id []byte) (invoiceserver.Recipient, error) {

	var created, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT created_at, expires_at FROM
		async_recipients WHERE id = ?`, id).Scan(&created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return invoiceserver.Recipient{}, invoiceserver.ErrUnknownRecipient
	}
	if err != nil {
		return invoiceserver.Recipient{}, fmt.Errorf("read async "+
			"recipient: %w", err)
	}
	return invoiceserver.Recipient{
		ID:        append([]byte(nil), id...),
		CreatedAt: nanosTime(created),
		ExpiresAt: nanosTime(expires),
	}, nil
}

// RemoveAsyncRecipient removes a recipient and, by the foreign key's
// cascade, its static invoices.
func (s *Store) RemoveAsyncRecipient(ctx context.Context, id []byte) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM async_recipients
		WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("remove async recipient: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("remove async recipient: %w", err)
	}
	if n == 0 {
		return invoiceserver.ErrUnknownRecipient
	}
	return nil
}

// ListAsyncRecipients returns every recipient, ordered by id.
func (s *Store) ListAsyncRecipients(
	ctx context.Context) ([]invoiceserver.Recipient, error) {

	rows, err := s.db.QueryContext(ctx, `SELECT id, created_at,
		expires_at FROM async_recipients ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list async recipients: %w", err)
	}
	defer rows.Close()
	var out []invoiceserver.Recipient
	for rows.Next() {
		var (
			r                invoiceserver.Recipient
			created, expires int64
		)
		if err := rows.Scan(&r.ID, &created, &expires); err != nil {
			return nil, err
		}
		r.CreatedAt, r.ExpiresAt = nanosTime(created), nanosTime(expires)
		out = append(out, r)
	}
	return out, rows.Err()
}

// PutStaticInvoice stores a static invoice for (recipient, slot), replacing
// the one there in a single upsert. It fails with
// invoiceserver.ErrUnknownRecipient when the recipient is not registered.
func (s *Store) PutStaticInvoice(ctx context.Context,
	inv invoiceserver.StaticInvoice) error {

	if len(inv.Invoice) == 0 ||
		len(inv.Invoice) > invoiceserver.MaxInvoiceSize ||
		len(inv.ForwardPath) == 0 {

		return fmt.Errorf("%w: static invoice of %d bytes, forward "+
			"path of %d", ErrInvalidArgument, len(inv.Invoice),
			len(inv.ForwardPath))
	}
	stored, err := timeNanos(inv.StoredAt, "StoredAt")
	if err != nil {
		return err
	}
	// Only registered recipients: the insert selects nothing for an
	// unknown one, so no foreign-key error has to be told apart.
	res, err := s.db.ExecContext(ctx, `INSERT INTO static_invoices
		(recipient_id, slot, invoice, offer_id, forward_path,
		expires_at, stored_at)
		SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM
		async_recipients WHERE id = ?)
		ON CONFLICT (recipient_id, slot) DO UPDATE SET
		invoice = excluded.invoice, offer_id = excluded.offer_id,
		forward_path = excluded.forward_path,
		expires_at = excluded.expires_at,
		stored_at = excluded.stored_at`,
		inv.RecipientID, int64(inv.Slot), inv.Invoice, inv.OfferID[:],
		inv.ForwardPath, unixSeconds(inv.ExpiresAt), stored,
		inv.RecipientID)
	if err != nil {
		return fmt.Errorf("store static invoice: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store static invoice: %w", err)
	}
	if n == 0 {
		return invoiceserver.ErrUnknownRecipient
	}
	return nil
}

// GetStaticInvoice returns the static invoice of (recipient, slot), with
// its recipient's expiry, or invoiceserver.ErrNoInvoice.
func (s *Store) GetStaticInvoice(ctx context.Context, recipientID []byte,
	slot uint16) (invoiceserver.StaticInvoice, error) {

	var (
		inv                         invoiceserver.StaticInvoice
		offerID                     []byte
		expires, stored, recipientE int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT i.invoice, i.offer_id,
		i.forward_path, i.expires_at, i.stored_at, r.expires_at
		FROM static_invoices i JOIN async_recipients r
		ON r.id = i.recipient_id
		WHERE i.recipient_id = ? AND i.slot = ?`,
		recipientID, int64(slot)).Scan(&inv.Invoice, &offerID,
		&inv.ForwardPath, &expires, &stored, &recipientE)
	if errors.Is(err, sql.ErrNoRows) {
		return invoiceserver.StaticInvoice{}, invoiceserver.ErrNoInvoice
	}
	if err != nil {
		return invoiceserver.StaticInvoice{}, fmt.Errorf("read static "+
			"invoice: %w", err)
	}
	if len(offerID) != 32 {
		return invoiceserver.StaticInvoice{}, fmt.Errorf("offer id of "+
			"%d bytes", len(offerID))
	}
	inv.RecipientID = append([]byte(nil), recipientID...)
	inv.Slot = slot
	copy(inv.OfferID[:], offerID)
	inv.ExpiresAt = time.Unix(expires, 0).UTC()
	inv.StoredAt = nanosTime(stored)
	inv.RecipientExpiresAt = nanosTime(recipientE)
	return inv, nil
}

// ListStaticInvoiceSlots returns what is stored for every (recipient,
// slot), without the invoices' bytes, ordered by recipient and slot.
func (s *Store) ListStaticInvoiceSlots(
	ctx context.Context) ([]invoiceserver.InvoiceSlot, error) {

	rows, err := s.db.QueryContext(ctx, `SELECT recipient_id, slot,
		offer_id, length(invoice), expires_at, stored_at
		FROM static_invoices ORDER BY recipient_id, slot`)
	if err != nil {
		return nil, fmt.Errorf("list static invoices: %w", err)
	}
	defer rows.Close()
	var out []invoiceserver.InvoiceSlot
	for rows.Next() {
		var (
			sl              invoiceserver.InvoiceSlot
			slot            int64
			offerID         []byte
			expires, stored int64
		)
		if err := rows.Scan(&sl.RecipientID, &slot, &offerID, &sl.Size,
			&expires, &stored); err != nil {

			return nil, err
		}
		if len(offerID) != 32 || slot < 0 || slot > math.MaxUint16 {
			return nil, fmt.Errorf("static invoice row: offer id of "+
				"%d bytes, slot %d", len(offerID), slot)
		}
		sl.Slot = uint16(slot)
		copy(sl.OfferID[:], offerID)
		sl.ExpiresAt = time.Unix(expires, 0).UTC()
		sl.StoredAt = nanosTime(stored)
		out = append(out, sl)
	}
	return out, rows.Err()
}

// unixSeconds is t in Unix seconds, clamped to an int64.
func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return math.MaxInt64
	}
	return t.Unix()
}
