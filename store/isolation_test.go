package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdd/holdd/mailbox"
	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

// blockMailbox starts a mailbox write that holds its batch, and with it
// the store's connection, open until the returned function is called.
func blockMailbox(t *testing.T, s *Store) (func(), <-chan error) {
	t.Helper()

	entered := make(chan struct{})
	unblock := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.mailbox.do(context.Background(),
			func(ctx context.Context, tx *sql.Tx) error {
				close(entered)
				<-unblock
				return nil
			})
	}()
	<-entered

	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)

	return release, done
}

// connWaits is how many callers have had to wait for the store's one
// connection so far.
func connWaits(s *Store) int64 {
	return s.db.Stats().WaitCount
}

// turnWaiting is how many batches wait for their turn at the connection.
func turnWaiting(s *Store) int {
	if s.group.turn == nil {
		return 0
	}
	all, _ := s.group.turn.waiters()
	return all
}

// TestMailboxFloodDelaysHoldOneBatch floods the mailbox with writes while
// a mailbox batch holds the connection, then makes a hold write. The hold
// write must commit right after that one batch, before any of the flood,
// and the flood must share transactions (one fsync per batch), not take
// one each. The order is read from SQLite itself: temporary triggers log
// every stored message and held HTLC in the order the inserts ran, which
// on the one connection is the order of the transactions.
func TestMailboxFloodDelaysHoldOneBatch(t *testing.T) {
	const flood = 300

	ctx := context.Background()
	s := newTestStore(t)
	rcpt := mbPeer(1)
	registerTest(t, s, rcpt)
	for _, q := range []string{
		`CREATE TEMP TABLE write_order (seq INTEGER PRIMARY KEY
			AUTOINCREMENT, what TEXT NOT NULL)`,
		`CREATE TEMP TRIGGER log_mailbox AFTER INSERT ON
			main.mailbox_messages BEGIN INSERT INTO
			write_order (what) VALUES ('mailbox'); END`,
		`CREATE TEMP TRIGGER log_hold AFTER INSERT ON main.held_htlcs
			BEGIN INSERT INTO write_order (what) VALUES ('hold');
			END`,
	} {
		_, err := s.db.ExecContext(ctx, q)
		require.NoError(t, err)
	}

	release, blockerDone := blockMailbox(t, s)
	batchesBefore := s.mailbox.batches.Load()
	waitsBefore := connWaits(s)

	var wg sync.WaitGroup
	errs := make(chan error, flood+1)
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := mbMsg(rcpt, byte(i), 100, t0)
			_, err := s.PutMailboxMessage(ctx, m, false,
				mailbox.StoreLimits{})
			errs <- err
		}()
	}
	// Every flood write waits: in the mailbox's queue, or (were it
	// written on its own) for the connection.
	require.Eventually(t, func() bool {
		return s.mailbox.queued()+int(connWaits(s)-waitsBefore) ==
			flood
	}, 10*time.Second, time.Millisecond)

	// The hold write waits for the connection too.
	waitsFlooded := connWaits(s)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, err := s.InsertHeld(ctx, testHTLC(plugin.CircuitKey{ChanID: 1,
			HtlcID: 1}, t0))
		errs <- err
	}()
	require.Eventually(t, func() bool {
		return connWaits(s) == waitsFlooded+1 || turnWaiting(s) == 1
	}, 10*time.Second, time.Millisecond)

	release()
	require.NoError(t, <-blockerDone)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	rows, err := s.db.QueryContext(ctx,
		"SELECT what FROM write_order ORDER BY seq")
	require.NoError(t, err)
	var order []string
	for rows.Next() {
		var w string
		require.NoError(t, rows.Scan(&w))
		order = append(order, w)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Len(t, order, flood+1)
	hold := -1
	for i, w := range order {
		if w == "hold" {
			hold = i
		}
	}
	require.Zero(t, hold, "mailbox writes committed before the hold "+
		"write")

	// After the blocker's batch, the flood in full batches.
	require.EqualValues(t, (flood+mailboxMaxBatch-1)/mailboxMaxBatch,
		s.mailbox.batches.Load()-batchesBefore)
}

