package peerlink

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"
)

// listenConfig is testConfig for a link that lnd dials: no request is
// repeated unless a test shortens the waits.
func listenConfig(t *testing.T, lnd *fakeLnd, rec *recorder,
	reqs *dialRequests) Config {

	t.Helper()

	cfg := testConfig(t, lnd.pubKey(), "", rec)
	cfg.Listen = "127.0.0.1:0"
	cfg.RequestDial = reqs.request
	cfg.RedialGrace = time.Hour
	cfg.RedialWait = time.Hour

	return cfg
}

// TestListenLndDials: a listening link asks lnd to dial its own address,
// never dials lnd, and works over the connection lnd opened exactly as
// over one it dialled.
func TestListenLndDials(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	reqs := newDialRequests()
	l := startLink(t, listenConfig(t, lnd, rec, reqs))

	require.Equal(t, l.ListenAddr().String(), reqs.next(t))
	waitState(t, l, StateConnecting)

	c := lnd.dial(l.NodeID(), l.ListenAddr())
	rawInit := c.handshake()
	waitState(t, l, StateConnected)

	// The same Init as a dialling link (TestHandshakeAndInit): type 16,
	// no global features, bits 39 and 1.
	require.Equal(t, []byte{
		0x00, 0x10,
		0x00, 0x00,
		0x00, 0x05, 0x80, 0x00, 0x00, 0x00, 0x02,
	}, rawInit)

	m := randomOnionMessage(t, 300, 9)
	c.writeMsg(m)
	requireSameOnion(t, m, rec.next(t))

	c.writeMsg(lnwire.NewPing(7))
	pong, ok := c.readMsg().(*lnwire.Pong)
	require.True(t, ok)
	require.Len(t, pong.PongBytes, 7)

	reqs.none(t)
	lnd.noConnection()
	stats := l.Stats()
	require.EqualValues(t, 1, stats.Connects)
	require.EqualValues(t, 1, stats.DialRequests)
	require.Zero(t, stats.DialRequestsFailed)
}

// TestListenRefusesOtherKeys: only lnd's key gets a link; anybody else
// who reaches the port is dropped after Noise and counted.
func TestListenRefusesOtherKeys(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	reqs := newDialRequests()
	l := startLink(t, listenConfig(t, lnd, rec, reqs))
	reqs.next(t)

	stranger, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	dialAs(t, stranger, l.NodeID(), l.ListenAddr()).expectClosed()
	require.Eventually(t, func() bool {
		return l.Stats().Rejected == 1
	}, waitTimeout, 5*time.Millisecond)
	require.Equal(t, StateConnecting, l.State())

	c := lnd.dial(l.NodeID(), l.ListenAddr())
	c.handshake()
	waitState(t, l, StateConnected)
	require.EqualValues(t, 1, l.Stats().Connects)
}

// TestListenAsksAgainAfterDrop: when lnd drops the link and does not
// redial within the grace (lnd forgets a permanent peer it was told to
// disconnect), the link asks again, and reconnects when lnd dials.
func TestListenAsksAgainAfterDrop(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	reqs := newDialRequests()
	cfg := listenConfig(t, lnd, rec, reqs)
	cfg.RedialGrace = 10 * time.Millisecond
	l := startLink(t, cfg)

	addr := reqs.next(t)
	c1 := lnd.dial(l.NodeID(), l.ListenAddr())
	c1.handshake()
	waitState(t, l, StateConnected)

	require.NoError(t, c1.c.Close())
	require.Equal(t, addr, reqs.next(t))

	c2 := lnd.dial(l.NodeID(), l.ListenAddr())
	c2.handshake()
	waitState(t, l, StateConnected)
	m := randomOnionMessage(t, 64, 3)
	c2.writeMsg(m)
	requireSameOnion(t, m, rec.next(t))

	stats := l.Stats()
	require.EqualValues(t, 2, stats.Connects)
	require.EqualValues(t, 1, stats.Disconnects)
	require.EqualValues(t, 2, stats.DialRequests)
}

