package custommsg

import (
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
)

// dropLog records OnDrop calls.
type dropLog struct {
	mu      sync.Mutex
	reasons []string
}

func (d *dropLog) record(reason string) {
	d.mu.Lock()
	d.reasons = append(d.reasons, reason)
	d.mu.Unlock()
}

func (d *dropLog) get() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.reasons...)
}

// TestUndecodableDropIsQuiet: anyone connected to lnd can send 513, so an
// undecodable one is logged at debug level only (no line at info or
// above per message) and reported to OnDrop for the intake's counters.
func TestUndecodableDropIsQuiet(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	client := newFakeLightning()
	rec := newRecorder()
	drops := &dropLog{}
	tr := startTransport(t, Config{
		Client: client, OnMessage: rec.handle, Logger: logger,
		OnDrop: drops.record,
	})
	stream := client.nextStream(t)

	for _, tc := range malformedPayloads() {
		stream.deliver(t, uint32(lnwire.MsgOnionMessage), tc.data)
	}
	stream.deliver(t, uint32(lnwire.MsgOnionMessage),
		wireOnionMessage(testKey(0x06).PubKey(), pattern(3, 3)))
	rec.wait(t, 1)

	n := len(malformedPayloads())
	require.EqualValues(t, n, tr.Stats().Undecodable)
	want := make([]string, n)
	for i := range want {
		want[i] = DropUndecodable
	}
	require.Equal(t, want, drops.get())
	dropLines := 0
	for _, e := range hook.AllEntries() {
		if e.Message == "" {
			continue
		}
		if e.Level <= logrus.InfoLevel {
			require.NotContains(t, e.Message, "Dropping",
				"a drop logged at %v", e.Level)
		}
		if e.Level == logrus.DebugLevel {
			dropLines++
		}
	}
	require.GreaterOrEqual(t, dropLines, n)
}

// TestPeerRateLimit: each peer gets PeerBurst onion messages at once,
// then one per PeerInterval; the others are dropped before OnMessage (so
// before any DeriveSharedKey), counted and reported. Peers have separate
// buckets, and the limiter remembers at most MaxTrackedPeers of them.
func TestPeerRateLimit(t *testing.T) {
	clk := clock.NewTestClock(time.Unix(1_800_000_000, 0))
	client := newFakeLightning()
	rec := newRecorder()
	drops := &dropLog{}
	tr := startTransport(t, Config{
		Client: client, OnMessage: rec.handle, Clock: clk,
		OnDrop:    drops.record,
		PeerBurst: 2, PeerInterval: time.Second, MaxTrackedPeers: 3,
	})
	stream := client.nextStream(t)

	a, b := testKey(0x21).PubKey(), testKey(0x22).PubKey()
	msg := func(seed byte) []byte {
		return wireOnionMessage(testKey(seed).PubKey(),
			pattern(seed, 10))
	}
	for i := range 4 {
		stream.deliverFrom(t, a, uint32(lnwire.MsgOnionMessage), msg(byte(0x30+i)))
	}
	stream.deliverFrom(t, b, uint32(lnwire.MsgOnionMessage), msg(0x40))
	rec.wait(t, 3)
	got := rec.messages()
	require.Len(t, got, 3)
	require.Equal(t, pattern(0x30, 10), got[0].OnionBlob)
	require.Equal(t, pattern(0x31, 10), got[1].OnionBlob)
	require.Equal(t, pattern(0x40, 10), got[2].OnionBlob)
	require.Equal(t, []string{DropRateLimited, DropRateLimited},
		drops.get())

	// A second later a has one more.
	clk.SetTime(clk.Now().Add(time.Second))
	stream.deliverFrom(t, a, uint32(lnwire.MsgOnionMessage), msg(0x50))
	stream.deliverFrom(t, a, uint32(lnwire.MsgOnionMessage), msg(0x51))
	stream.deliverFrom(t, b, uint32(lnwire.MsgOnionMessage), msg(0x52))
	rec.wait(t, 2)
	got = rec.messages()
	require.Equal(t, pattern(0x50, 10), got[3].OnionBlob)
	require.Equal(t, pattern(0x52, 10), got[4].OnionBlob)

	s := tr.Stats()
	require.EqualValues(t, 5, s.Decoded)
	require.EqualValues(t, 3, s.RateLimited)
	require.EqualValues(t, 8, s.Received)

	// Many peers: the limiter's memory stays bounded.
	for i := range 20 {
		stream.deliverFrom(t, testKey(byte(0x80+i)).PubKey(),
			uint32(lnwire.MsgOnionMessage), msg(0x60))
	}
	rec.wait(t, 20)
	require.LessOrEqual(t, tr.peers.Len(), 3)
}