// TestExpireMailboxMessagesInChunks expires more messages than one chunk
// holds: all go, oldest first, in one transaction per chunk, and the one
// received after the cutoff stays.
func TestExpireMailboxMessagesInChunks(t *testing.T) {
	const n = 2*deleteChunk + 7

	ctx := context.Background()
	s := newTestStore(t)
	rcpt := mbPeer(1)
	registerTest(t, s, rcpt)
	for i := range n {
		_, err := s.PutMailboxMessage(ctx, mbMsg(rcpt, byte(i), 10, t0),
			false, mailbox.StoreLimits{})
		require.NoError(t, err)
	}
	late, err := s.PutMailboxMessage(ctx,
		mbMsg(rcpt, 0xff, 10, t0.Add(time.Hour)), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)

	before := s.mailbox.batches.Load()
	removed, err := s.ExpireMailboxMessages(ctx, t0)
	require.NoError(t, err)
	require.Len(t, removed, n)
	for i := 1; i < n; i++ {
		require.Less(t, removed[i-1].ID, removed[i].ID)
	}
	require.EqualValues(t, 3, s.mailbox.batches.Load()-before)

	left, err := s.NextMailboxMessages(ctx, rcpt, 10)
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, late.ID, left[0].ID)
	checkUsage(t, s)
}

