// Package workqueue runs jobs handed over by a goroutine that must never
// wait (a transport's read loop) on a few workers of their own, behind a
// bounded buffer. A job that finds the buffer full is dropped and
// counted: network input is hostile until proven otherwise, and a queue
// without a bound is memory an attacker can fill.
package workqueue

import (
	"context"
	"sync"
	"sync/atomic"
)

// Queue hands items to Handle on Workers goroutines, in arrival order
// when there is one worker.
type Queue[T any] struct {
	ch      chan T
	handle  func(ctx context.Context, item T)
	workers int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	startOnce sync.Once
	dropped   atomic.Uint64
}

// New returns a stopped queue with room for depth waiting items (at least
// 1) and workers goroutines (at least 1) running handle.
func New[T any](depth, workers int,
	handle func(ctx context.Context, item T)) *Queue[T] {

	ctx, cancel := context.WithCancel(context.Background())

	return &Queue[T]{
		ch:      make(chan T, max(depth, 1)),
		handle:  handle,
		workers: max(workers, 1),
		ctx:     ctx,
		cancel:  cancel,
	}
}

// Start starts the workers. Later calls do nothing.
func (q *Queue[T]) Start() {
	q.startOnce.Do(func() {
		for range q.workers {
			q.wg.Add(1)
			go q.work()
		}
	})
}

// Stop cancels the context handed to running jobs and waits for the
// workers; items still waiting are dropped, not counted. Push after Stop
// drops.
func (q *Queue[T]) Stop() {
	q.cancel()
	q.startOnce.Do(func() {})
	q.wg.Wait()
}

// Push queues item without waiting. It returns false, and counts the
// item as dropped, when the queue is full or stopped.
func (q *Queue[T]) Push(item T) bool {
	if q.ctx.Err() != nil {
		q.dropped.Add(1)
		return false
	}
	select {
	case q.ch <- item:
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// Dropped counts the items Push refused.
func (q *Queue[T]) Dropped() uint64 {
	return q.dropped.Load()
}

// Len is how many items wait.
func (q *Queue[T]) Len() int {
	return len(q.ch)
}

func (q *Queue[T]) work() {
	defer q.wg.Done()
	for {
		// Stop wins over a waiting item.
		if q.ctx.Err() != nil {
			return
		}
		select {
		case item := <-q.ch:
			q.handle(q.ctx, item)
		case <-q.ctx.Done():
			return
		}
	}
}
