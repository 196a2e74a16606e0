package mailbox

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// newClient returns a client over its own fake lnd, on real time.
func newClient(t *testing.T, cfg ClientConfig) (*Client, *fakeLnd) {
	t.Helper()

	lnd := newFakeLnd()
	cfg.Messages = lnd
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	cfg.Logger = logger
	if cfg.Timeout == 0 {
		cfg.Timeout = waitFor
	}
	if cfg.ResendInterval == 0 {
		cfg.ResendInterval = time.Hour
	}
	c, err := NewClient(cfg)
	require.NoError(t, err)

	return c, lnd
}

// link connects the recipient's lnd (p) and the LSP's lnd (l): a custom
// message one sends to the other arrives on the other's subscriptions.
func link(pLnd *fakeLnd, p route.Vertex, lLnd *fakeLnd, l route.Vertex) {
	pLnd.onSend = func(req *lnrpc.SendCustomMessageRequest) {
		if route.Vertex(req.Peer) == l {
			lLnd.deliver(p, req.Type, req.Data)
		}
	}
	lLnd.onSend = func(req *lnrpc.SendCustomMessageRequest) {
		if route.Vertex(req.Peer) == p {
			pLnd.deliver(l, req.Type, req.Data)
		}
	}
}

func TestClientRegistersWithMailbox(t *testing.T) {
	ctx := context.Background()
	p, l := nodeID(t, 1), nodeID(t, 50)

	h := newHarness(t, func(c *Config) {
		c.Limits.MaxAge = 6 * time.Hour
		c.Limits.MaxPerRecipient = 10
		c.Limits.MaxBytesPerRecipient = 1 << 16
	})
	h.lnd.channels[p] = 1
	client, pLnd := newClient(t, ClientConfig{Clock: h.clk})
	link(pLnd, p, h.lnd, l)
	h.start()

	reg, err := client.Register(ctx, l)
	require.NoError(t, err)
	require.Equal(t, &Registration{
		LSP:          l,
		MailboxKey:   h.key,
		MaxAge:       6 * time.Hour,
		MaxMessages:  10,
		MaxBytes:     1 << 16,
		RegisteredAt: t0,
	}, reg)

	// The mailbox now takes our messages, and we count as ready: the
	// registration came through our lnd. It answers before it marks us
	// ready and looks for waiting messages, so wait for both.
	require.Eventually(t, func() bool {
		return h.mb.isOnline(p)
	}, waitFor, time.Millisecond)
	h.waitIdle()
	msg := testMsg(t, 1, 5)
	require.Equal(t, OutcomeForwarded, h.mb.Handle(ctx, p, msg))
	require.Equal(t, []sentMsg{sentOf(t, p, msg)}, h.fwd.sent())

	// Gone at lnd: the next one waits for us.
	h.peerEvent(p, false)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, p, testMsg(t, 2, 5)))
	require.Equal(t, []byte{2}, h.waiting(p))

	// Back at lnd, then registering again refreshes; still one
	// registration.
	h.clk.SetTime(t0.Add(time.Second))
	h.peerEvent(p, true)
	require.False(t, h.mb.isOnline(p))
	_, err = client.Register(ctx, l)
	require.NoError(t, err)
	require.Equal(t, uint64(2), h.mb.Stats().Registrations[RegAccepted])
	require.Equal(t, 1, h.mb.Stats().Recipients)

	// Registering again is what makes us ready after a reconnect: the
	// waiting message goes out.
	got := h.waitSends(2)
	h.waitIdle()
	require.Equal(t, []sentMsg{
		sentOf(t, p, msg), sentOf(t, p, testMsg(t, 2, 5)),
	}, got)

	// Each call subscribed once and let go of its subscription.
	require.Eventually(t, func() bool {
		return pLnd.customSubscriptions() == 0
	}, waitFor, time.Millisecond)
}

func TestClientRefused(t *testing.T) {
	ctx := context.Background()
	p, l := nodeID(t, 1), nodeID(t, 50)
	h := newHarness(t, nil)
	client, pLnd := newClient(t, ClientConfig{})
	link(pLnd, p, h.lnd, l)
	h.start()

	_, err := client.Register(ctx, l)
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, ReasonNotEligible)
	require.Zero(t, h.mb.Stats().Recipients)
}

