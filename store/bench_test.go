package store

import (
	"context"
	"database/sql"
	"fmt"
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

// BenchmarkInsertHeld measures durable (fsynced) inserts.
func BenchmarkInsertHeld(b *testing.B) {
	ctx := context.Background()
	s := newTestStore(b)

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := plugin.CircuitKey{ChanID: 1, HtlcID: uint64(i)}
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
		key := plugin.CircuitKey{ChanID: 1, HtlcID: uint64(i)}
		_, _, err := s.InsertHeld(ctx, testHTLC(key, t0))
		require.NoError(b, err)
	}

	at := t0.Add(time.Second)
	from := []plugin.HoldState{plugin.StateHeld}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := plugin.CircuitKey{ChanID: 1, HtlcID: uint64(i)}
		_, err := s.Transition(ctx, key, from, plugin.StateReleased, "onion",
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
						key := plugin.CircuitKey{ChanID: 1, HtlcID: i}
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

// floodMode is how BenchmarkHoldLatencyMailboxFlood's mailbox writes reach
// the store.
type floodMode int

const (
	// floodNone: no mailbox writes.
	floodNone floodMode = iota

	// floodUnbatched: every stored message is a transaction of its own
	// on the shared connection, as before the mailbox had its own group
	// commit.
	floodUnbatched

	// floodGrouped: PutMailboxMessage, through the mailbox's group
	// commit.
	floodGrouped
)

// floodWriters is how many goroutines store messages at once: the mailbox
// intake's workers plus the drains' claims and deletes.
const floodWriters = 16

// BenchmarkHoldLatencyMailboxFlood measures the latency of durable hold
// writes (InsertHeld, one at a time, as a lone HTLC arriving would) while
// floodWriters goroutines store onion messages for 64 recipients as fast as
// the store takes them. It reports the hold writes' p50 and p99 and the
// mailbox writes per second achieved meanwhile.
func BenchmarkHoldLatencyMailboxFlood(b *testing.B) {
	for _, mode := range []struct {
		name string
		mode floodMode
	}{
		{"flood=none", floodNone},
		{"flood=unbatched", floodUnbatched},
		{"flood=grouped", floodGrouped},
	} {
		b.Run(mode.name, func(b *testing.B) {
			benchHoldLatency(b, mode.mode)
		})
	}
}

func benchHoldLatency(b *testing.B, mode floodMode) {
	ctx := context.Background()
	s := newTestStore(b)
	rcpts := make([]route.Vertex, 64)
	for i := range rcpts {
		rcpts[i] = mbPeer(byte(i))
		_, _, err := s.RegisterMailboxRecipient(ctx, rcpts[i], t0)
		require.NoError(b, err)
	}
	lim := mailbox.StoreLimits{RecipientCount: 100, TotalCount: 100_000}
	recv := t0.UnixNano()
	put := func(m mailbox.StoredMessage) error {
		if mode == floodGrouped {
			_, err := s.PutMailboxMessage(ctx, m, false, lim)
			return err
		}
		return s.inTx(ctx, func(tx *sql.Tx) error {
			_, err := putMailboxMessage(ctx, tx, m, recv, false,
				lim)
			return err
		})
	}

	var (
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		stored  atomic.Uint64
		started = make(chan struct{}, floodWriters)
	)
	if mode != floodNone {
		for w := range floodWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r := rcpts[(w*7+i)%len(rcpts)]
					m := mbMsg(r, byte(i), 1366, t0)
					if err := put(m); err != nil {
						b.Errorf("store message: %v", err)
						return
					}
					if stored.Add(1) == floodWriters {
						close(started)
					}
				}
			}()
		}
		<-started
	}

	lat := make([]time.Duration, 0, b.N)
	storedBefore := stored.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := plugin.CircuitKey{ChanID: 1, HtlcID: uint64(i)}
		start := time.Now()
		_, ok, err := s.InsertHeld(ctx, testHTLC(key, t0))
		lat = append(lat, time.Since(start))
		if err != nil || !ok {
			b.Fatalf("insert %v: %v %v", key, ok, err)
		}
	}
	b.StopTimer()
	elapsed := b.Elapsed()
	storedDuring := stored.Load() - storedBefore
	close(stop)
	wg.Wait()

	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := min(len(lat)-1, int(p*float64(len(lat))))
		return float64(lat[i].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
	if mode != floodNone {
		b.ReportMetric(float64(storedDuring)/elapsed.Seconds(),
			"mailbox-writes/s")
	}
}

// BenchmarkMailboxFlood measures what the mailbox writes of
// BenchmarkHoldLatencyMailboxFlood achieve alone: floodWriters goroutines
// storing messages, each in a transaction of its own or through the
// mailbox's group commit.
func BenchmarkMailboxFlood(b *testing.B) {
	for _, mode := range []struct {
		name string
		mode floodMode
	}{
		{"flood=unbatched", floodUnbatched},
		{"flood=grouped", floodGrouped},
	} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			s := newTestStore(b)
			rcpts := make([]route.Vertex, 64)
			for i := range rcpts {
				rcpts[i] = mbPeer(byte(i))
				_, _, err := s.RegisterMailboxRecipient(ctx,
					rcpts[i], t0)
				require.NoError(b, err)
			}
			lim := mailbox.StoreLimits{RecipientCount: 100,
				TotalCount: 100_000}
			recv := t0.UnixNano()
			var next atomic.Uint64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range floodWriters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= uint64(b.N) {
							return
						}
						m := mbMsg(rcpts[i%64], byte(i), 1366,
							t0)
						var err error
						if mode.mode == floodGrouped {
							_, err = s.PutMailboxMessage(
								ctx, m, false, lim)
						} else {
							err = s.inTx(ctx, func(
								tx *sql.Tx) error {

								_, err := putMailboxMessage(
									ctx, tx, m, recv,
									false, lim)
								return err
							})
						}
						if err != nil {
							b.Errorf("store: %v", err)
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
