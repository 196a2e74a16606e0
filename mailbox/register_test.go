package mailbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

func registerData(t *testing.T, id uint64) []byte {
	t.Helper()

	data, err := (&RegisterMsg{RequestID: id}).Encode()
	require.NoError(t, err)

	return data
}

// answerTo waits for the n-th custom message the mailbox sent and decodes
// it as an answer to peer.
func (h *harness) answerTo(peer route.Vertex, n int) *RegisteredMsg {
	h.t.Helper()

	require.Eventually(h.t, func() bool {
		return len(h.lnd.sentCustom()) >= n
	}, waitFor, time.Millisecond)
	req := h.lnd.sentCustom()[n-1]
	require.Equal(h.t, peer[:], req.Peer)
	require.Equal(h.t, RegisteredMsgType, req.Type)
	ans, err := DecodeRegistered(req.Data)
	require.NoError(h.t, err)

	return ans
}

// regCount waits until the registration counter reaches n.
func (h *harness) regCount(outcome string, n uint64) {
	h.t.Helper()

	require.Eventually(h.t, func() bool {
		return h.mb.Stats().Registrations[outcome] == n
	}, waitFor, time.Millisecond)
}

func TestRegistrationPolicy(t *testing.T) {
	p := nodeID(t, 1)

	tests := []struct {
		name    string
		mutate  func(*Config)
		prepare func(*harness)
		outcome string
		reason  string
	}{{
		name:    "peer with a channel",
		prepare: func(h *harness) { h.lnd.channels[p] = 1 },
		outcome: RegAccepted,
	}, {
		name:    "peer without a channel",
		outcome: RegRefused,
		reason:  ReasonNotEligible,
	}, {
		name:    "allowlisted peer",
		mutate:  func(c *Config) { c.Allow = []route.Vertex{p} },
		outcome: RegAccepted,
	}, {
		name:    "open mailbox",
		mutate:  func(c *Config) { c.Open = true },
		outcome: RegAccepted,
	}, {
		name: "channel lookup fails",
		prepare: func(h *harness) {
			h.lnd.channelsErr = errors.New("lnd busy")
		},
		outcome: RegFailed,
		reason:  ReasonRetry,
	}, {
		name: "store fails",
		prepare: func(h *harness) {
			h.lnd.channels[p] = 1
			h.fs.set("register", true)
		},
		outcome: RegFailed,
		reason:  ReasonRetry,
	}}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, func(c *Config) {
				c.Limits.MaxAge = 3 * time.Hour
				c.Limits.MaxPerRecipient = 42
				c.Limits.MaxBytesPerRecipient = 1 << 19
				if tc.mutate != nil {
					tc.mutate(c)
				}
			})
			if tc.prepare != nil {
				tc.prepare(h)
			}
			h.start()

			h.lnd.deliver(p, RegisterMsgType, registerData(t, 99))
			h.regCount(tc.outcome, 1)
			ans := h.answerTo(p, 1)

			list, err := h.st.ListMailboxRecipients(ctx)
			require.NoError(t, err)

			if tc.outcome != RegAccepted {
				require.Equal(t, &RegisteredMsg{RequestID: 99,
					Error: tc.reason}, ans)
				require.Empty(t, list)
				require.Equal(t, OutcomeUnregistered,
					h.mb.Handle(ctx, p, testMsg(t, 1, 5)))
				h.settle()
				require.False(t, h.mb.isOnline(p))
				require.Empty(t, h.fwd.sent())
				return
			}

			require.Equal(t, &RegisteredMsg{
				RequestID:   99,
				MailboxKey:  h.key,
				MaxAge:      3 * time.Hour,
				MaxMessages: 42,
				MaxBytes:    1 << 19,
			}, ans)
			require.Len(t, list, 1)
			require.Equal(t, p, list[0].Peer)
			require.Equal(t, t0, list[0].RegisteredAt)
			// The registration came from the recipient's holdd
			// through its lnd: it is ready, so a message for it
			// goes out at once.
			require.Eventually(t, func() bool {
				return h.mb.Stats().OnlineRecipients == 1
			}, waitFor, time.Millisecond)
			h.waitIdle()
			require.Equal(t, 1, h.mb.Stats().Recipients)
			msg := testMsg(t, 1, 5)
			require.Equal(t, OutcomeForwarded,
				h.mb.Handle(ctx, p, msg))
			require.Equal(t, []sentMsg{sentOf(t, p, msg)},
				h.fwd.sent())
		})
	}
}

