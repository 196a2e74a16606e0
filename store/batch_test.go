package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/stretchr/testify/require"
)

// queued is how many writes wait for the next batch.
func (g *groupCommit) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// blockGroup starts a write that holds the group commit's batch open until
// the returned function is called, so that the writes started meanwhile
// queue up and share the next batch. The returned channel yields the
// blocking write's result.
func blockGroup(t *testing.T, s *Store) (func(), <-chan error) {
	t.Helper()

	entered := make(chan struct{})
	unblock := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.group.do(context.Background(),
			func(ctx context.Context, tx *sql.Tx) error {
				close(entered)
				<-unblock
				_, err := tx.ExecContext(ctx, "INSERT INTO settings "+
					"(name, value) VALUES ('blocker', x'01')")
				return err
			})
	}()
	<-entered

	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)

	return release, done
}

// waitQueued waits until n writes wait for the next batch.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return s.group.queued() == n },
		5*time.Second, time.Millisecond)
}

func settingExists(t *testing.T, s *Store, name string) bool {
	t.Helper()
	var n int
	require.NoError(t, s.db.QueryRow("SELECT COUNT(*) FROM settings "+
		"WHERE name = ?", name).Scan(&n))
	return n == 1
}

func putSetting(name string) writeFn {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO settings (name, "+
			"value) VALUES (?, x'01')", name)
		return err
	}
}

// TestGroupCommitIsolatesFailures runs writes that share one transaction,
// some of which fail in different ways, and checks that each caller gets
// its own result and that exactly the successful writes are stored.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()

	key := func(i int) plugin.CircuitKey {
		return plugin.CircuitKey{ChanID: 9, HtlcID: uint64(i)}
	}
	// Key 0 is held and key 1 already released before the batch.
	reach(t, s, key(0), plugin.StateHeld, t0)
	reach(t, s, key(1), plugin.StateReleased, t0)

	type write struct {
		name string
		run  func() error
		// stored reports whether the write's effect is in the
		// database afterwards.
		stored func() bool
		want   error
	}
	at := t0.Add(time.Minute)
	stateOf := func(k plugin.CircuitKey) plugin.HoldState {
		h, err := s.GetHeld(ctx, k)
		if errors.Is(err, ErrNotFound) {
			return ""
		}
		require.NoError(t, err)
		return h.State
	}
	writes := []write{{
		name: "insert",
		run: func() error {
			_, ok, err := s.InsertHeld(ctx, testHTLC(key(2), t0))
			if err == nil && !ok {
				err = errors.New("not inserted")
			}
			return err
		},
		stored: func() bool { return stateOf(key(2)) == plugin.StateHeld },
	}, {
		name: "constraint violation",
		run: func() error {
			// secrets.value must not be empty (CHECK).
			return s.group.do(ctx, func(ctx context.Context,
				tx *sql.Tx) error {

				_, err := tx.ExecContext(ctx, "INSERT INTO "+
					"secrets (name, value) VALUES ('x', x'')")
				return err
			})
		},
		stored: func() bool {
			var n int
			require.NoError(t, s.db.QueryRow("SELECT COUNT(*) "+
				"FROM secrets").Scan(&n))
			return n > 0
		},
		want: errors.New("CHECK constraint failed"),
	}, {
		name: "release",
		run: func() error {
			_, err := s.Transition(ctx, key(0),
				[]plugin.HoldState{plugin.StateHeld}, plugin.StateReleased, "onion", at)
			return err
		},
		stored: func() bool { return stateOf(key(0)) == plugin.StateReleased },
	}, {
		name: "wrong source state",
		run: func() error {
			_, err := s.Transition(ctx, key(1),
				[]plugin.HoldState{plugin.StateHeld}, plugin.StateFailed, "expiry", at)
			return err
		},
		stored: func() bool { return stateOf(key(1)) == plugin.StateFailed },
		want:   plugin.ErrInvalidTransition,
	}, {
		name: "write then fail",
		run: func() error {
			// Its insert must be rolled back with it.
			return s.group.do(ctx, func(ctx context.Context,
				tx *sql.Tx) error {

				if err := putSetting("half")(ctx, tx); err != nil {
					return err
				}
				return errors.New("changed my mind")
			})
		},
		stored: func() bool { return settingExists(t, s, "half") },
		want:   errors.New("changed my mind"),
	}, {
		name: "insert after failures",
		run: func() error {
			_, ok, err := s.InsertHeld(ctx, testHTLC(key(3), t0))
			if err == nil && !ok {
				err = errors.New("not inserted")
			}
			return err
		},
		stored: func() bool { return stateOf(key(3)) == plugin.StateHeld },
	}}

	release, blocked := blockGroup(t, s)
	results := make([]chan error, len(writes))
	for i, w := range writes {
		results[i] = make(chan error, 1)
		go func() { results[i] <- w.run() }()
		// In order, so the batch runs them in this order.
		waitQueued(t, s, i+1)
	}
	release()
	require.NoError(t, <-blocked)

	for i, w := range writes {
		err := <-results[i]
		switch {
		case w.want == nil:
			require.NoError(t, err, w.name)
			require.True(t, w.stored(), w.name)

		case errors.Is(w.want, plugin.ErrInvalidTransition):
			require.ErrorIs(t, err, w.want, w.name)
			require.False(t, w.stored(), w.name)

		default:
			require.ErrorContains(t, err, w.want.Error(), w.name)
			require.False(t, w.stored(), w.name)
		}
	}

	// Every committed write left its event, and nothing else.
	for i, n := range []int{2, 2, 1, 1} {
		events, err := s.Events(ctx, key(i))
		require.NoError(t, err)
		require.Len(t, events, n, "key %d", i)
	}
}

