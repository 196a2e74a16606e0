package store

import (
	"context"
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
