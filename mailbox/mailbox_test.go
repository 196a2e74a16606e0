package mailbox

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errNotConnected is what onionsend returns when lnd says the peer is gone.
var errNotConnected = fmt.Errorf("peer not connected: %w",
	status.Error(codes.NotFound, "peer is not online"))

func TestStoreThenDeliverInOrderOnOnline(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a, b := nodeID(t, 1), nodeID(t, 2)
	h.register(a, b)
	h.start()

	msgs := []*lnwire.OnionMessage{
		testMsg(t, 'x', 100), testMsg(t, 'y', 200), testMsg(t, 'z', 50),
	}
	for _, m := range msgs {
		require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, m))
	}
	require.Equal(t, "stored",
		h.mb.HandleForward(ctx, b, testMsg(t, 'q', 10)))
	require.Empty(t, h.fwd.sent())
	require.Equal(t, []byte("xyz"), h.waiting(a))

	s := h.mb.Stats()
	require.Equal(t, int64(4), s.StoredMessages)
	require.Equal(t, int64(360), s.StoredBytes)
	require.Equal(t, uint64(4), s.Stored)
	require.Equal(t, 2, s.Recipients)
	require.Zero(t, s.OnlineRecipients)

	h.connect(a)
	got := h.waitSends(3)
	h.waitIdle()
	require.Equal(t, []sentMsg{
		sentOf(t, a, msgs[0]), sentOf(t, a, msgs[1]),
		sentOf(t, a, msgs[2]),
	}, got)
	require.Equal(t, []byte{}, h.waiting(a))
	require.Equal(t, []byte("q"), h.waiting(b))

	s = h.mb.Stats()
	require.Equal(t, uint64(3), s.Delivered)
	require.Zero(t, s.ForwardedDirect)
	require.Equal(t, int64(1), s.StoredMessages)
	require.Equal(t, int64(10), s.StoredBytes)
	require.Equal(t, 1, s.OnlineRecipients)
	require.Empty(t, s.Dropped)

	// Coming back again sends nothing twice.
	h.peerEvent(a, false)
	require.Zero(t, h.mb.Stats().OnlineRecipients)
	h.connect(a)
	h.waitIdle()
	require.Len(t, h.fwd.sent(), 3)
	require.Equal(t, uint64(3), h.mb.Stats().Delivered)
}

func TestForwardDirectWhenOnline(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	// Connected when the mailbox starts: ready without registering.
	h.lnd.setOnline(a, true)
	h.start()
	require.True(t, h.mb.isOnline(a))

	msg := testMsg(t, 'm', 1366)
	require.Equal(t, OutcomeForwarded, h.mb.Handle(ctx, a, msg))
	// Sent before Handle returned, and gone from the store.
	require.Equal(t, []sentMsg{sentOf(t, a, msg)}, h.fwd.sent())
	require.Equal(t, []byte{}, h.waiting(a))
	count, size, err := h.st.MailboxUsage(ctx)
	require.NoError(t, err)
	require.Zero(t, count)
	require.Zero(t, size)

	s := h.mb.Stats()
	require.Equal(t, uint64(1), s.ForwardedDirect)
	require.Equal(t, uint64(1), s.Stored)
	require.Zero(t, s.Delivered)
	require.Zero(t, s.StoredMessages)
	require.Zero(t, s.StoredBytes)
	h.waitIdle()
}

func TestNewMessagesQueueBehindADrain(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.start()

	x, y, z := testMsg(t, 'x', 10), testMsg(t, 'y', 10), testMsg(t, 'z', 10)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, x))
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, y))

	gate := make(chan struct{})
	h.fwd.mu.Lock()
	h.fwd.gate = gate
	h.fwd.mu.Unlock()
	h.connect(a)

	// The drain has claimed x and waits in the send.
	require.Eventually(t, func() bool {
		return string(h.waiting(a)) == "y"
	}, waitFor, time.Millisecond)

	// The recipient is online, but z must not overtake x and y.
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, z))
	close(gate)

	got := h.waitSends(3)
	h.waitIdle()
	require.Equal(t, []sentMsg{
		sentOf(t, a, x), sentOf(t, a, y), sentOf(t, a, z),
	}, got)
	require.Equal(t, uint64(3), h.mb.Stats().Delivered)
	require.Zero(t, h.mb.Stats().ForwardedDirect)
}

