package peerlink

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
)

// recorder collects what the link hands out.
type recorder struct {
	msgs   chan *lnwire.OnionMessage
	mu     sync.Mutex
	states []State
}

func newRecorder() *recorder {
	return &recorder{msgs: make(chan *lnwire.OnionMessage, 64)}
}

func (r *recorder) onMessage(_ context.Context, m *lnwire.OnionMessage) {
	r.msgs <- m
}

func (r *recorder) onState(s State) {
	r.mu.Lock()
	defer r.mu.Unlock()

	r.states = append(r.states, s)
}

func (r *recorder) stateLog() []State {
	r.mu.Lock()
	defer r.mu.Unlock()

	return append([]State(nil), r.states...)
}

// waitLast waits until the last reported state is want; OnStateChange runs
// just after State() changes, so the two can be briefly apart.
func (r *recorder) waitLast(t *testing.T, want State) {
	t.Helper()

	require.Eventually(t, func() bool {
		states := r.stateLog()
		return len(states) > 0 && states[len(states)-1] == want
	}, waitTimeout, 5*time.Millisecond)
}

func (r *recorder) next(t *testing.T) *lnwire.OnionMessage {
	t.Helper()

	select {
	case m := <-r.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("no onion message delivered")
		return nil
	}
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel)

	return l
}

// testConfig returns a config for a link to addr/peer with fast backoff and
// pings that never fire unless a test asks for them.
func testConfig(t *testing.T, peer *btcec.PublicKey, addr string,
	rec *recorder) Config {

	t.Helper()

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	return Config{
		NodeKey:       key,
		PeerPubKey:    peer,
		PeerAddr:      addr,
		OnMessage:     rec.onMessage,
		MinBackoff:    5 * time.Millisecond,
		MaxBackoff:    20 * time.Millisecond,
		PingInterval:  time.Hour,
		PingTimeout:   time.Hour,
		Logger:        quietLogger(),
		OnStateChange: rec.onState,
	}
}

// startLink starts a link and, at cleanup, stops it and checks that none of
// its goroutines survive Stop.
func startLink(t *testing.T, cfg Config) *Link {
	t.Helper()

	l, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, l.Start())

	t.Cleanup(func() {
		stopPromptly(t, l)
		require.Zero(t, l.running.Load(), "goroutines left after Stop")
		require.Equal(t, StateDisconnected, l.State())
	})

	return l
}

// stopPromptly fails the test if Stop hangs (it would otherwise block the
// test binary until its global timeout).
func stopPromptly(t *testing.T, l *Link) {
	t.Helper()

	done := make(chan error, 1)
	go func() { done <- l.Stop() }()

	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatalf("Stop did not return")
	}
}

func waitState(t *testing.T, l *Link, want State) {
	t.Helper()

	require.Eventually(t, func() bool { return l.State() == want },
		waitTimeout, 5*time.Millisecond, "state never became %v", want)
}

func randomOnionMessage(t *testing.T, blobLen int, seed byte) *lnwire.OnionMessage {
	t.Helper()

	k, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	blob := make([]byte, blobLen)
	for i := range blob {
		blob[i] = seed + byte(i*7)
	}

	return lnwire.NewOnionMessage(k.PubKey(), blob)
}

func requireSameOnion(t *testing.T, want, got *lnwire.OnionMessage) {
	t.Helper()

	require.Equal(t, want.PathKey.SerializeCompressed(),
		got.PathKey.SerializeCompressed())
	require.Equal(t, want.OnionBlob, got.OnionBlob)
}

// rawMessage builds a wire message of any type, known to lnwire or not.
func rawMessage(msgType uint16, payload []byte) []byte {
	raw := binary.BigEndian.AppendUint16(nil, msgType)
	return append(raw, payload...)
}

