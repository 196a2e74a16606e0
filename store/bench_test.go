package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkInsertHeld measures durable (fsynced) inserts.
func BenchmarkInsertHeld(b *testing.B) {
	ctx := context.Background()
	s := newTestStore(b)

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := CircuitKey{ChanID: 1, HtlcID: uint64(i)}
		_, ok, err := s.InsertHeld(ctx, testHTLC(key, t0))
		if err != nil || !ok {
			b.Fatalf("insert %v: %v %v", key, ok, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkTransition measures durable held -> released moves.
func BenchmarkTransition(b *testing.B) {
	ctx := context.Background()
	s := newTestStore(b)
	for i := 0; i < b.N; i++ {
		key := CircuitKey{ChanID: 1, HtlcID: uint64(i)}
		_, _, err := s.InsertHeld(ctx, testHTLC(key, t0))
		require.NoError(b, err)
	}

	at := t0.Add(time.Second)
	from := []HoldState{StateHeld}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := CircuitKey{ChanID: 1, HtlcID: uint64(i)}
		_, err := s.Transition(ctx, key, from, StateReleased, "onion",
			at)
		if err != nil {
			b.Fatalf("transition %v: %v", key, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkInsertHeldParallel measures durable inserts from several
// goroutines at once, as the interceptor makes them: it decides every HTLC
// in its own goroutine.
func BenchmarkInsertHeldParallel(b *testing.B) {
	for _, writers := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			ctx := context.Background()
			s := newTestStore(b)
			var next atomic.Uint64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= uint64(b.N) {
							return
						}
						key := CircuitKey{ChanID: 1, HtlcID: i}
						_, ok, err := s.InsertHeld(ctx,
							testHTLC(key, t0))
						if err != nil || !ok {
							b.Errorf("insert %v: %v %v",
								key, ok, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(),
				"writes/s")
		})
	}
}