func TestClientTakesOnlyItsAnswer(t *testing.T) {
	ctx := context.Background()
	l, other := nodeID(t, 50), nodeID(t, 51)
	mboxKey := testKey(t, 77).PubKey()
	client, pLnd := newClient(t, ClientConfig{})

	answer := func(id, msgs uint64) []byte {
		data, err := (&RegisteredMsg{
			RequestID: id, MailboxKey: mboxKey, MaxAge: time.Hour,
			MaxMessages: msgs, MaxBytes: 1,
		}).Encode()
		require.NoError(t, err)
		return data
	}
	pLnd.onSend = func(req *lnrpc.SendCustomMessageRequest) {
		require.Equal(t, l[:], req.Peer)
		require.Equal(t, RegisterMsgType, req.Type)
		reg, err := DecodeRegister(req.Data)
		require.NoError(t, err)

		// Another node answering with our id, our LSP answering an
		// older request, garbage, another type: all ignored.
		pLnd.deliver(other, RegisteredMsgType, answer(reg.RequestID, 1))
		pLnd.deliver(l, RegisteredMsgType, answer(reg.RequestID+1, 2))
		pLnd.deliver(l, RegisteredMsgType, []byte{0xff})
		pLnd.deliver(l, RegisterMsgType, answer(reg.RequestID, 3))
		pLnd.deliver(l, RegisteredMsgType, answer(reg.RequestID, 4))
	}

	reg, err := client.Register(ctx, l)
	require.NoError(t, err)
	require.Equal(t, uint64(4), reg.MaxMessages)
	require.Equal(t, mboxKey, reg.MailboxKey)
}

func TestClientResendsUntilAnswered(t *testing.T) {
	ctx := context.Background()
	l := nodeID(t, 50)
	client, pLnd := newClient(t, ClientConfig{
		ResendInterval: 5 * time.Millisecond,
	})

	var (
		mu    sync.Mutex
		sends int
		ids   []uint64
	)
	pLnd.onSend = func(req *lnrpc.SendCustomMessageRequest) {
		reg, err := DecodeRegister(req.Data)
		require.NoError(t, err)
		mu.Lock()
		sends++
		ids = append(ids, reg.RequestID)
		n := sends
		mu.Unlock()
		// The first two are lost.
		if n < 3 {
			return
		}
		data, err := (&RegisteredMsg{
			RequestID: reg.RequestID, Error: "full",
		}).Encode()
		require.NoError(t, err)
		pLnd.deliver(l, RegisteredMsgType, data)
	}

	_, err := client.Register(ctx, l)
	require.ErrorIs(t, err, ErrRefused)
	require.ErrorContains(t, err, `"full"`)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 3, sends)
	// One request, sent three times.
	require.Equal(t, []uint64{ids[0], ids[0], ids[0]}, ids)
}

func TestClientFailures(t *testing.T) {
	ctx := context.Background()
	l := nodeID(t, 50)

	t.Run("no answer", func(t *testing.T) {
		client, pLnd := newClient(t, ClientConfig{
			Timeout: 50 * time.Millisecond,
		})
		pLnd.sendErr = errors.New("not connected")
		_, err := client.Register(ctx, l)
		require.ErrorIs(t, err, ErrNoAnswer)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("subscription refused", func(t *testing.T) {
		client, pLnd := newClient(t, ClientConfig{})
		pLnd.customSubErr = errors.New("permission denied")
		_, err := client.Register(ctx, l)
		require.ErrorIs(t, err, ErrSubscription)
		require.Empty(t, pLnd.sentCustom())
	})

	t.Run("bad LSP key", func(t *testing.T) {
		client, pLnd := newClient(t, ClientConfig{})
		_, err := client.Register(ctx, route.Vertex{0x05})
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.Empty(t, pLnd.sentCustom())
	})

	t.Run("config", func(t *testing.T) {
		_, err := NewClient(ClientConfig{})
		require.ErrorIs(t, err, ErrInvalidConfig)
		_, err = NewClient(ClientConfig{Messages: newFakeLnd(),
			Timeout: -1})
		require.ErrorIs(t, err, ErrInvalidConfig)
	})
}
