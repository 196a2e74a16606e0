package store

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

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
				MailboxLimits{})
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
		_, _, err := s.InsertHeld(ctx, testHTLC(CircuitKey{ChanID: 1,
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
	const n = 2*expireChunk + 7

	ctx := context.Background()
	s := newTestStore(t)
	rcpt := mbPeer(1)
	registerTest(t, s, rcpt)
	for i := range n {
		_, err := s.PutMailboxMessage(ctx, mbMsg(rcpt, byte(i), 10, t0),
			false, MailboxLimits{})
		require.NoError(t, err)
	}
	late, err := s.PutMailboxMessage(ctx,
		mbMsg(rcpt, 0xff, 10, t0.Add(time.Hour)), false,
		MailboxLimits{})
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
			false, MailboxLimits{})
		done <- err
	}()
	require.Eventually(t, func() bool {
		return turnWaiting(s) == 1 || connWaits(s) > waitsBefore
	}, 10*time.Second, time.Millisecond)
	go func() {
		_, _, err := s.InsertHeld(ctx, testHTLC(CircuitKey{ChanID: 1,
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