func TestHandshakeAndInit(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	cfg := testConfig(t, lnd.pubKey(), lnd.addr(), rec)
	l := startLink(t, cfg)

	conn := lnd.accept()

	// Noise authenticated the link as holdd's node key.
	require.True(t, conn.c.RemotePub().IsEqual(cfg.NodeKey.PubKey()))
	require.True(t, l.NodeID().IsEqual(cfg.NodeKey.PubKey()))

	// type 16 | gflen 0 | flen 5 | features: bit 39 is the top bit of the
	// first of 5 bytes, bit 1 is 0x02 in the last; no TLVs.
	want := []byte{
		0x00, 0x10,
		0x00, 0x00,
		0x00, 0x05, 0x80, 0x00, 0x00, 0x00, 0x02,
	}
	require.Equal(t, want, conn.handshake())

	waitState(t, l, StateConnected)
	rec.waitLast(t, StateConnected)
	require.Equal(t,
		[]State{StateConnecting, StateConnected}, rec.stateLog())

	stats := l.Stats()
	require.EqualValues(t, 1, stats.Connects)
	require.EqualValues(t, 0, stats.Disconnects)
	require.EqualValues(t, 0, stats.FailedAttempts)
}

func TestPingPong(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	l := startLink(t, testConfig(t, lnd.pubKey(), lnd.addr(), rec))

	conn := lnd.accept()
	conn.handshake()
	waitState(t, l, StateConnected)

	conn.writeMsg(&lnwire.Ping{
		NumPongBytes: 7,
		PaddingBytes: []byte{1, 2, 3},
	})

	// type 19 | byteslen 7 | 7 zero bytes.
	require.Equal(t, []byte{
		0x00, 0x13, 0x00, 0x07, 0, 0, 0, 0, 0, 0, 0,
	}, conn.readRaw())

	// BOLT 1: a ping asking for more than 65531 bytes gets no pong. The
	// next message must be the pong for the following ping.
	conn.writeMsg(&lnwire.Ping{NumPongBytes: lnwire.MaxPongBytes + 1})
	conn.writeMsg(&lnwire.Ping{NumPongBytes: 0})
	require.Equal(t, []byte{0x00, 0x13, 0x00, 0x00}, conn.readRaw())

	require.Eventually(t, func() bool {
		return l.Stats().PingsAnswered == 2
	}, waitTimeout, 5*time.Millisecond)

	stats := l.Stats()
	require.EqualValues(t, 3, stats.MessagesReceived[lnwire.MsgPing])
	require.EqualValues(t, 1, stats.Ignored)
}

func TestOnionMessagesInOrder(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	l := startLink(t, testConfig(t, lnd.pubKey(), lnd.addr(), rec))

	conn := lnd.accept()
	conn.handshake()
	waitState(t, l, StateConnected)

	// 1366 = 1 + 33 + 1300 + 32, the regular onion message packet; the
	// others exercise other lengths, including the 32834-byte big packet.
	lengths := []int{1366, 1, 0, 32834, 1366}
	sent := make([]*lnwire.OnionMessage, 0, len(lengths))
	for i, n := range lengths {
		m := randomOnionMessage(t, n, byte(i))
		sent = append(sent, m)
		conn.writeMsg(m)
	}

	for _, want := range sent {
		requireSameOnion(t, want, rec.next(t))
	}

	require.EqualValues(t, len(lengths),
		l.Stats().MessagesReceived[lnwire.MsgOnionMessage])
}

func TestReconnectAfterPeerCloses(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	l := startLink(t, testConfig(t, lnd.pubKey(), lnd.addr(), rec))

	first := lnd.accept()
	first.handshake()
	waitState(t, l, StateConnected)

	m1 := randomOnionMessage(t, 100, 1)
	first.writeMsg(m1)
	requireSameOnion(t, m1, rec.next(t))

	require.NoError(t, first.c.Close())

	second := lnd.accept()
	second.handshake()
	waitState(t, l, StateConnected)

	m2 := randomOnionMessage(t, 200, 2)
	second.writeMsg(m2)
	requireSameOnion(t, m2, rec.next(t))

	stats := l.Stats()
	require.EqualValues(t, 2, stats.Connects)
	require.EqualValues(t, 1, stats.Disconnects)

	// Every reconnect passes through connecting again.
	rec.waitLast(t, StateConnected)
	states := rec.stateLog()
	require.Equal(t, []State{StateConnecting, StateConnected},
		states[:2])
	require.Equal(t, []State{StateConnecting, StateConnected},
		states[len(states)-2:])
	require.Contains(t, states[2:len(states)-2], StateDisconnected)
}

