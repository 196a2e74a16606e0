package mailbox

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAsyncForwarderNeverBlocks: with the mailbox stuck in a send, the
// transport's calls still return at once; messages beyond the queue are
// dropped and counted, and the queued ones go out in order once the send
// is unblocked.
func TestAsyncForwarderNeverBlocks(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.lnd.setOnline(a, true)
	h.start()

	gate := make(chan struct{})
	h.fwd.mu.Lock()
	h.fwd.gate = gate
	h.fwd.mu.Unlock()

	async := NewAsyncForwarder(h.mb, 2)
	async.Start()
	t.Cleanup(async.Stop)

	first := testMsg(t, 'a', 10)
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, a, first))
	// The worker takes the first message and blocks in its send.
	require.Eventually(t, func() bool { return len(async.ch) == 0 },
		waitFor, time.Millisecond)

	second, third := testMsg(t, 'b', 11), testMsg(t, 'c', 12)
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, a, second))
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, a, third))
	require.Equal(t, OutcomeBusy, async.HandleForward(ctx, a,
		testMsg(t, 'd', 13)))
	require.Equal(t, uint64(1), h.mb.Stats().Dropped[DropBusy])

	close(gate)
	got := h.waitSends(3)
	require.Equal(t, []sentMsg{sentOf(t, a, first), sentOf(t, a, second),
		sentOf(t, a, third)}, got)
}