// TestHoldBatchGoesBeforeWaitingMailboxBatch: while a hold batch runs, a
// mailbox write starts waiting for the connection, and then a hold write
// queues behind the running batch. The hold write still commits first:
// the groups take turns at the connection, hold batches first (and a hold
// batch hands its turn straight to the next); database/sql alone gives the
// connection to whoever waited for it.
func TestHoldBatchGoesBeforeWaitingMailboxBatch(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	rcpt := mbPeer(1)
	registerTest(t, s, rcpt)
	for _, q := range []string{
		`CREATE TEMP TABLE write_order (seq INTEGER PRIMARY KEY
			AUTOINCREMENT, what TEXT NOT NULL)`,
		`CREATE TEMP TRIGGER log_mailbox AFTER INSERT ON
			main.mailbox_messages BEGIN INSERT INTO
			write_order (what) VALUES ('mailbox'); END`,
		`CREATE TEMP TRIGGER log_hold AFTER INSERT ON main.held_htlcs
			BEGIN INSERT INTO write_order (what) VALUES ('hold');
			END`,
	} {
		_, err := s.db.ExecContext(ctx, q)
		require.NoError(t, err)
	}

	release, blockerDone := blockGroup(t, s)
	waitsBefore := connWaits(s)
	done := make(chan error, 2)
	go func() {
		_, err := s.PutMailboxMessage(ctx, mbMsg(rcpt, 1, 10, t0),
			false, mailbox.StoreLimits{})
		done <- err
	}()
	require.Eventually(t, func() bool {
		return turnWaiting(s) == 1 || connWaits(s) > waitsBefore
	}, 10*time.Second, time.Millisecond)
	go func() {
		_, _, err := s.InsertHeld(ctx, testHTLC(plugin.CircuitKey{ChanID: 1,
			HtlcID: 1}, t0))
		done <- err
	}()
	waitQueued(t, s, 1)

	release()
	require.NoError(t, <-blockerDone)
	require.NoError(t, <-done)
	require.NoError(t, <-done)

	var order []string
	rows, err := s.db.QueryContext(ctx,
		"SELECT what FROM write_order ORDER BY seq")
	require.NoError(t, err)
	for rows.Next() {
		var w string
		require.NoError(t, rows.Scan(&w))
		order = append(order, w)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Equal(t, []string{"hold", "mailbox"}, order)
}

// TestMailboxBatchRunsDuringHoldLoad keeps hold writes coming faster than
// they commit: a new hold write starts as soon as the one before it runs,
// and each holds its transaction open until the next has queued, so every
// hold batch finds another queued behind it. A mailbox write made
// meanwhile must still commit while the hold load goes on. The load ends
// by itself only once holdLoadBound hold writes have committed after the
// mailbox write began to wait; if it gets that far the mailbox starved.
func TestMailboxBatchRunsDuringHoldLoad(t *testing.T) {
	const holdLoadBound = 100

	ctx := context.Background()
	s := newTestStore(t)
	rcpt := mbPeer(1)
	registerTest(t, s, rcpt)

	var (
		// holds counts the committed hold writes.
		holds atomic.Int64

		// limit is the number of hold writes after which the load
		// ends by itself.
		limit atomic.Int64
	)
	limit.Store(math.MaxInt64)
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return holds.Load() >= limit.Load()
		}
	}

	var wg sync.WaitGroup
	loadErrs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stopped(); i++ {
			entered := make(chan struct{})
			name := fmt.Sprintf("hold-%d", i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.group.do(ctx, func(ctx context.Context,
					tx *sql.Tx) error {

					close(entered)
					// The next hold write queues before
					// this one commits.
					for s.group.queued() == 0 && !stopped() {
						time.Sleep(50 * time.Microsecond)
					}
					return putSetting(name)(ctx, tx)
				})
				if err != nil {
					select {
					case loadErrs <- err:
					default:
					}
					return
				}
				holds.Add(1)
			}()
			// One write at a time joins the queue, so each batch
			// holds one write and always has the next queued.
			<-entered
		}
	}()
	require.Eventually(t, func() bool { return holds.Load() >= 2 },
		10*time.Second, time.Millisecond)

	mailboxDone := make(chan error, 1)
	var holdsAtMailbox atomic.Int64
	go func() {
		_, err := s.PutMailboxMessage(ctx, mbMsg(rcpt, 1, 10, t0),
			false, mailbox.StoreLimits{})
		holdsAtMailbox.Store(holds.Load())
		mailboxDone <- err
	}()
	// Once the mailbox batch waits for its turn (or already ran), the
	// load may commit holdLoadBound more hold writes before it ends
	// by itself.
	require.Eventually(t, func() bool {
		all, urgent := s.group.turn.waiters()
		return all-urgent == 1 || len(mailboxDone) == 1
	}, 10*time.Second, time.Millisecond)
	limit.Store(holds.Load() + holdLoadBound)

	require.NoError(t, <-mailboxDone)
	require.Less(t, holdsAtMailbox.Load(), limit.Load(), "the mailbox "+
		"write waited until the hold load ran out")
	close(stop)
	wg.Wait()
	close(loadErrs)
	for err := range loadErrs {
		require.NoError(t, err)
	}
	require.Greater(t, holds.Load(), holdsAtMailbox.Load(), "no hold "+
		"write committed after the mailbox write")
}

// putMessages stores n messages of size 10 for rcpt and returns their ids.
func putMessages(t *testing.T, s *Store, rcpt route.Vertex, n int) []int64 {
	t.Helper()

	ids := make([]int64, n)
	for i := range n {
		p, err := s.PutMailboxMessage(context.Background(),
			mbMsg(rcpt, byte(i), 10, t0), false, mailbox.StoreLimits{})
		require.NoError(t, err)
		ids[i] = p.ID
	}

	return ids
}

// TestDropClaimedMailboxMessagesInChunks drops more claimed messages than
// one chunk holds: all go, oldest first, in one transaction per chunk, and
// the unclaimed one stays.
func TestDropClaimedMailboxMessagesInChunks(t *testing.T) {
	const n = 2*deleteChunk + 7

	ctx := context.Background()
	s := newTestStore(t)
	rcpt := mbPeer(1)
	registerTest(t, s, rcpt)
	ids := putMessages(t, s, rcpt, n+1)
	unclaimed := ids[n/2]
	_, err := s.db.ExecContext(ctx, `UPDATE mailbox_messages
		SET claimed_at = 1 WHERE id != ?`, unclaimed)
	require.NoError(t, err)

	before := s.mailbox.batches.Load()
	removed, err := s.DropClaimedMailboxMessages(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, s.mailbox.batches.Load()-before)
	require.Len(t, removed, n)
	want := slices.DeleteFunc(slices.Clone(ids), func(id int64) bool {
		return id == unclaimed
	})
	for i, r := range removed {
		require.Equal(t, want[i], r.ID)
		require.Equal(t, mailbox.RemovedMessage{ID: r.ID, Recipient: rcpt,
			Size: 10}, r)
	}

	left, err := s.NextMailboxMessages(ctx, rcpt, 10)
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, unclaimed, left[0].ID)
	checkUsage(t, s)
}

