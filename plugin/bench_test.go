package plugin

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/sirupsen/logrus"
)

// nullStore accepts every write and keeps nothing, so benchmarks measure
// the engine rather than a store.
type nullStore struct{}

func (nullStore) InsertHeld(_ context.Context, h store.HeldHTLC) (
	store.HeldHTLC, bool, error) {

	return h, true, nil
}

func (nullStore) GetHeld(context.Context, store.CircuitKey) (store.HeldHTLC,
	error) {

	return store.HeldHTLC{}, store.ErrNotFound
}

func (nullStore) Transition(_ context.Context, key store.CircuitKey,
	from []store.HoldState, to store.HoldState, _ string,
	at time.Time) (store.HeldHTLC, error) {

	return store.HeldHTLC{Key: key, State: to, UpdatedAt: at}, nil
}

func (nullStore) ListHTLCs(context.Context, store.ListFilter) (
	[]store.HeldHTLC, error) {

	return nil, nil
}

func (nullStore) PutPendingRelease(context.Context, store.PendingRelease) error {
	return nil
}

func (nullStore) TakePendingRelease(context.Context, store.CircuitKey,
	[32]byte, time.Time) (store.PendingRelease, bool, error) {

	return store.PendingRelease{}, false, nil
}

func (nullStore) PrunePendingReleases(context.Context, time.Time) (int64,
	error) {

	return 0, nil
}

type nullResolver struct{}

func (nullResolver) Resume(context.Context, store.CircuitKey) error { return nil }
func (nullResolver) Fail(context.Context, store.CircuitKey) error   { return nil }

// benchEngine returns an uncapped engine holding n HTLCs on 100 channels.
func benchEngine(b *testing.B, n int) *Engine {
	b.Helper()
	p := DefaultPolicy()
	p.MaxHeldPerPeer, p.MaxHeldTotal = 0, 0
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	e, err := New(Config{
		Policy:   p,
		Store:    nullStore{},
		Resolver: nullResolver{},
		Peers:    fakePeers{},
		Blocks:   newFakeBlocks(startHeight),
		Clock:    clock.NewTestClock(testStart),
		Logger:   logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Stop() })
	logger.SetLevel(logrus.WarnLevel)
	for i := range n {
		h := flagged(key(uint64(i%100)+1, uint64(i)), hashOf(byte(i)),
			10_000)
		if d := e.Intercept(context.Background(), h); d.Action != ActionHold {
			b.Fatalf("preload %d: %v", i, d)
		}
	}
	return e
}

var heldSizes = []int{0, 10_000, 100_000}

func BenchmarkInterceptPassThrough(b *testing.B) {
	for _, n := range heldSizes {
		b.Run(fmt.Sprintf("held=%d", n), func(b *testing.B) {
			e := benchEngine(b, n)
			h := flagged(key(1, 1<<40), hashOf(1), 10_000)
			h.CustomRecords = nil
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				e.Intercept(ctx, h)
			}
		})
	}
}

func BenchmarkInterceptHold(b *testing.B) {
	for _, n := range heldSizes {
		b.Run(fmt.Sprintf("held=%d", n), func(b *testing.B) {
			e := benchEngine(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h := flagged(key(7, uint64(1<<40+i)), hashOf(2),
					10_000)
				e.Intercept(ctx, h)
			}
		})
	}
}

func BenchmarkReleaseMatch(b *testing.B) {
	for _, n := range heldSizes {
		if n == 0 {
			continue
		}
		b.Run(fmt.Sprintf("held=%d", n), func(b *testing.B) {
			e := benchEngine(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// Every release names a held HTLC; once all
				// are released the rest are duplicates, which
				// still walk the match path.
				j := i % n
				_, err := e.Release(ctx,
					key(uint64(j%100)+1, uint64(j)),
					hashOf(byte(j)), "bench")
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemoryPerHeld reports the engine's heap per held HTLC. It
// measures once, whatever b.N: the quantity is a size, not a rate.
func BenchmarkMemoryPerHeld(b *testing.B) {
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e := benchEngine(b, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n,
		"B/held")
	runtime.KeepAlive(e)
	_ = e.Stop()
}