func TestHandleDropsBadInput(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(cfg *Config) {
		cfg.Limits.MaxMessageBytes = 100
	})
	a, stranger := nodeID(t, 1), nodeID(t, 9)
	h.register(a)
	h.lnd.setOnline(a, true)
	h.lnd.setOnline(stranger, true)
	h.start()

	tests := []struct {
		name    string
		next    route.Vertex
		msg     *lnwire.OnionMessage
		outcome Outcome
		reason  string
	}{
		{"unregistered", stranger, testMsg(t, 1, 10),
			OutcomeUnregistered, DropUnregistered},
		{"too large", a, testMsg(t, 1, 101), OutcomeTooLarge,
			DropTooLarge},
		{"nil message", a, nil, OutcomeInvalid, DropInvalid},
		{"no path key", a, &lnwire.OnionMessage{OnionBlob: []byte{1}},
			OutcomeInvalid, DropInvalid},
		{"empty packet", a, lnwire.NewOnionMessage(
			testKey(t, 1).PubKey(), nil), OutcomeInvalid,
			DropInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.mb.Stats()
			require.Equal(t, tc.outcome, h.mb.Handle(ctx, tc.next,
				tc.msg))

			after := h.mb.Stats()
			require.Equal(t, before.Dropped[tc.reason]+1,
				after.Dropped[tc.reason])
			require.Zero(t, after.Stored)
			require.Zero(t, after.StoredMessages)
			count, _, err := h.st.MailboxUsage(ctx)
			require.NoError(t, err)
			require.Zero(t, count)
			require.Empty(t, h.fwd.sent())
		})
	}

	// The limit itself is accepted.
	require.Equal(t, OutcomeForwarded,
		h.mb.Handle(ctx, a, testMsg(t, 2, 100)))
}

func TestEvictionDropsOldestAndCounts(t *testing.T) {
	a, b := nodeID(t, 1), nodeID(t, 2)

	type in struct {
		to   route.Vertex
		tag  byte
		size int
	}
	tests := []struct {
		name    string
		limits  Limits
		msgs    []in
		dropped map[string]uint64
		// delivered, by recipient, once both are online.
		wantA, wantB []byte
	}{{
		name:   "per-recipient count",
		limits: Limits{MaxPerRecipient: 2},
		msgs: []in{{a, 'a', 10}, {b, 'B', 10}, {a, 'b', 10},
			{a, 'c', 10}, {a, 'd', 10}},
		dropped: map[string]uint64{DropRecipientCount: 2},
		wantA:   []byte("cd"),
		wantB:   []byte("B"),
	}, {
		name: "per-recipient bytes",
		limits: Limits{MaxBytesPerRecipient: 100,
			MaxMessageBytes: 100},
		msgs: []in{{a, 'a', 60}, {b, 'B', 90}, {a, 'b', 30},
			{a, 'c', 50}},
		dropped: map[string]uint64{DropRecipientBytes: 1},
		wantA:   []byte("bc"),
		wantB:   []byte("B"),
	}, {
		name:   "total count",
		limits: Limits{MaxTotal: 3},
		msgs: []in{{b, 'B', 10}, {a, 'a', 10}, {b, 'C', 10},
			{a, 'b', 10}, {a, 'c', 10}},
		dropped: map[string]uint64{DropTotalCount: 2},
		wantA:   []byte("bc"),
		wantB:   []byte("C"),
	}, {
		name: "total bytes",
		limits: Limits{MaxTotalBytes: 100, MaxMessageBytes: 100,
			MaxBytesPerRecipient: 100},
		msgs:    []in{{b, 'B', 40}, {a, 'a', 40}, {a, 'b', 50}},
		dropped: map[string]uint64{DropTotalBytes: 1},
		wantA:   []byte("ab"),
		wantB:   []byte{},
	}}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, func(cfg *Config) {
				cfg.Limits.MaxPerRecipient =
					tc.limits.MaxPerRecipient
				cfg.Limits.MaxBytesPerRecipient =
					tc.limits.MaxBytesPerRecipient
				cfg.Limits.MaxTotal = tc.limits.MaxTotal
				cfg.Limits.MaxTotalBytes = tc.limits.MaxTotalBytes
				cfg.Limits.MaxMessageBytes =
					tc.limits.MaxMessageBytes
			})
			h.register(a, b)
			h.start()

			var size int64
			for _, m := range tc.msgs {
				require.Equal(t, OutcomeStored, h.mb.Handle(ctx,
					m.to, testMsg(t, m.tag, m.size)))
				size += int64(m.size)
			}

			s := h.mb.Stats()
			require.Equal(t, tc.dropped, s.Dropped)
			require.Equal(t, uint64(len(tc.msgs)), s.Stored)
			count, bytes, err := h.st.MailboxUsage(ctx)
			require.NoError(t, err)
			require.Equal(t, count, s.StoredMessages)
			require.Equal(t, bytes, s.StoredBytes)
			require.Equal(t, tc.wantA, h.waiting(a))
			require.Equal(t, tc.wantB, h.waiting(b))

			h.connect(a)
			h.connect(b)
			h.waitSends(len(tc.wantA) + len(tc.wantB))
			h.waitIdle()
			var gotA, gotB []byte
			for _, sn := range h.fwd.sent() {
				if sn.peer == a {
					gotA = append(gotA, sn.onion[0])
				} else {
					gotB = append(gotB, sn.onion[0])
				}
			}
			require.Equal(t, orEmpty(tc.wantA), orEmpty(gotA))
			require.Equal(t, orEmpty(tc.wantB), orEmpty(gotB))
		})
	}
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}

	return b
}