func TestFirstMessageNotInit(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	l := startLink(t, testConfig(t, lnd.pubKey(), lnd.addr(), rec))

	bad := lnd.accept()
	bad.readRaw()
	bad.writeMsg(lnwire.NewPing(4))
	bad.expectClosed()

	// The link never counted the bad connection as up and retries.
	good := lnd.accept()
	require.NotContains(t, rec.stateLog(), StateConnected)
	good.handshake()
	waitState(t, l, StateConnected)

	stats := l.Stats()
	require.EqualValues(t, 1, stats.FailedAttempts)
	require.EqualValues(t, 1, stats.Connects)
	require.EqualValues(t, 0, stats.Disconnects)
	require.EqualValues(t, 0, stats.PingsAnswered)
}

func TestUnknownMessages(t *testing.T) {
	t.Parallel()

	const (
		unknownOdd  = 101
		unknownEven = 100
		customEven  = 32768
		customOdd   = 32769
	)

	// Guard the premise: lnwire must not know the chosen types.
	for _, typ := range []lnwire.MessageType{unknownOdd, unknownEven} {
		_, err := lnwire.MakeEmptyMessage(typ)
		var unknown *lnwire.UnknownMessage
		require.ErrorAs(t, err, &unknown, "type %d", typ)
	}

	lnd := newFakeLnd(t)
	rec := newRecorder()
	l := startLink(t, testConfig(t, lnd.pubKey(), lnd.addr(), rec))

	conn := lnd.accept()
	conn.handshake()
	waitState(t, l, StateConnected)

	// Odd unknown and custom types (either parity) are ignored: an onion
	// message behind them is still delivered on the same connection.
	conn.writeRaw(rawMessage(unknownOdd, []byte{1, 2, 3}))
	conn.writeRaw(rawMessage(customEven, []byte{4}))
	conn.writeRaw(rawMessage(customOdd, nil))
	m := randomOnionMessage(t, 64, 9)
	conn.writeMsg(m)
	requireSameOnion(t, m, rec.next(t))

	stats := l.Stats()
	require.EqualValues(t, 3, stats.Ignored)
	require.EqualValues(t, 1, stats.MessagesReceived[unknownOdd])
	require.EqualValues(t, 1, stats.MessagesReceived[customEven])
	require.EqualValues(t, 1, stats.MessagesReceived[customOdd])
	require.EqualValues(t, 0, stats.Disconnects)
	lnd.noConnection()

	// An even unknown type closes the connection (BOLT 1).
	conn.writeRaw(rawMessage(unknownEven, []byte{5, 6}))
	conn.expectClosed()

	second := lnd.accept()
	second.handshake()
	waitState(t, l, StateConnected)

	stats = l.Stats()
	require.EqualValues(t, 1, stats.MessagesReceived[unknownEven])
	require.EqualValues(t, 1, stats.Disconnects)
	require.EqualValues(t, 2, stats.Connects)
}

func TestSend(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	cfg := testConfig(t, lnd.pubKey(), lnd.addr(), rec)

	l, err := New(cfg)
	require.NoError(t, err)
	require.ErrorIs(t, l.Send(context.Background(), lnwire.NewPing(0)),
		ErrNotConnected)
	require.NoError(t, l.Stop())

	l = startLink(t, cfg)
	conn := lnd.accept()
	conn.handshake()
	waitState(t, l, StateConnected)

	m := randomOnionMessage(t, 1366, 3)
	require.NoError(t, l.Send(context.Background(), m))

	got, ok := conn.readMsg().(*lnwire.OnionMessage)
	require.True(t, ok)
	requireSameOnion(t, m, got)

	// Once the link is down, Send refuses again.
	require.NoError(t, conn.c.Close())
	require.Eventually(t, func() bool {
		err := l.Send(context.Background(), m)
		return err != nil && l.Stats().Disconnects == 1
	}, waitTimeout, 5*time.Millisecond)
}

