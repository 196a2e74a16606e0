package store

import (
	"context"
	"fmt"
	"time"

	"github.com/holdd/holdd/asyncoffer"
)

// The store implements the async offer client's Store.
var _ asyncoffer.Store = (*Store)(nil)

func unixSecs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func secsTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

// PutAsyncOfferSlot inserts or replaces a slot's row in one statement.
func (s *Store) PutAsyncOfferSlot(ctx context.Context,
	sl asyncoffer.Slot) error {

	served, err := timeNanos(sl.ServedAt, "ServedAt")
	if err != nil {
		return err
	}
	updated, err := timeNanos(sl.UpdatedAt, "UpdatedAt")
	if err != nil {
		return err
	}
	live := 0
	if sl.Live {
		live = 1
	}
	_, err = s.db.ExecContext(ctx, `INSERT OR REPLACE INTO
		async_offer_slots (slot, phase, live, offer, offer_key,
		virtual_key, fake_scid, paths_expires_at, serve_path, invoice,
		invoice_expires_at, served_at, updated_at, server)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(sl.Slot), string(sl.Phase), live, sl.Offer, sl.OfferKey,
		sl.VirtualKey, int64(sl.FakeSCID), unixSecs(sl.PathsExpiresAt),
		sl.ServePath, sl.Invoice, unixSecs(sl.InvoiceExpiresAt),
		served, updated, sl.Server)
	if err != nil {
		return fmt.Errorf("store async offer slot %d: %w", sl.Slot, err)
	}
	return nil
}

// ListAsyncOfferSlots returns every slot, by slot number.
func (s *Store) ListAsyncOfferSlots(ctx context.Context) ([]asyncoffer.Slot,
	error) {

	rows, err := s.db.QueryContext(ctx, `SELECT slot, phase, live, offer,
		offer_key, virtual_key, fake_scid, paths_expires_at,
		serve_path, invoice, invoice_expires_at, served_at, updated_at,
		server
		FROM async_offer_slots ORDER BY slot`)
	if err != nil {
		return nil, fmt.Errorf("list async offer slots: %w", err)
	}
	defer rows.Close()
	var out []asyncoffer.Slot
	for rows.Next() {
		var (
			sl               asyncoffer.Slot
			slot, live, scid int64
			phase            string
			pathsExp, invExp int64
			served, updated  int64
		)
		err := rows.Scan(&slot, &phase, &live, &sl.Offer, &sl.OfferKey,
			&sl.VirtualKey, &scid, &pathsExp, &sl.ServePath,
			&sl.Invoice, &invExp, &served, &updated, &sl.Server)
		if err != nil {
			return nil, fmt.Errorf("list async offer slots: %w", err)
		}
		sl.Slot = uint16(slot)
		sl.Phase = asyncoffer.Phase(phase)
		sl.Live = live == 1
		sl.FakeSCID = uint64(scid)
		sl.PathsExpiresAt = secsTime(pathsExp)
		sl.InvoiceExpiresAt = secsTime(invExp)
		sl.ServedAt = nanosTime(served)
		sl.UpdatedAt = nanosTime(updated)
		out = append(out, sl)
	}
	return out, rows.Err()
}

// InsertForwardedInvoiceRequest records a forwarded invoice_request.
func (s *Store) InsertForwardedInvoiceRequest(ctx context.Context,
	r asyncoffer.ForwardedRequest) error {

	at, err := timeNanos(r.ReceivedAt, "ReceivedAt")
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO forwarded_invoice_requests
		(slot, request, reply_path, received_at) VALUES (?, ?, ?, ?)`,
		int64(r.Slot), r.Request, r.ReplyPath, at)
	if err != nil {
		return fmt.Errorf("store forwarded invoice_request: %w", err)
	}
	return nil
}

// CountForwardedInvoiceRequests returns how many forwarded
// invoice_requests are recorded.
func (s *Store) CountForwardedInvoiceRequests(ctx context.Context) (int,
	error) {

	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM
		forwarded_invoice_requests`).Scan(&n)
	return n, err
}