func TestExpirySweep(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(cfg *Config) {
		cfg.Limits.MaxAge = 2 * time.Hour
		cfg.Limits.SweepInterval = time.Hour
	})
	a := nodeID(t, 1)
	h.register(a)
	h.start()
	<-h.sweep

	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'a', 5)))
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'b', 7)))
	h.clk.SetTime(t0.Add(time.Hour))
	<-h.sweep
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'c', 9)))
	require.Empty(t, h.mb.Stats().Dropped)

	// Two hours after the first two: they expire, the third stays.
	h.clk.SetTime(t0.Add(2 * time.Hour))
	<-h.sweep
	require.Equal(t, []byte("c"), h.waiting(a))
	s := h.mb.Stats()
	require.Equal(t, map[string]uint64{DropExpired: 2}, s.Dropped)
	require.Equal(t, int64(1), s.StoredMessages)
	require.Equal(t, int64(9), s.StoredBytes)

	h.connect(a)
	got := h.waitSends(1)
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, a, testMsg(t, 'c', 9))}, got)
}

func TestExpiredMessageIsNotDelivered(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(cfg *Config) {
		cfg.Limits.MaxAge = time.Hour
		cfg.Limits.SweepInterval = 24 * time.Hour
	})
	a := nodeID(t, 1)
	h.register(a)
	h.start()

	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'a', 5)))
	h.clk.SetTime(t0.Add(30 * time.Minute))
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'b', 5)))

	// Expired before any sweep ran: the drain drops it, sends the rest.
	h.clk.SetTime(t0.Add(time.Hour))
	h.connect(a)
	got := h.waitSends(1)
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, a, testMsg(t, 'b', 5))}, got)
	require.Equal(t, map[string]uint64{DropExpired: 1},
		h.mb.Stats().Dropped)
	require.Zero(t, h.mb.Stats().StoredMessages)
}

func TestSendErrorKeepsMessage(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.lnd.setOnline(a, true)
	h.start()

	// lnd says the peer is gone before lnd's offline event arrives.
	h.fwd.failNext(errNotConnected)
	m1 := testMsg(t, 'a', 5)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, m1))
	require.Equal(t, []byte("a"), h.waiting(a))
	s := h.mb.Stats()
	require.Equal(t, uint64(1), s.SendFailures)
	require.Equal(t, int64(1), s.StoredMessages)
	require.Empty(t, s.Dropped)

	// Behind the kept message, a new one waits rather than overtaking.
	h.fwd.failNext(errNotConnected)
	m2 := testMsg(t, 'b', 5)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, m2))
	h.waitIdle()
	require.Equal(t, []byte("ab"), h.waiting(a))
	require.Empty(t, h.fwd.sent())

	// The recipient comes back: both go, in order.
	h.peerEvent(a, false)
	h.connect(a)
	got := h.waitSends(2)
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, a, m1), sentOf(t, a, m2)}, got)
	require.Equal(t, []byte{}, h.waiting(a))
}