func TestSendNotConnectedWhileRetrying(t *testing.T) {
	t.Parallel()

	rec := newRecorder()
	peer, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	cfg := testConfig(t, peer.PubKey(), closedPort(t), rec)
	l := startLink(t, cfg)

	require.Eventually(t, func() bool {
		return l.Stats().FailedAttempts >= 2
	}, waitTimeout, 5*time.Millisecond)
	require.ErrorIs(t, l.Send(context.Background(), lnwire.NewPing(0)),
		ErrNotConnected)
	require.NotContains(t, rec.stateLog(), StateConnected)
}

// closedPort returns a 127.0.0.1 address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	return addr
}

func TestStopDuringBackoff(t *testing.T) {
	t.Parallel()

	rec := newRecorder()
	peer, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	// The test clock never advances, so the backoff never ends by itself.
	ticks := make(chan time.Duration, 16)
	cfg := testConfig(t, peer.PubKey(), closedPort(t), rec)
	cfg.Clock = clock.NewTestClockWithTickSignal(time.Unix(0, 0), ticks)
	cfg.MinBackoff = time.Hour
	cfg.MaxBackoff = time.Hour

	l, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, l.Start())

	select {
	case d := <-ticks:
		require.LessOrEqual(t, d, time.Hour)
		require.GreaterOrEqual(t, d, 30*time.Minute)
	case <-time.After(waitTimeout):
		t.Fatalf("link never entered backoff")
	}
	require.Equal(t, StateDisconnected, l.State())
	require.EqualValues(t, 1, l.Stats().FailedAttempts)

	stopPromptly(t, l)
	require.Zero(t, l.running.Load())

	// Stop is idempotent and the link cannot be restarted.
	require.NoError(t, l.Stop())
	require.ErrorIs(t, l.Start(), ErrStopped)
}

func TestStopDuringHandshake(t *testing.T) {
	t.Parallel()

	// A TCP server that accepts and then says nothing: the Noise
	// handshake would wait for act two until brontide's own timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		select {
		case c := <-accepted:
			_ = c.Close()
		default:
		}
	})

	rec := newRecorder()
	peer, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	l, err := New(testConfig(t, peer.PubKey(), ln.Addr().String(), rec))
	require.NoError(t, err)
	require.NoError(t, l.Start())

	var c net.Conn
	select {
	case c = <-accepted:
	case <-time.After(waitTimeout):
		t.Fatalf("link never dialled")
	}
	require.Equal(t, StateConnecting, l.State())

	stopPromptly(t, l)
	require.Zero(t, l.running.Load())

	// The link closed its socket: the server sees EOF, not a timeout.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitTimeout)))
	buf := make([]byte, 100)
	for {
		_, err = c.Read(buf)
		if err != nil {
			break
		}
	}
	require.ErrorIs(t, err, io.EOF)
	accepted <- c
}

func TestStartTwice(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	l := startLink(t, testConfig(t, lnd.pubKey(), lnd.addr(), newRecorder()))
	require.ErrorIs(t, l.Start(), ErrAlreadyStarted)
}

func TestWrongPeerKey(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	other, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	rec := newRecorder()
	l := startLink(t, testConfig(t, other.PubKey(), lnd.addr(), rec))

	// The Noise handshake fails for a key the listener does not hold.
	require.Eventually(t, func() bool {
		return l.Stats().FailedAttempts >= 2
	}, waitTimeout, 5*time.Millisecond)
	lnd.noConnection()
	require.NotContains(t, rec.stateLog(), StateConnected)
}

