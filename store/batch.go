package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// defaultMaxBatch bounds how many writes share one transaction, so that a
// burst cannot make one commit, and every caller in it, wait arbitrarily
// long.
const defaultMaxBatch = 128

// mailboxMaxBatch bounds a batch of mailbox writes. It is what a hold write
// may have to wait for when it arrives just after such a batch began, so
// it is smaller than the hold path's: 64 stored messages, with their
// evictions, take a few milliseconds before the one fsync.
const mailboxMaxBatch = 64

// writeFn is one caller's part of a group commit. It runs inside a shared
// transaction and must use the ctx it is given, which is never cancelled:
// an interrupted statement can roll back the whole transaction, and with
// it other callers' writes.
type writeFn func(ctx context.Context, tx *sql.Tx) error

// opState is where a queued write is; groupCommit.mu guards it.
type opState uint8

const (
	// opQueued waits in the queue and may still be withdrawn.
	opQueued opState = iota

	// opLeading was chosen to run the next batch; its caller must.
	opLeading

	// opTaken is in a batch being written; its outcome is on the way.
	opTaken
)

type writeOp struct {
	ctx   context.Context
	fn    writeFn
	state opState

	// err is the op's own outcome, set before wake delivers false.
	err error

	// wake delivers true to the op chosen to lead the next batch and
	// false once the op's batch is committed (or failed).
	wake chan bool
}

// groupCommit coalesces concurrent writes into one transaction, and so one
// fsync, without a goroutine of its own: the first caller to find no batch
// in progress runs one, and when its batch is committed it hands the
// writes queued meanwhile to the oldest of their callers, which runs the
// next. Every caller returns only after the transaction holding its write
// committed, with that write's own result: each write runs under its own
// savepoint, so an error rolls back that write alone, and a transaction
// that fails as a whole is retried one write per transaction.
type groupCommit struct {
	db       *sql.DB
	stmts    *stmts
	maxBatch int

	// turn, shared by the store's groups, lets one batch at a time
	// take the connection, a hold batch before a waiting mailbox one.
	// urgent marks this group's batches as the ones that go first.
	turn   *writeTurn
	urgent bool

	mu    sync.Mutex
	queue []*writeOp

	// busy is set while a batch runs or a leader has been chosen; it
	// clears only with the queue empty.
	busy bool

	// hasTurn is set when the last leader handed its turn (see
	// writeTurn) to the next.
	hasTurn bool

	// batches counts the transactions run for batches, retries of a
	// failed batch's writes included.
	batches atomic.Uint64
}

// do runs fn in a write transaction, possibly shared with other callers'
// writes, and returns fn's result once that transaction committed. If ctx
// ends before the write was taken into a batch, the write is withdrawn and
// ctx's error returned; once taken, the write is carried through and its
// real outcome returned.
func (g *groupCommit) do(ctx context.Context, fn writeFn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, fn: fn, wake: make(chan bool, 1)}

	g.mu.Lock()
	g.queue = append(g.queue, op)
	if !g.busy {
		g.busy = true
		op.state = opLeading
		g.mu.Unlock()
		g.lead()

		return op.err
	}
	g.mu.Unlock()

	select {
	case lead := <-op.wake:
		if lead {
			g.lead()
		}

		return op.err

	case <-ctx.Done():
	}

	g.mu.Lock()
	if op.state == opQueued {
		g.queue = slices.DeleteFunc(g.queue, func(o *writeOp) bool {
			return o == op
		})
		g.mu.Unlock()

		return ctx.Err()
	}
	g.mu.Unlock()

	// Chosen to lead, or already in a batch: see it through.
	if <-op.wake {
		g.lead()
	}

	return op.err
}

// lead runs one batch from the front of the queue, which holds the
// caller's own op, then hands the rest to the next leader.
func (g *groupCommit) lead() {
	g.mu.Lock()
	inherited := g.hasTurn
	g.hasTurn = false
	n := min(len(g.queue), g.maxBatch)
	batch := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	for _, op := range batch {
		op.state = opTaken
	}
	g.mu.Unlock()

	if g.turn != nil && !inherited {
		g.turn.take(g.urgent)
	}
	g.commit(batch)

	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.state = opLeading
		// An urgent group's next batch keeps the turn, so writes
		// that queued behind a running hold batch go before any
		// mailbox batch that waited meanwhile, unless that mailbox
		// batch has already let maxHoldRun hold batches go first.
		g.hasTurn = g.turn != nil && g.urgent && g.turn.handOn()
		next.wake <- true
	} else {
		g.busy = false
	}
	keep := g.hasTurn
	g.mu.Unlock()
	if g.turn != nil && !keep {
		g.turn.done()
	}

	// The leader's own op gets false too; nobody reads it.
	for _, op := range batch {
		op.wake <- false
	}
}