// TestGroupCommitRetriesBrokenBatch breaks the shared transaction from
// inside one write: the batch cannot commit, so every write is retried in
// a transaction of its own, and only the breaking one fails.
func TestGroupCommitRetriesBrokenBatch(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()

	var calls [3]atomic.Int32
	fns := []writeFn{
		func(ctx context.Context, tx *sql.Tx) error {
			calls[0].Add(1)
			return putSetting("a")(ctx, tx)
		},
		func(ctx context.Context, tx *sql.Tx) error {
			calls[1].Add(1)
			// Ends the transaction under database/sql's feet: the
			// savepoint release after it, or the commit when
			// alone, fails.
			_, err := tx.ExecContext(ctx, "ROLLBACK")
			return err
		},
		func(ctx context.Context, tx *sql.Tx) error {
			calls[2].Add(1)
			return putSetting("c")(ctx, tx)
		},
	}

	release, blocked := blockGroup(t, s)
	results := make([]chan error, len(fns))
	for i, fn := range fns {
		results[i] = make(chan error, 1)
		go func() { results[i] <- s.group.do(ctx, fn) }()
		waitQueued(t, s, i+1)
	}
	release()
	require.NoError(t, <-blocked)

	require.NoError(t, <-results[0])
	require.Error(t, <-results[1])
	require.NoError(t, <-results[2])
	require.True(t, settingExists(t, s, "a"))
	require.True(t, settingExists(t, s, "c"))

	// The first two ran in the batch, which failed at the second, and
	// again alone; the third ran alone only.
	for i, n := range []int32{2, 2, 1} {
		require.Equal(t, n, calls[i].Load(), "write %d", i)
	}

	// The store still works.
	_, ok, err := s.InsertHeld(ctx, testHTLC(plugin.CircuitKey{ChanID: 1, HtlcID: 1}, t0))
	require.NoError(t, err)
	require.True(t, ok)
}

// TestGroupCommitCancel checks both sides of a cancelled caller: a write
// still queued is withdrawn and never written, and a write already in a
// batch is carried through and reports its real outcome.
func TestGroupCommitCancel(t *testing.T) {
	s := newTestStore(t)

	t.Run("queued write is withdrawn", func(t *testing.T) {
		release, blocked := blockGroup(t, s)

		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() { res <- s.group.do(ctx, putSetting("withdrawn")) }()
		waitQueued(t, s, 1)
		cancel()
		require.ErrorIs(t, <-res, context.Canceled)
		require.Zero(t, s.group.queued())

		release()
		require.NoError(t, <-blocked)
		require.False(t, settingExists(t, s, "withdrawn"))
	})

	t.Run("write in a batch completes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		entered := make(chan struct{})
		res := make(chan error, 1)
		go func() {
			res <- s.group.do(ctx, func(wctx context.Context,
				tx *sql.Tx) error {

				close(entered)
				// The caller gives up while its write runs;
				// the write's own ctx must not end with it.
				<-ctx.Done()
				if err := wctx.Err(); err != nil {
					return err
				}
				return putSetting("completed")(wctx, tx)
			})
		}()
		<-entered
		cancel()
		require.NoError(t, <-res)
		require.True(t, settingExists(t, s, "completed"))
	})
}

// TestGroupCommitConcurrentStress has many goroutines insert and move
// HTLCs at once and checks every record and event log afterwards.
func TestGroupCommitConcurrentStress(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()

	const (
		workers = 32
		each    = 8
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := plugin.CircuitKey{ChanID: uint64(w + 1),
					HtlcID: uint64(i)}
				at := t0.Add(time.Duration(i) * time.Second)
				_, _, err := s.InsertHeld(ctx, testHTLC(key, at))
				if err == nil {
					_, err = s.Transition(ctx, key,
						[]plugin.HoldState{plugin.StateHeld},
						plugin.StateReleased, "onion", at)
				}
				if err == nil && i%2 == 0 {
					_, err = s.Transition(ctx, key,
						[]plugin.HoldState{plugin.StateReleased},
						plugin.StateResumed, "", at)
				}
				if err != nil {
					err = fmt.Errorf("%v: %w", key, err)
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	for w := range workers {
		for i := range each {
			key := plugin.CircuitKey{ChanID: uint64(w + 1), HtlcID: uint64(i)}
			got, err := s.GetHeld(ctx, key)
			require.NoError(t, err)
			want := plugin.StateReleased
			if i%2 == 0 {
				want = plugin.StateResumed
			}
			require.Equal(t, want, got.State, "%v", key)
			require.Equal(t, testHTLC(key, got.HeldAt).PaymentHash,
				got.PaymentHash)
			events, err := s.Events(ctx, key)
			require.NoError(t, err)
			require.Len(t, events, 2+(1-i%2), "%v", key)
		}
	}
}
