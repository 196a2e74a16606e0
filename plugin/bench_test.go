package plugin

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/sirupsen/logrus"
)

// nullStore accepts every write and keeps nothing, so benchmarks measure
// the engine rather than a store.
type nullStore struct{}

func (nullStore) InsertHeld(_ context.Context, h HeldHTLC) (
	HeldHTLC, bool, error) {

	return h, true, nil
}

func (nullStore) LookupHTLC(context.Context, CircuitKey, lntypes.Hash,
	time.Time) (HTLCLookup, error) {

	return HTLCLookup{}, nil
}

func (nullStore) InsertReleased(_ context.Context, h HeldHTLC,
	_ PendingRelease, _ time.Time) (HeldHTLC, bool, error) {

	h.State = StateResumed
	return h, true, nil
}

func (nullStore) Transition(_ context.Context, key CircuitKey,
	from []HoldState, to HoldState, _ string,
	at time.Time) (HeldHTLC, error) {

	return HeldHTLC{Key: key, State: to, UpdatedAt: at}, nil
}

func (nullStore) ListHTLCs(context.Context, ListFilter) (
	[]HeldHTLC, error) {

	return nil, nil
}

func (nullStore) PutPendingRelease(context.Context, PendingRelease) error {
	return nil
}

func (nullStore) PrunePendingReleases(context.Context, time.Time) (int64,
	error) {

	return 0, nil
}

type nullResolver struct{}

func (nullResolver) Resume(context.Context, CircuitKey) error { return nil }
func (nullResolver) Fail(context.Context, CircuitKey) error   { return nil }

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

// durableEngine returns an uncapped engine on a real store in a temporary
// directory, with fail-back margin 10.
func durableEngine(b *testing.B, blocks *fakeBlocks) *Engine {
	b.Helper()
	st, err := OpenTestStore(filepath.Join(b.TempDir(), "holdd.db"))
	if err != nil {
		b.Fatal(err)
	}
	p := DefaultPolicy()
	p.MaxHeldPerPeer, p.MaxHeldTotal = 0, 0
	p.FailbackMargin = 10
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	logger.SetLevel(logrus.WarnLevel)
	e, err := New(Config{
		Policy:   p,
		Store:    st,
		Resolver: nullResolver{},
		Peers:    fakePeers{},
		Blocks:   blocks,
		Clock:    clock.NewTestClock(testStart),
		Logger:   logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = e.Stop()
		_ = st.Close()
	})
	return e
}

// holdConcurrently makes HTLCs [from, to) held through e from writers
// goroutines at once, as the interceptor does: it decides every HTLC in a
// goroutine of its own.
func holdConcurrently(b *testing.B, e *Engine, writers int, from, to uint64) {
	var (
		next atomic.Uint64
		wg   sync.WaitGroup
	)
	next.Store(from)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= to {
					return
				}
				h := flagged(key(i%100+1, i), hashOf(byte(i)),
					10_000)
				d := e.Intercept(context.Background(), h)
				if d.Action != ActionHold {
					b.Errorf("hold %d: %v", i, d)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkHoldDurable measures holds through the engine onto the real
// store (one fsynced insert each, shared between concurrent holds by the
// store's group commit), with writers HTLCs arriving at once.
func BenchmarkHoldDurable(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			e := durableEngine(b, newFakeBlocks(startHeight))
			b.ReportAllocs()
			b.ResetTimer()
			holdConcurrently(b, e, writers, 0, uint64(b.N))
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(),
				"holds/s")
		})
	}
}

// BenchmarkFailBackBurst measures how fast one block fails back b.N held
// HTLCs that all reached their fail-back height with it, onto the real
// store.
func BenchmarkFailBackBurst(b *testing.B) {
	blocks := newFakeBlocks(startHeight)
	e := durableEngine(b, blocks)
	holdConcurrently(b, e, 64, 0, uint64(b.N))
	b.ResetTimer()
	blocks.ch <- startHeight + 90
	for e.Stats().HeldCount > 0 {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "failbacks/s")
}

// BenchmarkBlockNothingDue measures what a new block costs under the
// engine lock when no held HTLC reached its fail-back height: the common
// case, run for every block and (for the hold deadline) every tick.
func BenchmarkBlockNothingDue(b *testing.B) {
	for _, n := range heldSizes[1:] {
		b.Run(fmt.Sprintf("held=%d", n), func(b *testing.B) {
			e := benchEngine(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				e.failDue(e.byFailback, FailExpiry,
					func(ent *entry) bool {
						return ent.failbackHeight <=
							startHeight
					})
			}
		})
	}
}

// TestStore is the real SQLite store as these tests use it. Package store
// imports plugin, so a test inside plugin cannot import store; the external
// test file realstore_test.go sets OpenTestStore instead.
type TestStore interface {
	Store
	Close() error
}

// OpenTestStore opens a real store at path; set by realstore_test.go.
var OpenTestStore func(path string) (TestStore, error)