func TestSendErrorRetriedBySweep(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.lnd.setOnline(a, true)
	h.start()
	<-h.sweep

	// lnd refused, but never reported the recipient offline.
	h.fwd.failNext(errors.New("lnd restarting"))
	m := testMsg(t, 'a', 5)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, m))
	h.waitIdle()
	require.Empty(t, h.fwd.sent())

	h.clk.SetTime(t0.Add(time.Hour))
	got := h.waitSends(1)
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, a, m)}, got)
	require.Equal(t, uint64(1), h.mb.Stats().Delivered)
}

func TestUncertainSendIsNotRepeated(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.lnd.setOnline(a, true)
	h.start()

	h.fwd.failNext(fmt.Errorf("send: %w",
		status.Error(codes.DeadlineExceeded, "deadline")))
	require.Equal(t, OutcomeSendUncertain,
		h.mb.Handle(ctx, a, testMsg(t, 'a', 5)))

	h.fwd.failNext(context.DeadlineExceeded)
	require.Equal(t, OutcomeSendUncertain,
		h.mb.Handle(ctx, a, testMsg(t, 'b', 5)))

	require.Equal(t, []byte{}, h.waiting(a))
	s := h.mb.Stats()
	require.Equal(t, map[string]uint64{DropSendUncertain: 2}, s.Dropped)
	require.Zero(t, s.StoredMessages)
	require.Zero(t, s.SendFailures)
	require.Equal(t, 2, h.fwd.callCount())
}

func TestClaimedMessagesDroppedAtRestart(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)

	// A previous run claimed one message and crashed in the send.
	m := StoredMessage{Recipient: a, Onion: []byte("sent?"),
		ReceivedAt: t0}
	copy(m.PathKey[:], testKey(t, 1).PubKey().SerializeCompressed())
	put, err := h.st.PutMailboxMessage(ctx, m, true, StoreLimits{})
	require.NoError(t, err)
	require.True(t, put.Claimed)
	m.Onion = []byte("waiting")
	_, err = h.st.PutMailboxMessage(ctx, m, false, StoreLimits{})
	require.NoError(t, err)

	h.lnd.setOnline(a, true)
	h.start()

	got := h.waitSends(1)
	h.waitIdle()
	require.Len(t, got, 1)
	require.Equal(t, []byte("waiting"), got[0].onion)
	s := h.mb.Stats()
	require.Equal(t, map[string]uint64{DropClaimedAtStart: 1}, s.Dropped)
	require.Zero(t, s.StoredMessages)
}

func TestStoreErrorChangesNothing(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.lnd.setOnline(a, true)
	h.start()

	h.fs.set("put", true)
	require.Equal(t, OutcomeStoreError, h.mb.Handle(ctx, a,
		testMsg(t, 'a', 5)))
	require.Empty(t, h.fwd.sent())
	require.Equal(t, uint64(1), h.mb.Stats().Dropped[DropStoreError])

	// The queue was let go: the next message goes straight out.
	h.fs.set("put", false)
	require.Equal(t, OutcomeForwarded, h.mb.Handle(ctx, a,
		testMsg(t, 'b', 5)))
}

func TestPeerStreamReconnects(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(cfg *Config) {
		// Real time for the resubscribe backoff.
		cfg.Clock = nil
	})
	a := nodeID(t, 1)
	h.register(a)
	h.start()

	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'a', 5)))

	// The recipient connects while the stream is down: the listing on
	// resubscribe finds it, but it may be its lnd without its holdd, so
	// it is not ready until it registers again.
	h.lnd.endPeerStreams(errors.New("lnd restarted"))
	h.lnd.setOnline(a, true)
	require.Eventually(t, func() bool {
		return h.lnd.peerSubscriptions() >= 2 &&
			h.mb.Stats().PeerEventsUp
	}, waitFor, time.Millisecond)
	require.Zero(t, h.mb.Stats().Delivered)
	h.registerFrom(a)
	got := h.waitSends(1)
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, a, testMsg(t, 'a', 5))}, got)
	require.GreaterOrEqual(t, h.lnd.peerSubscriptions(), 2)
	require.Eventually(t, func() bool {
		return h.mb.Stats().PeerEventsUp
	}, waitFor, time.Millisecond)
}