// commit writes batch and sets each op's err.
func (g *groupCommit) commit(batch []*writeOp) {
	g.batches.Add(1)
	if len(batch) == 1 {
		batch[0].err = g.alone(batch[0])
		return
	}
	if err := g.together(batch); err != nil {
		// Nothing of the transaction is durable. Whatever made it
		// fail as a whole, no write may fail because it shared a
		// transaction with another: each gets its own.
		for _, op := range batch {
			op.err = g.alone(op)
		}
	}
}

// alone runs op in a transaction of its own.
func (g *groupCommit) alone(op *writeOp) error {
	ctx := context.WithoutCancel(op.ctx)
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := op.fn(ctx, tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil &&
			!errors.Is(rerr, sql.ErrTxDone) {

			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}

		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}

	return nil
}

// together runs the ops in one transaction, each under a savepoint, and
// commits. It sets each op's err from its fn; a non-nil return means the
// transaction failed as a whole and was not committed.
func (g *groupCommit) together(batch []*writeOp) error {
	ctx := context.Background()
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var savepoint, release, rollbackTo *sql.Stmt
	for _, p := range []struct {
		dst **sql.Stmt
		l   *lazyStmt
	}{
		{&savepoint, &g.stmts.savepoint},
		{&release, &g.stmts.release},
		{&rollbackTo, &g.stmts.rollbackTo},
	} {
		if *p.dst, err = p.l.in(ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
	}

	for _, op := range batch {
		if _, err := savepoint.ExecContext(ctx); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("savepoint: %w", err)
		}
		op.err = op.fn(context.WithoutCancel(op.ctx), tx)
		if op.err != nil {
			// Fails if SQLite already rolled back the whole
			// transaction (e.g. on a full disk).
			if _, err := rollbackTo.ExecContext(ctx); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("rollback to savepoint: %w",
					err)
			}
		}
		if _, err := release.ExecContext(ctx); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}

	return nil
}

// maxHoldRun is how many hold batches a waiting mailbox batch lets go
// first, the one running when it began to wait included. Hold writes that
// keep coming faster than one commit would otherwise keep the turn for as
// long as they come; this way a mailbox batch runs at least once every
// maxHoldRun+1 batches, and a hold write still waits for at most one
// mailbox batch.
const maxHoldRun = 4

// writeTurn lets the store's group commits run their batches one at a
// time, urgent (hold) batches first: when the connection is free and both a
// hold batch and a mailbox batch wait for it, the hold batch takes it, so a
// hold write waits for at most the one mailbox batch already running. A
// hold batch with more hold writes queued behind it hands the turn straight
// to the next hold batch, but only while the mailbox batch waiting, if any,
// has let fewer than maxHoldRun hold batches go first: a mailbox batch
// waits for at most maxHoldRun hold batches, however fast hold writes
// come. database/sql alone would hand the connection to a random waiter.
type writeTurn struct {
	mu     sync.Mutex
	cond   *sync.Cond
	busy   bool
	urgent int

	// holderUrgent is set while the turn is an urgent caller's.
	holderUrgent bool

	// waiting counts every caller waiting for the turn.
	waiting int

	// lax counts the non-urgent (mailbox) callers waiting; the one
	// mailbox group has at most one.
	lax int

	// passed counts the hold batches that held the turn while a
	// non-urgent caller waited, the one running when it began to
	// wait included.
	passed int
}

func newWriteTurn() *writeTurn {
	t := &writeTurn{}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// take waits for the turn. A non-urgent caller lets every urgent one
// waiting go first until maxHoldRun hold batches went first; then the
// urgent ones wait for it.
func (t *writeTurn) take(urgent bool) {
	t.mu.Lock()
	defer t.mu.Unlock()

	t.waiting++
	defer func() { t.waiting-- }()
	if urgent {
		t.urgent++
		for t.busy || (t.lax > 0 && t.passed >= maxHoldRun) {
			t.cond.Wait()
		}
		t.urgent--
		if t.lax > 0 {
			t.passed++
		}
	} else {
		t.lax++
		t.passed = 0
		if t.busy && t.holderUrgent {
			t.passed = 1
		}
		for t.busy || (t.urgent > 0 && t.passed < maxHoldRun) {
			t.cond.Wait()
		}
		t.lax--
	}
	t.busy = true
	t.holderUrgent = urgent
}

// handOn reports whether the urgent caller holding the turn may hand it
// straight to the next urgent batch; if so, that batch holds it. If not,
// the holder must end the turn (done) so the waiting mailbox batch runs.
func (t *writeTurn) handOn() bool {
	t.mu.Lock()
	defer t.mu.Unlock()

	if t.lax == 0 {
		return true
	}
	if t.passed >= maxHoldRun {
		return false
	}
	t.passed++

	return true
}

// done ends the turn.
func (t *writeTurn) done() {
	t.mu.Lock()
	t.busy = false
	t.mu.Unlock()
	t.cond.Broadcast()
}

// waiters is how many callers wait for the turn, and how many of them are
// urgent.
func (t *writeTurn) waiters() (int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waiting, t.urgent
}
