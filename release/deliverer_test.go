package release

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

type sentMessage struct {
	peer    route.Vertex
	msgType uint32
	data    []byte
}

type recordingSender struct {
	mu   sync.Mutex
	sent []sentMessage
}

func (r *recordingSender) SendCustomMessage(_ context.Context, peer route.Vertex,
	msgType uint32, data []byte) error {

	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, sentMessage{peer, msgType, data})
	return nil
}

func testDeliverer(t *testing.T, sender CustomMessageSender) *Deliverer {
	t.Helper()
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	m, err := NewMinter(auth, privKey(1).PubKey(), privKey(2).PubKey())
	require.NoError(t, err)
	return NewDeliverer(DelivererConfig{Minter: m, Sender: sender,
		PathCount: 2, PathTTL: time.Hour})
}

func heldRecord(id uint64) plugin.HeldHTLC {
	var peer route.Vertex
	peer[0] = 0x02
	return plugin.HeldHTLC{
		Key:             plugin.CircuitKey{ChanID: 5, HtlcID: id},
		PaymentHash:     testClaim().PaymentHash,
		IncomingPeer:    peer,
		IncomingAmtMsat: 42_000,
		State:           plugin.StateHeld,
		HeldAt:          time.Unix(1_800_000_000, 0),
	}
}

func TestDelivererSendsThePathsTheAPIReturns(t *testing.T) {
	sender := &recordingSender{}
	d := testDeliverer(t, sender)
	rec := heldRecord(1)
	d.HoldEvent(plugin.Event{Kind: plugin.EventHeld, HTLC: rec})
	d.Wait()

	require.Len(t, sender.sent, 1)
	msg := sender.sent[0]
	require.Equal(t, route.Vertex(rec.IncomingPeer), msg.peer)
	require.Equal(t, PathDeliveryMsgType, msg.msgType)
	pd, err := DecodePathDelivery(msg.data)
	require.NoError(t, err)
	require.Equal(t, rec.Key, pd.Key)
	require.Equal(t, uint64(42_000), pd.AmountMsat)
	// Expiry: hold start + TTL, plus the rounding second.
	require.Equal(t, rec.HeldAt.Add(time.Hour+time.Second).Unix(),
		pd.ExpiresAt.Unix())

	api, err := d.Delivery(rec)
	require.NoError(t, err)
	again, err := api.Encode()
	require.NoError(t, err)
	require.Equal(t, msg.data, again)
}

// TestDelivererForgetsResolvedHTLCs: paths of an HTLC resolved before its
// delivery finished are not kept.
func TestDelivererForgetsResolvedHTLCs(t *testing.T) {
	d := testDeliverer(t, &recordingSender{})
	for i := range uint64(20) {
		rec := heldRecord(i)
		d.HoldEvent(plugin.Event{Kind: plugin.EventHeld, HTLC: rec})
		rec.State = plugin.StateResumed
		d.HoldEvent(plugin.Event{Kind: plugin.EventResumed, HTLC: rec})
	}
	d.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Empty(t, d.paths)
	require.Empty(t, d.live)
}

// TestDelivererUsesTheHTLCsPathExpiry: the paths carry the expiry the
// engine fixed for the HTLC (plugin.PathExpiry, here two weeks of blocks at
// twice the 10-minute target), not the hold start plus a fixed TTL, so
// they work until the HTLC's fail-back height.
func TestDelivererUsesTheHTLCsPathExpiry(t *testing.T) {
	sender := &recordingSender{}
	d := testDeliverer(t, sender)
	rec := heldRecord(1)
	rec.FailbackHeight = 802_016
	rec.PathExpiresAt = plugin.PathExpiry(rec.HeldAt, 800_000,
		rec.FailbackHeight, plugin.DefaultPathBlockInterval, 0,
		time.Time{})
	d.HoldEvent(plugin.Event{Kind: plugin.EventHeld, HTLC: rec})
	d.Wait()

	require.Len(t, sender.sent, 1)
	pd, err := DecodePathDelivery(sender.sent[0].data)
	require.NoError(t, err)
	require.Equal(t, rec.PathExpiresAt.Unix(), pd.ExpiresAt.Unix())
	require.Equal(t, rec.HeldAt.Add(2016*20*time.Minute+time.Second).Unix(),
		pd.ExpiresAt.Unix())
}