func TestUnregisterDropsStored(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.start()

	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'a', 5)))
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, testMsg(t, 'b', 6)))

	info, err := h.mb.Recipients(ctx)
	require.NoError(t, err)
	require.Len(t, info, 1)
	require.Equal(t, a, info[0].Peer)
	require.Equal(t, int64(2), info[0].Messages)
	require.Equal(t, int64(11), info[0].Bytes)
	require.False(t, info[0].Online)

	found, err := h.mb.Unregister(ctx, a)
	require.NoError(t, err)
	require.True(t, found)
	found, err = h.mb.Unregister(ctx, a)
	require.NoError(t, err)
	require.False(t, found)

	s := h.mb.Stats()
	require.Equal(t, map[string]uint64{DropRecipientRemoved: 2}, s.Dropped)
	require.Zero(t, s.StoredMessages)
	require.Zero(t, s.StoredBytes)
	require.Zero(t, s.Recipients)
	require.Equal(t, OutcomeUnregistered, h.mb.Handle(ctx, a,
		testMsg(t, 'c', 5)))
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)

	mb, err := New(h.cfg)
	require.NoError(t, err)
	require.Equal(t, OutcomeNotRunning, mb.Handle(ctx, a,
		testMsg(t, 'a', 5)))
	require.NoError(t, mb.Start(ctx))
	require.ErrorIs(t, mb.Start(ctx), ErrAlreadyStarted)
	require.NoError(t, mb.Stop())
	require.NoError(t, mb.Stop())
	require.ErrorIs(t, mb.Start(ctx), ErrStopped)
	require.Equal(t, OutcomeNotRunning, mb.Handle(ctx, a,
		testMsg(t, 'a', 5)))
	require.Equal(t, uint64(2), mb.Stats().Dropped[DropNotRunning])
	require.False(t, mb.Stats().PeerEventsUp)

	count, _, err := h.st.MailboxUsage(ctx)
	require.NoError(t, err)
	require.Zero(t, count)
}

func TestConfigValidation(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"no store", func(c *Config) { c.Store = nil }},
		{"no forwarder", func(c *Config) { c.Forwarder = nil }},
		{"no peers", func(c *Config) { c.Peers = nil }},
		{"no messenger", func(c *Config) { c.Messages = nil }},
		{"no mailbox key", func(c *Config) { c.MailboxKey = nil }},
		{"no one may register", func(c *Config) { c.Channels = nil }},
		{"negative limit", func(c *Config) {
			c.Limits.MaxTotal = -1
		}},
		{"message over recipient bytes", func(c *Config) {
			c.Limits.MaxBytesPerRecipient = 1000
			c.Limits.MaxMessageBytes = 1001
		}},
		{"default message over total bytes", func(c *Config) {
			c.Limits.MaxTotalBytes = 1000
		}},
		{"max age below a second", func(c *Config) {
			c.Limits.MaxAge = time.Millisecond
		}},
		{"backoff inverted", func(c *Config) {
			c.MinBackoff = time.Minute
			c.MaxBackoff = time.Second
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := h.cfg
			tc.mutate(&cfg)
			_, err := New(cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}

	// Defaults fill every zero limit.
	cfg := h.cfg
	cfg.Limits = Limits{}
	mb, err := New(cfg)
	require.NoError(t, err)
	require.Equal(t, Limits{
		MaxMessageBytes:      DefaultMaxMessageBytes,
		MaxPerRecipient:      DefaultMaxPerRecipient,
		MaxBytesPerRecipient: DefaultMaxBytesPerRecipient,
		MaxTotal:             DefaultMaxTotal,
		MaxTotalBytes:        DefaultMaxTotalBytes,
		MaxAge:               DefaultMaxAge,
		SweepInterval:        DefaultSweepInterval,
		SendTimeout:          DefaultSendTimeout,
		MaxDrains:            DefaultMaxDrains,
		RegisterInterval:     DefaultRegisterInterval,
	}, mb.lim)

	// Open, or an allowlist, needs no channel lister.
	cfg = h.cfg
	cfg.Channels = nil
	cfg.Open = true
	_, err = New(cfg)
	require.NoError(t, err)
}

func TestKickDuringFailedSendIsNotLost(t *testing.T) {
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
	h.fwd.failNext(errNotConnected)

	m := testMsg(t, 'a', 5)
	outcome := make(chan Outcome, 1)
	go func() { outcome <- h.mb.Handle(ctx, a, m) }()

	// Handle stored the message claimed and waits in the send.
	require.Eventually(t, func() bool {
		count, _, err := h.st.MailboxUsage(ctx)
		return err == nil && count == 1 && len(h.waiting(a)) == 0
	}, waitFor, time.Millisecond)

	// The recipient reconnects while that send is failing.
	h.peerEvent(a, false)
	h.connect(a)
	require.Eventually(t, func() bool {
		h.mb.mu.Lock()
		defer h.mb.mu.Unlock()
		q := h.mb.queues[a]
		return q != nil && q.kicks.Load() > 0
	}, waitFor, time.Millisecond)
	close(gate)

	require.Equal(t, OutcomeStored, <-outcome)
	// No sweep ran: the registration alone brought the retry.
	got := h.waitSends(1)
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, a, m)}, got)
	require.Equal(t, uint64(1), h.mb.Stats().SendFailures)
	require.Equal(t, uint64(1), h.mb.Stats().Delivered)
}

