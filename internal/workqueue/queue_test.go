package workqueue

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const waitTimeout = 10 * time.Second

// TestPushNeverBlocks: with the only worker stuck, Push still returns at
// once; the buffer takes depth items and the rest are dropped and
// counted; once the worker is free it handles the buffered items in
// order.
func TestPushNeverBlocks(t *testing.T) {
	t.Parallel()

	release := make(chan struct{})
	var (
		mu   sync.Mutex
		done []int
	)
	handled := make(chan struct{}, 16)
	q := New(3, 1, func(ctx context.Context, i int) {
		if i == 0 {
			<-release
		}
		mu.Lock()
		done = append(done, i)
		mu.Unlock()
		handled <- struct{}{}
	})
	q.Start()
	t.Cleanup(q.Stop)

	require.True(t, q.Push(0))
	// The worker holds item 0; wait until the buffer is empty again.
	require.Eventually(t, func() bool { return q.Len() == 0 },
		waitTimeout, time.Millisecond)

	results := make(chan []bool, 1)
	go func() {
		var r []bool
		for i := 1; i <= 5; i++ {
			r = append(r, q.Push(i))
		}
		results <- r
	}()
	select {
	case r := <-results:
		require.Equal(t, []bool{true, true, true, false, false}, r)
	case <-time.After(waitTimeout):
		t.Fatal("Push blocked behind a stuck worker")
	}
	require.EqualValues(t, 2, q.Dropped())
	require.Equal(t, 3, q.Len())

	close(release)
	for range 4 {
		select {
		case <-handled:
		case <-time.After(waitTimeout):
			t.Fatal("queued items not handled")
		}
	}
	mu.Lock()
	require.Equal(t, []int{0, 1, 2, 3}, done)
	mu.Unlock()
}

// TestStopCancelsJobsAndDrops: Stop cancels a running job's context,
// waits for it, and Push afterwards drops.
func TestStopCancelsJobsAndDrops(t *testing.T) {
	t.Parallel()

	started := make(chan struct{})
	q := New(1, 2, func(ctx context.Context, _ int) {
		close(started)
		<-ctx.Done()
	})
	q.Start()
	require.True(t, q.Push(1))
	<-started

	stopped := make(chan struct{})
	go func() {
		q.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(waitTimeout):
		t.Fatal("Stop did not cancel the running job")
	}
	require.False(t, q.Push(2))
	require.EqualValues(t, 1, q.Dropped())
}

// TestStopBeforeStart returns at once.
func TestStopBeforeStart(t *testing.T) {
	t.Parallel()

	q := New(1, 1, func(context.Context, int) {})
	q.Stop()
	q.Start()
	require.False(t, q.Push(1))
}