func TestRegistrationIdempotent(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	p := nodeID(t, 1)
	h.lnd.channels[p] = 2
	h.start()

	h.lnd.deliver(p, RegisterMsgType, registerData(t, 1))
	h.regCount(RegAccepted, 1)
	require.Equal(t, uint64(1), h.answerTo(p, 1).RequestID)

	// lnd loses the recipient: its next message is kept.
	h.peerEvent(p, false)
	m := testMsg(t, 1, 5)
	require.Equal(t, OutcomeStored, h.mb.Handle(ctx, p, m))
	list, err := h.st.ListMailboxRecipients(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, int64(1), list[0].Messages)

	// It comes back and registers again.
	h.clk.SetTime(t0.Add(time.Minute))
	h.lnd.setOnline(p, true)
	h.lnd.deliver(p, RegisterMsgType, registerData(t, 2))
	h.regCount(RegAccepted, 2)
	require.Equal(t, uint64(2), h.answerTo(p, 2).RequestID)

	// Refreshing kept the stored message, which now goes out.
	got := h.waitSends(1)
	h.waitIdle()
	require.Equal(t, []sentMsg{sentOf(t, p, m)}, got)
	s := h.mb.Stats()
	require.Equal(t, uint64(1), s.Delivered)
	require.Empty(t, s.Dropped)
	require.Equal(t, 1, s.Recipients)
	require.Equal(t, 1, s.OnlineRecipients)

	list, err = h.st.ListMailboxRecipients(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, t0, list[0].RegisteredAt)
	require.Equal(t, t0.Add(time.Minute), list[0].RefreshedAt)
	require.Zero(t, list[0].Messages)
}

func TestRegistrationHostileInput(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Open = true
		c.Limits.RegisterInterval = time.Minute
	})
	p, q := nodeID(t, 1), nodeID(t, 2)
	h.start()

	// Other custom messages and malformed peers are not ours to count.
	h.lnd.deliver(p, 48001, registerData(t, 1))
	h.lnd.mu.Lock()
	for _, s := range h.lnd.customSubs {
		s.push(&lnrpc.CustomMessage{
			Peer: p[:5], Type: RegisterMsgType,
			Data: registerData(t, 1),
		})
	}
	h.lnd.mu.Unlock()

	// Malformed: counted, not answered, nothing stored.
	h.lnd.deliver(q, RegisterMsgType, []byte{0x00, 0x08, 0x01})
	h.regCount(RegMalformed, 1)

	h.lnd.deliver(p, RegisterMsgType, registerData(t, 5))
	h.regCount(RegAccepted, 1)
	// Too soon after the last one: ignored.
	h.lnd.deliver(p, RegisterMsgType, registerData(t, 6))
	h.regCount(RegRateLimited, 1)

	h.clk.SetTime(t0.Add(time.Minute))
	h.lnd.deliver(p, RegisterMsgType, registerData(t, 7))
	h.regCount(RegAccepted, 2)

	sent := h.lnd.sentCustom()
	require.Len(t, sent, 2)
	require.Equal(t, uint64(5), h.answerTo(p, 1).RequestID)
	require.Equal(t, uint64(7), h.answerTo(p, 2).RequestID)
	require.Equal(t, map[string]uint64{
		RegMalformed: 1, RegAccepted: 2, RegRateLimited: 1,
	}, h.mb.Stats().Registrations)

	list, err := h.st.ListMailboxRecipients(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, p, list[0].Peer)
}

func TestRegistrationReplyFailureCounted(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Open = true })
	p := nodeID(t, 1)
	h.lnd.sendErr = errors.New("peer gone")
	h.start()

	h.lnd.deliver(p, RegisterMsgType, registerData(t, 5))
	h.regCount(RegAccepted, 1)
	h.regCount(RegReplyFailed, 1)
	// Registered all the same; the client's retry gets the answer.
	require.Equal(t, 1, h.mb.Stats().Recipients)
}

