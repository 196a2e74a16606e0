package plugin

import (
	"context"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// provenPeers is a SenderCapability over a fixed set.
type provenPeers map[route.Vertex]bool

func (p provenPeers) ReadsDeliveries(peer route.Vertex) bool { return p[peer] }

func newSenderTestEngine(t *testing.T, senders SenderCapability,
	mode UnprovenSenderMode) *testEngine {

	t.Helper()
	te := &testEngine{
		store:    newFakeStore(),
		resolver: newFakeResolver(),
		blocks:   newFakeBlocks(startHeight),
		clock:    clock.NewTestClock(testStart),
		observer: &recordingObserver{},
	}
	logger := logrus.New()
	logger.SetLevel(logrus.WarnLevel)
	e, err := New(Config{
		Policy:         DefaultPolicy(),
		Store:          te.store,
		Resolver:       te.resolver,
		Peers:          fakePeers{},
		Blocks:         te.blocks,
		Clock:          te.clock,
		Observer:       te.observer,
		Logger:         logger,
		TickInterval:   time.Second,
		Senders:        senders,
		UnprovenSender: mode,
	})
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, e.Stop()) })
	te.Engine = e
	return te
}

// TestUnprovenSenderIsNotHeld: a hold_htlc HTLC from a peer that has not
// shown it reads path deliveries is resumed (or failed, or held, as
// configured), with nothing stored unless held and one counter moved.
func TestUnprovenSenderIsNotHeld(t *testing.T) {
	fp := fakePeers{}
	proven, _ := fp.PeerOf(context.Background(), 5)
	senders := provenPeers{proven: true}

	tests := []struct {
		name     string
		mode     UnprovenSenderMode
		chanID   uint64
		want     Decision
		counter  string
		held     bool
		recorded bool
	}{
		{"proven peer is held", UnprovenResume, 5,
			Decision{Action: ActionHold}, "hold", true, true},
		{"unproven peer resumed", "", 6,
			Decision{Action: ActionResume},
			"resume_sender_not_capable", false, false},
		{"unproven peer failed", UnprovenFail, 6,
			Decision{Action: ActionFail,
				Reason: FailSenderNotCapable},
			"fail_sender_not_capable", false, false},
		{"unproven peer held on request", UnprovenHold, 6,
			Decision{Action: ActionHold}, "hold_unproven_sender",
			true, true},
		// A channel lnd cannot name a peer for is forwarded by the
		// admission check before the sender's proof is asked.
		{"unknown peer is forwarded", UnprovenHold, 0,
			Decision{Action: ActionResume},
			"channel_unknown", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newSenderTestEngine(t, senders, tc.mode)
			k := key(tc.chanID, 1)
			d := te.Intercept(context.Background(),
				flagged(k, hashOf(1), 50_000))
			require.Equal(t, tc.want, d)
			require.Equal(t, uint64(1),
				te.Stats().Decisions[tc.counter])
			_, stored := te.store.get(k)
			require.Equal(t, tc.recorded, stored)
			_, active := te.Active(k)
			require.Equal(t, tc.held, active)
		})
	}
}

// TestNoSenderCapabilityHoldsAll: without a SenderCapability the engine
// holds as before.
func TestNoSenderCapabilityHoldsAll(t *testing.T) {
	te := newSenderTestEngine(t, nil, UnprovenFail)
	d := te.Intercept(context.Background(),
		flagged(key(6, 1), hashOf(1), 50_000))
	require.Equal(t, Decision{Action: ActionHold}, d)
}

func TestParseUnprovenSenderMode(t *testing.T) {
	for in, want := range map[string]UnprovenSenderMode{
		"": UnprovenResume, "resume": UnprovenResume,
		"fail": UnprovenFail, "hold": UnprovenHold,
	} {
		got, err := ParseUnprovenSenderMode(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := ParseUnprovenSenderMode("drop")
	require.ErrorIs(t, err, ErrInvalidPolicy)
}

// TestUnprovenSenderInsideMarginIsForwarded: an HTLC of an unproven sender
// whose fail-back height has already passed is still forwarded in the
// default mode: it will never be held, so the hold's margin must not fail
// it. A proven sender's HTLC inside the margin is failed as before.
func TestUnprovenSenderInsideMarginIsForwarded(t *testing.T) {
	fp := fakePeers{}
	proven, _ := fp.PeerOf(context.Background(), 5)
	senders := provenPeers{proven: true}

	tests := []struct {
		name    string
		chanID  uint64
		want    Decision
		counter string
	}{
		{"unproven forwarded", 6, Decision{Action: ActionResume},
			"resume_sender_not_capable"},
		{"proven failed by the margin", 5,
			Decision{Action: ActionFail, Reason: FailExpiryMargin},
			"fail_" + string(FailExpiryMargin)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newSenderTestEngine(t, senders, UnprovenResume)
			h := flagged(key(tc.chanID, 1), hashOf(1), 50_000)
			h.AutoFailHeight = startHeight + 5
			d := te.Intercept(context.Background(), h)
			require.Equal(t, tc.want, d)
			require.Equal(t, uint64(1),
				te.Stats().Decisions[tc.counter])
			_, stored := te.store.get(h.Key)
			require.False(t, stored)
		})
	}
}
