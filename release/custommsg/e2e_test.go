package custommsg

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// The intake's handler is what the transport is built to call.
var _ func(context.Context, *lnwire.OnionMessage) = (*release.Intake)(
	nil).HandleOnionMessage

// oneHopPath is a release path as used with lnd 0.18-0.20: a single hop at
// lnd's node key carrying pathID.
func oneHopPath(t testing.TB, nodeKey *btcec.PublicKey,
	pathID []byte) *onionmsg.BlindedPath {

	t.Helper()
	path, err := onionmsg.BuildBlindedPath(testKey(0x11), []onionmsg.Hop{{
		NodeID: nodeKey,
		Data:   record.NewFinalHopBlindedRouteData(nil, pathID),
	}}, true)
	require.NoError(t, err)
	return path
}

// TestEndToEndPeel sends a release_held_htlc over a one-hop path to lnd's
// node key through the custom-message stream, and peels it in the handler
// with the key held only by the (fake) signer.
func TestEndToEndPeel(t *testing.T) {
	lndKey := testKey(0x4c)
	signer := &fakeSigner{key: lndKey}
	peeler := onionmsg.NewPeeler(
		NewNodeKeyECDH(signer, lndKey.PubKey(), time.Second),
	)

	path := oneHopPath(t, lndKey.PubKey(), []byte("abc"))
	msg, err := onionmsg.BuildOnionMessage(testKey(0x33), path, nil,
		map[uint64][]byte{74: {0}})
	require.NoError(t, err)
	var body bytes.Buffer
	require.NoError(t, msg.Encode(&body, 0))

	type result struct {
		peeled *onionmsg.Peeled
		err    error
	}
	results := make(chan result, 1)
	client := newFakeLightning()
	startTransport(t, Config{
		Client: client,
		OnMessage: func(_ context.Context, m *lnwire.OnionMessage) {
			p, err := peeler.Peel(m)
			results <- result{p, err}
		},
	})
	stream := client.nextStream(t)
	stream.deliver(t, 32770, []byte("not for us"))
	stream.deliver(t, uint32(lnwire.MsgOnionMessage), body.Bytes())

	var res result
	select {
	case res = <-results:
	case <-time.After(testTimeout):
		t.Fatal("handler not called")
	}
	require.NoError(t, res.err)
	require.True(t, res.peeled.Final)
	require.Equal(t, []byte("abc"),
		res.peeled.Data.PathID.UnwrapOrFail(t).Val)
	require.Equal(t, map[uint64][]byte{74: {0}}, res.peeled.FinalTLVs)
	require.Nil(t, res.peeled.NextMessage)

	// Every secret came from lnd's node key, asked for by locator.
	calls := signer.calls()
	require.NotEmpty(t, calls)
	for _, c := range calls {
		require.EqualValues(t, keychain.KeyFamilyNodeKey,
			c.KeyDesc.KeyLoc.KeyFamily)
		require.EqualValues(t, 0, c.KeyDesc.KeyLoc.KeyIndex)
	}

	// The same message does not peel with any other node key.
	wrong := onionmsg.NewPeeler(NewNodeKeyECDH(
		&fakeSigner{key: testKey(0x4d)}, testKey(0x4d).PubKey(),
		time.Second,
	))
	_, err = wrong.Peel(msg)
	require.ErrorIs(t, err, onionmsg.ErrBadOnion)
}

type releaseCall struct {
	key  plugin.CircuitKey
	hash lntypes.Hash
}

type fakeReleaser struct {
	mu    sync.Mutex
	calls []releaseCall
	done  chan struct{}
}

func (r *fakeReleaser) Release(_ context.Context, key plugin.CircuitKey,
	hash lntypes.Hash, _ string) (plugin.ReleaseOutcome, error) {

	r.mu.Lock()
	r.calls = append(r.calls, releaseCall{key, hash})
	r.mu.Unlock()
	r.done <- struct{}{}
	return plugin.ReleaseMatched, nil
}

// TestEndToEndIntake wires the transport to release.Intake as holdd does on
// lnd 0.20: an authentic release is released, a message with a next hop is
// not for us.
func TestEndToEndIntake(t *testing.T) {
	lndKey := testKey(0x4c)
	now := time.Unix(1_800_000_000, 0)
	auth, err := release.NewAuthenticator(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	claim := release.Claim{
		Key:         plugin.CircuitKey{ChanID: 123456789, HtlcID: 42},
		PaymentHash: lntypes.Hash{1, 2, 3},
		ExpiresAt:   now.Add(time.Hour),
	}

	rel := &fakeReleaser{done: make(chan struct{}, 1)}
	log := logrus.New()
	log.SetOutput(io.Discard)
	intake := release.NewIntake(
		onionmsg.NewPeeler(NewNodeKeyECDH(
			&fakeSigner{key: lndKey}, lndKey.PubKey(), time.Second,
		)),
		auth, rel, clock.NewTestClock(now), log,
	)

	handled := make(chan struct{}, 2)
	client := newFakeLightning()
	tr := startTransport(t, Config{
		Client: client,
		OnMessage: func(ctx context.Context, m *lnwire.OnionMessage) {
			intake.HandleOnionMessage(ctx, m)
			handled <- struct{}{}
		},
	})
	stream := client.nextStream(t)

	// A path through lnd to someone else: lnd 0.20 cannot forward it.
	other := testKey(0x5e)
	twoHop, err := onionmsg.BuildBlindedPath(testKey(0x12),
		[]onionmsg.Hop{{
			NodeID: lndKey.PubKey(),
			Data: record.NewNonFinalBlindedRouteDataOnionMessage(
				fn.NewLeft[*btcec.PublicKey,
					lnwire.ShortChannelID](other.PubKey()),
				nil, nil,
			),
		}, {
			NodeID: other.PubKey(),
			Data: record.NewFinalHopBlindedRouteData(
				nil, auth.Mint(claim),
			),
		}}, true)
	require.NoError(t, err)

	good := oneHopPath(t, lndKey.PubKey(), auth.Mint(claim))
	for _, path := range []*onionmsg.BlindedPath{twoHop, good} {
		msg, err := onionmsg.BuildOnionMessage(testKey(0x34), path,
			nil, map[uint64][]byte{
				onionmsg.ReleaseHeldHTLCType: {0},
			})
		require.NoError(t, err)
		stream.deliver(t, uint32(lnwire.MsgOnionMessage),
			wireOnionMessage(msg.PathKey, msg.OnionBlob))
	}
	for range 2 {
		select {
		case <-handled:
		case <-time.After(testTimeout):
			t.Fatal("handler not called")
		}
	}

	rel.mu.Lock()
	require.Equal(t, []releaseCall{{claim.Key, claim.PaymentHash}},
		rel.calls)
	rel.mu.Unlock()
	// The matched release is the engine's to count; the intake counts
	// only the message it dropped.
	require.Equal(t, map[string]uint64{
		release.OutcomeNotForUs: 1,
	}, intake.Counts())
	require.Equal(t, uint64(2), tr.Stats().Decoded)
}