func TestUnacceptedRegistrationIsNotReady(t *testing.T) {
	p := nodeID(t, 1)

	tests := []struct {
		name string
		// prepare runs before start, with p registered and no
		// channel; fix undoes it before the final registration.
		prepare func(*harness)
		fix     func(*harness)
		data    func(*testing.T) []byte
		outcome string
		replies int
	}{{
		// Registered earlier, its channel since closed.
		name:    "refused",
		data:    func(t *testing.T) []byte { return registerData(t, 1) },
		outcome: RegRefused,
		replies: 1,
	}, {
		name: "policy check fails",
		prepare: func(h *harness) {
			h.lnd.channels[p] = 1
			h.lnd.channelsErr = errors.New("lnd busy")
		},
		fix: func(h *harness) {
			h.lnd.mu.Lock()
			h.lnd.channelsErr = nil
			h.lnd.mu.Unlock()
		},
		data:    func(t *testing.T) []byte { return registerData(t, 1) },
		outcome: RegFailed,
		replies: 1,
	}, {
		name: "store fails",
		prepare: func(h *harness) {
			h.lnd.channels[p] = 1
			h.fs.set("register", true)
		},
		fix:     func(h *harness) { h.fs.set("register", false) },
		data:    func(t *testing.T) []byte { return registerData(t, 1) },
		outcome: RegFailed,
		replies: 1,
	}, {
		name:    "malformed",
		prepare: func(h *harness) { h.lnd.channels[p] = 1 },
		data: func(*testing.T) []byte {
			return []byte{0x00, 0x08, 0x01}
		},
		outcome: RegMalformed,
	}}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, nil)
			h.register(p)
			if tc.prepare != nil {
				tc.prepare(h)
			}
			h.start()

			m1, m2 := testMsg(t, 'a', 5), testMsg(t, 'b', 6)
			require.Equal(t, OutcomeStored, h.mb.Handle(ctx, p, m1))
			h.peerEvent(p, true)
			h.lnd.deliver(p, RegisterMsgType, tc.data(t))
			h.regCount(tc.outcome, 1)
			h.settle()

			require.False(t, h.mb.isOnline(p))
			require.Len(t, h.lnd.sentCustom(), tc.replies)
			require.Equal(t, OutcomeStored, h.mb.Handle(ctx, p, m2))
			h.waitIdle()
			require.Zero(t, h.fwd.callCount())
			require.Equal(t, []byte("ab"), h.waiting(p))
			s := h.mb.Stats()
			require.Zero(t, s.OnlineRecipients)
			// The earlier registration stands.
			require.Equal(t, 1, s.Recipients)

			// Once a registration is accepted, both go in order.
			if tc.fix != nil {
				tc.fix(h)
			}
			h.registerFrom(p)
			got := h.waitSends(2)
			h.waitIdle()
			require.Equal(t, []sentMsg{
				sentOf(t, p, m1), sentOf(t, p, m2),
			}, got)
		})
	}

	// Rate limited: a registration too soon after a refused one is
	// ignored, even though the peer is now eligible.
	t.Run("rate limited", func(t *testing.T) {
		ctx := context.Background()
		h := newHarness(t, func(c *Config) {
			c.Limits.RegisterInterval = time.Minute
		})
		h.register(p)
		h.start()

		m := testMsg(t, 'a', 5)
		require.Equal(t, OutcomeStored, h.mb.Handle(ctx, p, m))
		h.peerEvent(p, true)
		h.lnd.deliver(p, RegisterMsgType, registerData(t, 1))
		h.regCount(RegRefused, 1)
		h.lnd.setChannels(p, 1)
		h.clk.SetTime(t0.Add(time.Minute - time.Nanosecond))
		h.lnd.deliver(p, RegisterMsgType, registerData(t, 2))
		h.regCount(RegRateLimited, 1)
		h.settle()

		require.False(t, h.mb.isOnline(p))
		require.Len(t, h.lnd.sentCustom(), 1)
		h.waitIdle()
		require.Zero(t, h.fwd.callCount())
		require.Equal(t, []byte("a"), h.waiting(p))

		// A minute after the refused one, it is heard.
		h.clk.SetTime(t0.Add(time.Minute))
		h.lnd.deliver(p, RegisterMsgType, registerData(t, 3))
		h.regCount(RegAccepted, 1)
		got := h.waitSends(1)
		require.Equal(t, []sentMsg{sentOf(t, p, m)}, got)
	})
}