// TestListenLndRedialsWithinGrace: lnd redialling a permanent peer by
// itself costs no new request.
func TestListenLndRedialsWithinGrace(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	reqs := newDialRequests()
	l := startLink(t, listenConfig(t, lnd, rec, reqs))
	reqs.next(t)

	c1 := lnd.dial(l.NodeID(), l.ListenAddr())
	c1.handshake()
	waitState(t, l, StateConnected)
	require.NoError(t, c1.c.Close())
	require.Eventually(t, func() bool {
		return l.Stats().Disconnects == 1
	}, waitTimeout, 5*time.Millisecond)

	c2 := lnd.dial(l.NodeID(), l.ListenAddr())
	c2.handshake()
	waitState(t, l, StateConnected)
	reqs.none(t)
	require.EqualValues(t, 1, l.Stats().DialRequests)
}

// TestListenNewerConnectionReplaces: a connection lnd completes Init on
// is the one lnd uses, so it replaces the live one; a connection lnd
// abandons before Init (a redundant redial) leaves the live link alone.
func TestListenNewerConnectionReplaces(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	reqs := newDialRequests()
	l := startLink(t, listenConfig(t, lnd, rec, reqs))
	reqs.next(t)

	c1 := lnd.dial(l.NodeID(), l.ListenAddr())
	c1.handshake()
	waitState(t, l, StateConnected)

	c2 := lnd.dial(l.NodeID(), l.ListenAddr())
	c2.handshake()
	c1.expectClosed()
	require.Eventually(t, func() bool {
		s := l.Stats()
		return s.Connects == 2 && l.State() == StateConnected
	}, waitTimeout, 5*time.Millisecond)

	// Abandoned: reads the link's Init, closes without answering.
	c3 := lnd.dial(l.NodeID(), l.ListenAddr())
	c3.readRaw()
	require.NoError(t, c3.c.Close())
	require.Eventually(t, func() bool {
		return l.Stats().FailedAttempts == 1
	}, waitTimeout, 5*time.Millisecond)

	m := randomOnionMessage(t, 80, 4)
	c2.writeMsg(m)
	requireSameOnion(t, m, rec.next(t))
	stats := l.Stats()
	require.EqualValues(t, 2, stats.Connects)
	require.EqualValues(t, 1, stats.Disconnects)
	require.Equal(t, StateConnected, l.State())
}

// TestListenDialRequestFails: a refused request (lnd down, or still
// counting the old link as connected) is repeated with backoff.
func TestListenDialRequestFails(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	reqs := newDialRequests()
	reqs.failNext(2, errors.New("lnd is starting"))
	l := startLink(t, listenConfig(t, lnd, rec, reqs))

	for range 3 {
		reqs.next(t)
	}
	c := lnd.dial(l.NodeID(), l.ListenAddr())
	c.handshake()
	waitState(t, l, StateConnected)

	stats := l.Stats()
	require.EqualValues(t, 3, stats.DialRequests)
	require.EqualValues(t, 2, stats.DialRequestsFailed)
	reqs.none(t)
}

// TestListenStopDuringInboundHandshake: Stop does not wait for lnd's
// Init on a connection that is still exchanging it.
func TestListenStopDuringInboundHandshake(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	reqs := newDialRequests()
	cfg := listenConfig(t, lnd, rec, reqs)
	cfg.HandshakeTimeout = time.Hour
	l := startLink(t, cfg)
	reqs.next(t)

	c := lnd.dial(l.NodeID(), l.ListenAddr())
	c.readRaw()
	stopPromptly(t, l)
	c.expectClosed()
}

// TestListenAdvertiseAddr: lnd is asked to dial the advertised address
// when one is set (lnd on another host).
func TestListenAdvertiseAddr(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	reqs := newDialRequests()
	cfg := listenConfig(t, lnd, rec, reqs)
	cfg.AdvertiseAddr = "10.1.2.3:9736"
	startLink(t, cfg)
	require.Equal(t, "10.1.2.3:9736", reqs.next(t))
}

// TestListenStartFailsOnBusyPort: a listen address in use fails Start.
func TestListenStartFailsOnBusyPort(t *testing.T) {
	t.Parallel()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = busy.Close() })

	lnd := newFakeLnd(t)
	cfg := listenConfig(t, lnd, newRecorder(), newDialRequests())
	cfg.Listen = busy.Addr().String()
	l, err := New(cfg)
	require.NoError(t, err)
	require.Error(t, l.Start())
	require.NoError(t, l.Stop())
}
