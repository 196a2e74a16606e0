package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/holdd/holdd/release"
	"github.com/lightningnetwork/lnd/routing/route"
)

// MaxDeliveryPeers bounds the delivery_peers table. Only peers with a
// channel to lnd are recorded, so the bound is never reached in practice;
// it exists so no input can grow the table without limit.
const MaxDeliveryPeers = 100_000

// PutDeliveryPeer records that peer reads path deliveries, or refreshes the
// record. A new peer beyond MaxDeliveryPeers is refused with
// ErrInvalidArgument and nothing is written.
func (s *Store) PutDeliveryPeer(ctx context.Context, peer route.Vertex,
	now time.Time) (release.DeliveryPeer, error) {

	if now.IsZero() {
		return release.DeliveryPeer{}, fmt.Errorf("%w: zero time",
			ErrInvalidArgument)
	}
	nowNs, err := timeNanos(now, "now")
	if err != nil {
		return release.DeliveryPeer{}, err
	}
	// In the mailbox's group commit, so that a hello takes turns at
	// the connection like every other write, without an fsync of its
	// own. Not the hold group's: hellos come from peers, and a peer's
	// writes must not go before hold writes, which they would share
	// batches and turns with there; a delivery peer is in use as soon
	// as it is in DeliveryPeers' memory, so nothing waits on this write
	// but the hello's own reply.
	var proven int64
	err = s.mailbox.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// One statement: insert, or refresh an existing row; the
		// count guard applies to new rows only.
		res, err := tx.ExecContext(ctx, `INSERT INTO delivery_peers
			(peer, proven_at, refreshed_at)
			SELECT ?, ?, ? WHERE (SELECT COUNT(*) FROM
			delivery_peers) < ? OR EXISTS (SELECT 1 FROM
			delivery_peers WHERE peer = ?)
			ON CONFLICT (peer) DO UPDATE SET
			refreshed_at = excluded.refreshed_at`,
			peer[:], nowNs, nowNs, MaxDeliveryPeers, peer[:])
		if err != nil {
			return fmt.Errorf("store delivery peer: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store delivery peer: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: %d delivery peers recorded "+
				"already", ErrInvalidArgument, MaxDeliveryPeers)
		}
		err = tx.QueryRowContext(ctx, `SELECT proven_at FROM
			delivery_peers WHERE peer = ?`, peer[:]).Scan(&proven)
		if err != nil {
			return fmt.Errorf("read delivery peer: %w", err)
		}

		return nil
	})
	if err != nil {
		return release.DeliveryPeer{}, err
	}

	return release.DeliveryPeer{Peer: peer, ProvenAt: nanosTime(proven),
		RefreshedAt: nanosTime(nowNs)}, nil
}

// ListDeliveryPeers returns every recorded delivery peer.
func (s *Store) ListDeliveryPeers(ctx context.Context) ([]release.DeliveryPeer,
	error) {

	rows, err := s.db.QueryContext(ctx, `SELECT peer, proven_at,
		refreshed_at FROM delivery_peers ORDER BY peer`)
	if err != nil {
		return nil, fmt.Errorf("list delivery peers: %w", err)
	}
	defer rows.Close()
	var out []release.DeliveryPeer
	for rows.Next() {
		var (
			raw             []byte
			proven, refresh int64
		)
		if err := rows.Scan(&raw, &proven, &refresh); err != nil {
			return nil, err
		}
		peer, err := route.NewVertexFromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("delivery peer: %w", err)
		}
		p := release.DeliveryPeer{Peer: peer,
			ProvenAt: nanosTime(proven), RefreshedAt: nanosTime(refresh)}
		out = append(out, p)
	}
	return out, rows.Err()
}
