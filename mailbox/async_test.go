package mailbox

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

// waitingCount is how many messages wait for their queue to take them.
func (a *AsyncForwarder) waitingCount() int {
	return int(a.queued.Load())
}

// peerGate holds the sends to some peers until their gate closes, and
// reports each held send as it begins.
type peerGate struct {
	next    Forwarder
	mu      sync.Mutex
	gates   map[route.Vertex]chan struct{}
	entered chan route.Vertex
}

func (g *peerGate) SendToPeer(ctx context.Context, peer route.Vertex,
	msg *lnwire.OnionMessage) error {

	g.mu.Lock()
	gate := g.gates[peer]
	g.mu.Unlock()
	if gate != nil {
		g.entered <- peer
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.next.SendToPeer(ctx, peer, msg)
}

// TestAsyncForwarderNeverBlocks: with the mailbox stuck in a store write,
// the transport's calls still return at once; messages beyond the queue
// are dropped and counted, and the queued ones go out in order once the
// write is unblocked. (A send that hangs holds up nothing: the recipient's
// queue stores what comes behind it, see TestAsyncForwarderSlowRecipient.)
func TestAsyncForwarderNeverBlocks(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.lnd.setOnline(a, true)
	h.start()

	unblock := h.fs.gatePuts()
	t.Cleanup(unblock)

	async := NewAsyncForwarder(h.mb, 2)
	t.Cleanup(async.Stop)

	first := testMsg(t, 'a', 10)
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, a, first))
	// The queue takes the first message and blocks in its store write.
	require.Eventually(t, func() bool { return async.waitingCount() == 0 },
		waitFor, time.Millisecond)

	second, third := testMsg(t, 'b', 11), testMsg(t, 'c', 12)
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, a, second))
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, a, third))
	require.Equal(t, OutcomeBusy, async.HandleForward(ctx, a,
		testMsg(t, 'd', 13)))
	require.Equal(t, uint64(1), h.mb.Stats().Dropped[DropBusy])

	unblock()
	got := h.waitSends(3)
	require.Equal(t, []sentMsg{sentOf(t, a, first), sentOf(t, a, second),
		sentOf(t, a, third)}, got)
}

// TestAsyncForwarderSlowRecipient: while the send to one recipient hangs,
// another recipient's message is stored and sent; the slow recipient's
// next message waits behind its first, and both go out in order once the
// send completes.
func TestAsyncForwarderSlowRecipient(t *testing.T) {
	ctx := context.Background()
	gate := &peerGate{
		gates:   make(map[route.Vertex]chan struct{}),
		entered: make(chan route.Vertex, 8),
	}
	h := newHarness(t, func(cfg *Config) {
		gate.next = cfg.Forwarder
		cfg.Forwarder = gate
	})
	slow, fast := nodeID(t, 1), nodeID(t, 2)
	release := make(chan struct{})
	gate.gates[slow] = release
	h.register(slow, fast)
	h.lnd.setOnline(slow, true)
	h.lnd.setOnline(fast, true)
	h.start()

	async := NewAsyncForwarder(h.mb, 0)
	t.Cleanup(async.Stop)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	s1, s2 := testMsg(t, 'a', 10), testMsg(t, 'b', 11)
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, slow, s1))
	require.Equal(t, slow, <-gate.entered)
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, slow, s2))

	f1 := testMsg(t, 'c', 12)
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, fast, f1))
	require.Equal(t, []sentMsg{sentOf(t, fast, f1)}, h.waitSends(1))

	once.Do(func() { close(release) })
	require.Equal(t, []sentMsg{sentOf(t, fast, f1), sentOf(t, slow, s1),
		sentOf(t, slow, s2)}, h.waitSends(3))
}

// TestAsyncForwarderBounds: no more sends than the bound run, whatever
// the number of recipients; one recipient cannot take more than its share
// of the queue; and the recipients left waiting are all served, each in
// arrival order.
func TestAsyncForwarderBounds(t *testing.T) {
	ctx := context.Background()
	gate := &peerGate{
		gates:   make(map[route.Vertex]chan struct{}),
		entered: make(chan route.Vertex, 64),
	}
	h := newHarness(t, func(cfg *Config) {
		gate.next = cfg.Forwarder
		cfg.Forwarder = gate
		cfg.Limits.MaxDrains = 2
	})
	release := make(chan struct{})
	var peers []route.Vertex
	for i := range 5 {
		p := nodeID(t, byte(10+i))
		peers = append(peers, p)
		gate.gates[p] = release
		h.register(p)
		h.lnd.setOnline(p, true)
	}
	h.start()
	const perRcpt = 6
	h.mb.mu.Lock()
	h.mb.inboxSize = perRcpt
	h.mb.mu.Unlock()

	async := NewAsyncForwarder(h.mb, 0)
	t.Cleanup(async.Stop)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	var want [][]sentMsg
	for i, p := range peers {
		var mine []sentMsg
		for j := range 3 {
			m := testMsg(t, byte('a'+i), 10+j)
			require.Equal(t, OutcomeQueued,
				async.HandleForward(ctx, p, m))
			mine = append(mine, sentOf(t, p, m))
		}
		want = append(want, mine)
	}
	// Two sends hang; nobody else starts one: the other three wait for
	// a send slot.
	<-gate.entered
	<-gate.entered
	require.Eventually(t, func() bool {
		return h.mb.slotWaiters.Load() == 3
	}, waitFor, time.Millisecond)
	require.Len(t, h.mb.slots, 2)
	require.Empty(t, gate.entered)
	// Meanwhile every queue stored its messages behind its first.
	require.Eventually(t, func() bool {
		count, _, err := h.st.MailboxUsage(ctx)
		return err == nil && count == int64(len(peers)*3)
	}, waitFor, time.Millisecond)

	// A recipient's share of the queue, while its queue is stuck in a
	// store write.
	over := peers[0]
	unblock := h.fs.gatePuts()
	t.Cleanup(unblock)
	require.Equal(t, OutcomeQueued, async.HandleForward(ctx, over,
		testMsg(t, 'z', 9)))
	require.Eventually(t, func() bool { return async.waitingCount() == 0 },
		waitFor, time.Millisecond)
	h.mb.mu.Lock()
	have := len(h.mb.queues[over].inbox)
	h.mb.mu.Unlock()
	for range perRcpt - have {
		require.Equal(t, OutcomeQueued, async.HandleForward(ctx, over,
			testMsg(t, 'z', 9)))
	}
	require.Equal(t, OutcomeBusy, async.HandleForward(ctx, over,
		testMsg(t, 'z', 9)))

	unblock()
	once.Do(func() { close(release) })
	h.waitIdle()
	require.Zero(t, h.mb.slotWaiters.Load())
	require.Empty(t, h.mb.slots)

	// Each recipient's messages went out in arrival order.
	byPeer := make(map[route.Vertex][]sentMsg)
	for _, s := range h.fwd.sent() {
		byPeer[s.peer] = append(byPeer[s.peer], s)
	}
	for i, p := range peers {
		got := byPeer[p]
		require.GreaterOrEqual(t, len(got), 3)
		require.Equal(t, want[i], got[:3])
	}
	require.Len(t, byPeer[over], 3+1+perRcpt)
}
