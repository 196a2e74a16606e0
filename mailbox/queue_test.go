package mailbox

import (
	"context"
	"sync"
	"testing"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

// TestQueuesUnderConcurrency: many goroutines put messages for several
// recipients, through Handle and through the AsyncForwarder, while the
// recipients come and go. Once all are back, every message went out exactly
// once, each producer's messages in the order it put them, and the counters
// add up exactly.
func TestQueuesUnderConcurrency(t *testing.T) {
	const (
		recipients = 4
		producers  = 3
		perEach    = 40
	)
	ctx := context.Background()
	h := newHarness(t, func(cfg *Config) {
		cfg.Limits.MaxPerRecipient = 10_000
		cfg.Limits.MaxDrains = 2
	})
	var peers []route.Vertex
	for i := range recipients {
		p := nodeID(t, byte(20+i))
		peers = append(peers, p)
		h.register(p)
		// Half are connected at start, half come later.
		if i%2 == 0 {
			h.lnd.setOnline(p, true)
		}
	}
	h.start()
	async := NewAsyncForwarder(h.mb, 0)
	t.Cleanup(async.Stop)

	// A message's packet names its producer and sequence number.
	msgFor := func(producer, seq int) *lnwire.OnionMessage {
		m := testMsg(t, byte(producer), 2)
		m.OnionBlob = []byte{byte(producer), byte(seq)}
		return m
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = make(map[string]int)
	)
	for _, p := range peers {
		for prod := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := range perEach {
					msg := msgFor(prod, seq)
					var o string
					// Producer 0 waits for each message;
					// the others hand theirs over.
					if prod == 0 {
						o = string(h.mb.Handle(ctx, p,
							msg))
					} else {
						o = async.HandleForward(ctx, p,
							msg)
					}
					mu.Lock()
					outcomes[o]++
					mu.Unlock()
				}
			}()
		}
	}
	// Meanwhile the recipients come and go.
	for round := range 3 {
		for i, p := range peers {
			if (i+round)%2 == 0 {
				h.peerEvent(p, false)
			} else {
				h.connect(p)
			}
		}
	}
	wg.Wait()
	for _, p := range peers {
		if !h.mb.isOnline(p) {
			h.connect(p)
		}
	}
	// Each recipient's queue retires once the last message went out;
	// no wake-up was lost on the way.
	total := recipients * producers * perEach
	h.waitSends(total)
	h.waitIdle()

	// Handle waited for each of its messages; the AsyncForwarder handed
	// every other one over.
	mu.Lock()
	require.Equal(t, recipients*(producers-1)*perEach,
		outcomes[OutcomeQueued])
	require.Equal(t, recipients*perEach,
		outcomes[string(OutcomeStored)]+
			outcomes[string(OutcomeForwarded)])
	mu.Unlock()

	sent := h.fwd.sent()
	require.Len(t, sent, total)
	type key struct {
		peer     route.Vertex
		producer byte
	}
	next := make(map[key]byte)
	for _, s := range sent {
		k := key{s.peer, s.onion[0]}
		require.Equal(t, next[k], s.onion[1], "producer %d to %x",
			s.onion[0], s.peer[:4])
		next[k]++
	}
	for _, p := range peers {
		for prod := range producers {
			require.EqualValues(t, perEach,
				next[key{p, byte(prod)}])
		}
	}

	s := h.mb.Stats()
	require.Empty(t, s.Dropped)
	require.Zero(t, s.SendFailures)
	require.Equal(t, uint64(total), s.Stored)
	require.Equal(t, uint64(total), s.ForwardedDirect+s.Delivered)
	require.Zero(t, s.StoredMessages)
	require.Zero(t, s.StoredBytes)
	count, bytes, err := h.st.MailboxUsage(ctx)
	require.NoError(t, err)
	require.Zero(t, count)
	require.Zero(t, bytes)
	require.Zero(t, async.waitingCount())
	require.Zero(t, h.mb.slotWaiters.Load())
	require.Empty(t, h.mb.slots)
}

// TestFailedUnregisterKeepsCountsExact: the store unregisters in chunks,
// and when a later chunk fails the earlier ones stay deleted. The
// mailbox's gauges and drop counters follow what the store committed.
func TestFailedUnregisterKeepsCountsExact(t *testing.T) {
	ctx := context.Background()
	var partial *partialUnregisterStore
	h := newHarness(t, func(cfg *Config) {
		partial = &partialUnregisterStore{MessageStore: cfg.Store}
		cfg.Store = partial
	})
	partial.st = h.st
	a := nodeID(t, 1)
	h.register(a)
	h.start()

	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'a', 5)))
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'b', 7)))

	found, err := h.mb.Unregister(ctx, a)
	require.ErrorIs(t, err, errStoreDown)
	require.False(t, found)

	count, bytes, err := h.st.MailboxUsage(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), count)
	require.Equal(t, int64(7), bytes)
	s := h.mb.Stats()
	require.Equal(t, count, s.StoredMessages)
	require.Equal(t, bytes, s.StoredBytes)
	require.Equal(t, map[string]uint64{DropRecipientRemoved: 1},
		s.Dropped)

	// The registration stands, as it does in the store.
	require.Equal(t, 1, s.Recipients)
	require.Equal(t, []byte("b"), h.waiting(a))
}