// TestUnregisterMailboxRecipientInChunks unregisters a recipient with
// more messages than one chunk holds: they go oldest first, one
// transaction per chunk, the registration with the last (a chunk of none
// when the messages fill whole chunks), and the other recipient keeps its
// registration and messages.
func TestUnregisterMailboxRecipientInChunks(t *testing.T) {
	tests := []struct {
		name     string
		messages int
		batches  uint64
	}{
		{"none", 0, 1},
		{"part of a chunk", 7, 1},
		{"whole chunks", 2 * deleteChunk, 3},
		{"chunks and a part", deleteChunk + 7, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestStore(t)
			a, b := mbPeer(1), mbPeer(2)
			registerTest(t, s, a, b)
			ids := putMessages(t, s, a, tc.messages)
			other := putMessages(t, s, b, 1)

			before := s.mailbox.batches.Load()
			removed, found, err := s.UnregisterMailboxRecipient(ctx,
				a)
			require.NoError(t, err)
			require.True(t, found)
			require.Equal(t, tc.batches,
				s.mailbox.batches.Load()-before)
			require.Len(t, removed, tc.messages)
			for i, r := range removed {
				require.Equal(t, mailbox.RemovedMessage{ID: ids[i],
					Recipient: a, Size: 10}, r)
			}

			recipients, err := s.ListMailboxRecipients(ctx)
			require.NoError(t, err)
			require.Len(t, recipients, 1)
			require.Equal(t, b, recipients[0].Peer)
			left, err := s.NextMailboxMessages(ctx, b, 10)
			require.NoError(t, err)
			require.Len(t, left, 1)
			require.Equal(t, other[0], left[0].ID)
			checkUsage(t, s)
		})
	}
}

// TestWriteTurnMailboxAfterMaxHoldRun: a mailbox caller waiting for the
// turn lets maxHoldRun hold batches go first, the running one included,
// and then takes the turn before a hold caller that waits with it; after
// the mailbox batch the hold caller goes first again.
func TestWriteTurnMailboxAfterMaxHoldRun(t *testing.T) {
	turn := newWriteTurn()
	turn.take(true)

	got := make(chan string, 2)
	go func() {
		turn.take(false)
		got <- "mailbox"
	}()
	require.Eventually(t, func() bool {
		all, _ := turn.waiters()
		return all == 1
	}, 10*time.Second, time.Millisecond)

	// The running hold batch counts; maxHoldRun-1 more get the turn
	// handed on.
	for range maxHoldRun - 1 {
		require.True(t, turn.handOn())
	}
	require.False(t, turn.handOn())

	go func() {
		turn.take(true)
		got <- "hold"
	}()
	require.Eventually(t, func() bool {
		all, urgent := turn.waiters()
		return all == 2 && urgent == 1
	}, 10*time.Second, time.Millisecond)
	turn.done()
	require.Equal(t, "mailbox", <-got)

	// A second mailbox caller waits behind the hold one now.
	go func() {
		turn.take(false)
		got <- "mailbox"
	}()
	require.Eventually(t, func() bool {
		all, _ := turn.waiters()
		return all == 2
	}, 10*time.Second, time.Millisecond)
	turn.done()
	require.Equal(t, "hold", <-got)
	turn.done()
	require.Equal(t, "mailbox", <-got)
	turn.done()
}
