package plugin

import (
	"context"
	"errors"
	"testing"

	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

// peerKey is a node key whose second byte is b.
func peerKey(b byte) route.Vertex {
	var p route.Vertex
	p[0] = 0x03
	p[1] = b
	return p
}

// TestAdmission: a flagged HTLC is held only for the LSP's clients: over a
// private channel, from an allow-listed peer, or over any channel with
// allowpublic. Any other is forwarded as it came (resumed, never held nor
// failed, nothing stored) and counted; so is one whose channel lnd cannot
// describe.
func TestAdmission(t *testing.T) {
	const (
		privateChan = 101
		publicChan  = 102
		otherChan   = 103
	)
	client, router, friend := peerKey(1), peerKey(2), peerKey(3)
	channels := map[uint64]fakeChannel{
		privateChan: {peer: client, private: true},
		publicChan:  {peer: router},
		otherChan:   {peer: friend},
	}

	tests := []struct {
		name      string
		admission Admission
		lookupErr error
		chanID    uint64
		want      Decision
		counted   string
		peer      route.Vertex
	}{
		{"private channel", Admission{}, nil, privateChan,
			Decision{Action: ActionHold}, "hold", client},
		{"public channel", Admission{}, nil, publicChan,
			Decision{Action: ActionResume}, DecisionNotClient, router},
		{"public channel, peer allow-listed",
			Admission{AllowPeers: map[route.Vertex]bool{router: true}},
			nil, publicChan, Decision{Action: ActionHold}, "hold",
			router},
		{"public channel, another peer allow-listed",
			Admission{AllowPeers: map[route.Vertex]bool{friend: true}},
			nil, publicChan, Decision{Action: ActionResume},
			DecisionNotClient, router},
		{"public channel, allowpublic", Admission{AllowPublic: true},
			nil, publicChan, Decision{Action: ActionHold}, "hold",
			router},
		{"private channel, allow-list of others",
			Admission{AllowPeers: map[route.Vertex]bool{friend: true}},
			nil, privateChan, Decision{Action: ActionHold}, "hold",
			client},
		{"unknown channel", Admission{AllowPublic: true}, nil, 999,
			Decision{Action: ActionResume}, DecisionChannelUnknown,
			route.Vertex{}},
		{"lnd cannot list channels", Admission{AllowPublic: true},
			errors.New("lnd unavailable"), privateChan,
			Decision{Action: ActionResume}, DecisionChannelUnknown,
			route.Vertex{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeChannels{channels: channels,
				err: tc.lookupErr}
			te := newTestEngineWith(t, newFakeStore(), nil,
				func(c *Config) {
					c.Channels = fc
					c.Admission = tc.admission
				})
			ctx := context.Background()
			h := flagged(key(tc.chanID, 1), hashOf(9), 50_000)

			require.Equal(t, tc.want, te.Intercept(ctx, h))
			require.Equal(t, uint64(1),
				te.Stats().Decisions[tc.counted])
			require.Empty(t, te.resolver.resolutions())

			rec, stored := te.store.get(h.Key)
			if tc.want.Action != ActionHold {
				require.False(t, stored)
				require.Zero(t, te.Stats().HeldCount)
				require.Empty(t, te.observer.kinds())
				return
			}
			require.True(t, stored)
			require.Equal(t, StateHeld, rec.State)
			require.Equal(t, route.Vertex(tc.peer), rec.IncomingPeer)
			require.Equal(t, []EventKind{EventHeld},
				te.observer.kinds())
		})
	}
}

// TestAdmissionNotForReplaysOrPlainForwards: the channel is looked up only
// for a new HTLC that asks for a hold; a plain forward costs nothing, and a
// held HTLC lnd offers again stays held whatever its channel says now.
func TestAdmissionNotForReplaysOrPlainForwards(t *testing.T) {
	fc := &fakeChannels{channels: map[uint64]fakeChannel{
		7: {peer: peerKey(7), private: true},
	}}
	te := newTestEngineWith(t, newFakeStore(), nil, func(c *Config) {
		c.Channels = fc
	})
	ctx := context.Background()

	plain := flagged(key(7, 1), hashOf(1), 10_000)
	plain.CustomRecords = nil
	require.Equal(t, ActionResume, te.Intercept(ctx, plain).Action)
	require.Zero(t, fc.calls)

	h := flagged(key(7, 2), hashOf(2), 10_000)
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)
	require.Equal(t, 1, fc.calls)

	fc.mu.Lock()
	fc.err = errors.New("lnd unavailable")
	fc.mu.Unlock()
	require.Equal(t, ActionHold, te.Intercept(ctx, h).Action)
	require.Equal(t, 1, fc.calls)
	require.Zero(t, te.Stats().Decisions[DecisionChannelUnknown])
}

// TestDefaultPerPeerMsatCap: out of the box one peer can have at most
// DefaultMaxHeldMsatPerPeer held; the next HTLC over it is failed back with
// cap_peer_msat, while another peer is unaffected.
func TestDefaultPerPeerMsatCap(t *testing.T) {
	require.Equal(t, uint64(10_000_000_000),
		DefaultPolicy().MaxHeldMsatPerPeer)

	te := newTestEngine(t, nil)
	ctx := context.Background()
	big := DefaultMaxHeldMsatPerPeer - 10_000

	require.Equal(t, ActionHold,
		te.Intercept(ctx, flagged(key(5, 1), hashOf(1), big)).Action)
	require.Equal(t, ActionHold,
		te.Intercept(ctx, flagged(key(5, 2), hashOf(2), 10_000)).Action)
	require.Equal(t, Decision{Action: ActionFail, Reason: FailCapPeerMsat},
		te.Intercept(ctx, flagged(key(5, 3), hashOf(3), 1_001)))
	// Channel 6 has another peer (fakePeers).
	require.Equal(t, ActionHold,
		te.Intercept(ctx, flagged(key(6, 1), hashOf(4), big)).Action)
	require.Equal(t, 3, te.Stats().HeldCount)
}