func TestPeerOnlineAloneIsNotReady(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.start()
	<-h.sweep

	m1, m2 := testMsg(t, 'a', 5), testMsg(t, 'b', 6)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, m1))

	// lnd reports the recipient's lnd online, but its holdd may not be
	// connected to it yet, and that lnd would drop the message.
	h.peerEvent(a, true)
	require.False(t, h.mb.isOnline(a))
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, m2))

	// Nor does a sweep treat it as ready.
	h.clk.SetTime(t0.Add(time.Hour))
	<-h.sweep
	h.waitIdle()
	require.Empty(t, h.fwd.sent())
	require.Zero(t, h.fwd.callCount())
	require.Equal(t, []byte("ab"), h.waiting(a))
	s := h.mb.Stats()
	require.Zero(t, s.OnlineRecipients)
	require.Equal(t, int64(2), s.StoredMessages)
	info, err := h.mb.Recipients(ctx)
	require.NoError(t, err)
	require.Len(t, info, 1)
	require.False(t, info[0].Online)

	// Its holdd registers: both go, in order.
	h.registerFrom(a)
	got := h.waitSends(2)
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, a, m1), sentOf(t, a, m2)}, got)
	require.Equal(t, []byte{}, h.waiting(a))
	s = h.mb.Stats()
	require.Equal(t, uint64(2), s.Delivered)
	require.Zero(t, s.ForwardedDirect)
	require.Equal(t, 1, s.OnlineRecipients)
	require.Zero(t, s.StoredMessages)
	require.Empty(t, s.Dropped)
}

func TestPeerOfflineStopsInlineForwarding(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	a := nodeID(t, 1)
	h.register(a)
	h.start()
	h.connect(a)
	// The registration's kick finds nothing; once it let go, a message
	// goes straight out.
	h.waitIdle()

	m1, m2, m3 := testMsg(t, 'a', 5), testMsg(t, 'b', 6), testMsg(t, 'c', 7)
	require.Equal(t, OutcomeForwarded, h.mb.Handle(ctx, a, m1))

	h.peerEvent(a, false)
	require.Zero(t, h.mb.Stats().OnlineRecipients)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, m2))
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, a, m1)}, h.fwd.sent())
	require.Equal(t, 1, h.fwd.callCount())
	require.Equal(t, []byte("b"), h.waiting(a))

	// Back at lnd but not registered again: still kept, behind m2.
	h.peerEvent(a, true)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, a, m3))
	h.waitIdle()
	require.Equal(t, 1, h.fwd.callCount())
	require.Equal(t, []byte("bc"), h.waiting(a))

	h.registerFrom(a)
	got := h.waitSends(3)
	h.waitIdle()
	require.Equal(t, []sentMsg{
		sentOf(t, a, m1), sentOf(t, a, m2), sentOf(t, a, m3),
	}, got)
	s := h.mb.Stats()
	require.Equal(t, uint64(1), s.ForwardedDirect)
	require.Equal(t, uint64(2), s.Delivered)
	require.Zero(t, s.StoredMessages)
}