func TestLivenessPings(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	cfg := testConfig(t, lnd.pubKey(), lnd.addr(), rec)
	cfg.PingInterval = 10 * time.Millisecond
	cfg.PingTimeout = 500 * time.Millisecond
	l := startLink(t, cfg)

	// A peer that answers stays connected.
	conn := lnd.accept()
	conn.handshake()
	for range 3 {
		ping, ok := conn.readMsg().(*lnwire.Ping)
		require.True(t, ok)
		require.EqualValues(t, pingPongBytes, ping.NumPongBytes)
		conn.writeMsg(lnwire.NewPong(make([]byte, ping.NumPongBytes)))
	}
	require.Eventually(t, func() bool {
		return l.Stats().PongsMatched >= 3
	}, waitTimeout, 5*time.Millisecond)
	require.EqualValues(t, 0, l.Stats().Disconnects)

	// A peer that stops answering is dropped and the link reconnects.
	_, ok := conn.readMsg().(*lnwire.Ping)
	require.True(t, ok)
	conn.expectClosed()

	conn = lnd.accept()
	conn.handshake()

	// A pong of the wrong length also drops the link.
	ping, ok := conn.readMsg().(*lnwire.Ping)
	require.True(t, ok)
	conn.writeMsg(lnwire.NewPong(make([]byte, ping.NumPongBytes+1)))
	conn.expectClosed()

	lnd.accept()
	require.Eventually(t, func() bool {
		return l.Stats().Disconnects == 2
	}, waitTimeout, 5*time.Millisecond)
}

func TestOneLogLinePerFailedAttempt(t *testing.T) {
	t.Parallel()

	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)

	rec := newRecorder()
	peer, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	ticks := make(chan time.Duration, 16)
	start := time.Unix(1000, 0)
	testClock := clock.NewTestClockWithTickSignal(start, ticks)

	cfg := testConfig(t, peer.PubKey(), closedPort(t), rec)
	cfg.Clock = testClock
	cfg.Logger = logger
	cfg.MinBackoff = time.Second
	cfg.MaxBackoff = 4 * time.Second
	l := startLink(t, cfg)

	now := start
	for attempt := 1; attempt <= 4; attempt++ {
		var d time.Duration
		select {
		case d = <-ticks:
		case <-time.After(waitTimeout):
			t.Fatalf("no backoff after attempt %d", attempt)
		}

		require.EqualValues(t, attempt, l.Stats().FailedAttempts)

		entries := hook.AllEntries()
		require.Len(t, entries, attempt)
		require.Equal(t, logrus.WarnLevel, entries[attempt-1].Level)

		// Capped exponential with equal jitter: attempt n waits
		// in [b/2, b] with b = min(1s * 2^(n-1), 4s).
		b := min(time.Second<<(attempt-1), 4*time.Second)
		require.GreaterOrEqual(t, d, b/2)
		require.LessOrEqual(t, d, b)

		now = now.Add(d)
		testClock.SetTime(now)
	}
}

func TestOnionMessageBytesOnWire(t *testing.T) {
	t.Parallel()

	lnd := newFakeLnd(t)
	rec := newRecorder()
	l := startLink(t, testConfig(t, lnd.pubKey(), lnd.addr(), rec))

	conn := lnd.accept()
	conn.handshake()
	waitState(t, l, StateConnected)

	// Assemble type 513 by hand (path_key | u16 len | packet) so the
	// decode is checked against the BOLT layout, not lnwire's encoder.
	k, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	pathKey := k.PubKey().SerializeCompressed()
	packet := bytes.Repeat([]byte{0xab, 0xcd}, 683)

	raw := binary.BigEndian.AppendUint16(nil, 513)
	raw = append(raw, pathKey...)
	raw = binary.BigEndian.AppendUint16(raw, uint16(len(packet)))
	raw = append(raw, packet...)
	conn.writeRaw(raw)

	got := rec.next(t)
	require.Equal(t, pathKey, got.PathKey.SerializeCompressed())
	require.Equal(t, packet, got.OnionBlob)
}
