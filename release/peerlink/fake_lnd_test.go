package peerlink

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"
)

// waitTimeout is a generous bound for anything the tests wait on; it only
// keeps a broken test from hanging, it asserts nothing about speed.
const waitTimeout = 10 * time.Second

// fakeLnd is a stand-in for lnd's p2p port built on lnd's own brontide
// listener, so the link under test speaks the real Noise protocol.
type fakeLnd struct {
	t     *testing.T
	key   *btcec.PrivateKey
	ln    *brontide.Listener
	conns chan *brontide.Conn
	done  chan struct{}
}

func newFakeLnd(t *testing.T) *fakeLnd {
	t.Helper()

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	ln, err := brontide.NewListener(
		&keychain.PrivKeyECDH{PrivKey: key}, "127.0.0.1:0",
		brontide.DisabledBanClosure,
	)
	require.NoError(t, err)

	f := &fakeLnd{
		t:     t,
		key:   key,
		ln:    ln,
		conns: make(chan *brontide.Conn, 16),
		done:  make(chan struct{}),
	}

	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				select {
				case <-f.done:
					return
				default:
					// A failed handshake (wrong key), keep
					// listening.
					continue
				}
			}
			f.conns <- c.(*brontide.Conn)
		}
	}()

	t.Cleanup(func() {
		close(f.done)
		_ = ln.Close()
		<-acceptDone
		close(f.conns)
		for c := range f.conns {
			_ = c.Close()
		}
	})

	return f
}

func (f *fakeLnd) addr() string {
	return f.ln.Addr().String()
}

func (f *fakeLnd) pubKey() *btcec.PublicKey {
	return f.key.PubKey()
}

// accept waits for the link's next connection.
func (f *fakeLnd) accept() *fakeConn {
	f.t.Helper()

	select {
	case c := <-f.conns:
		fc := &fakeConn{t: f.t, c: c}
		f.t.Cleanup(func() { _ = c.Close() })
		return fc

	case <-time.After(waitTimeout):
		f.t.Fatalf("link did not connect to fake lnd")
		return nil
	}
}

// noConnection asserts that no further connection is pending.
func (f *fakeLnd) noConnection() {
	f.t.Helper()

	select {
	case <-f.conns:
		f.t.Fatalf("unexpected new connection from link")
	default:
	}
}

// fakeConn is the fake lnd's side of one connection.
type fakeConn struct {
	t *testing.T
	c *brontide.Conn
}

func (c *fakeConn) readRaw() []byte {
	c.t.Helper()

	require.NoError(c.t, c.c.SetReadDeadline(time.Now().Add(waitTimeout)))
	raw, err := c.c.ReadNextMessage()
	require.NoError(c.t, err)

	// ReadNextMessage may reuse its buffer.
	return bytes.Clone(raw)
}

func (c *fakeConn) readMsg() lnwire.Message {
	c.t.Helper()

	msg, err := lnwire.ReadMessage(bytes.NewReader(c.readRaw()), 0)
	require.NoError(c.t, err)

	return msg
}

func (c *fakeConn) writeRaw(raw []byte) {
	c.t.Helper()

	require.NoError(c.t, c.c.SetWriteDeadline(time.Now().Add(waitTimeout)))
	require.NoError(c.t, c.c.WriteMessage(raw))
	_, err := c.c.Flush()
	require.NoError(c.t, err)
}

func (c *fakeConn) writeMsg(msg lnwire.Message) {
	c.t.Helper()

	var buf bytes.Buffer
	_, err := lnwire.WriteMessage(&buf, msg, 0)
	require.NoError(c.t, err)
	c.writeRaw(buf.Bytes())
}

// lndInit is an Init shaped like lnd v0.21's: it requires channel features
// the link never uses and offers onion messages.
func lndInit() *lnwire.Init {
	return lnwire.NewInitMessage(
		lnwire.NewRawFeatureVector(lnwire.DataLossProtectRequired),
		lnwire.NewRawFeatureVector(
			lnwire.DataLossProtectRequired,
			lnwire.StaticRemoteKeyRequired,
			lnwire.OnionMessagesOptional,
			lnwire.FeatureBit(153),
		),
	)
}

// handshake reads the link's Init, answers with lnd's and returns the raw
// Init the link sent.
func (c *fakeConn) handshake() []byte {
	c.t.Helper()

	raw := c.readRaw()
	c.writeMsg(lndInit())

	return raw
}

// expectClosed asserts that the link closes the connection without sending
// anything more.
func (c *fakeConn) expectClosed() {
	c.t.Helper()

	require.NoError(c.t, c.c.SetReadDeadline(time.Now().Add(waitTimeout)))
	raw, err := c.c.ReadNextMessage()
	require.Error(c.t, err, "link sent %x instead of closing", raw)

	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		c.t.Fatalf("link did not close the connection: %v", err)
	}
}

// dial connects to a listening link as lnd does when it dials a permanent
// peer: Noise with the fake's key, to the link's key.
func (f *fakeLnd) dial(linkKey *btcec.PublicKey, addr net.Addr) *fakeConn {
	f.t.Helper()

	return dialAs(f.t, f.key, linkKey, addr)
}

// dialAs dials a listening link with key.
func dialAs(t *testing.T, key *btcec.PrivateKey, linkKey *btcec.PublicKey,
	addr net.Addr) *fakeConn {

	t.Helper()

	c, err := brontide.Dial(
		&keychain.PrivKeyECDH{PrivKey: key},
		&lnwire.NetAddress{IdentityKey: linkKey, Address: addr},
		waitTimeout, net.DialTimeout,
	)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	return &fakeConn{t: t, c: c}
}

// dialRequests records the link's requests to be dialled and answers
// each with the next queued error (nil when none is queued).
type dialRequests struct {
	addrs chan string

	mu      sync.Mutex
	answers []error
}

func newDialRequests() *dialRequests {
	return &dialRequests{addrs: make(chan string, 64)}
}

// failNext makes the next n requests fail with err.
func (d *dialRequests) failNext(n int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()

	for range n {
		d.answers = append(d.answers, err)
	}
}

func (d *dialRequests) request(_ context.Context, addr string) error {
	d.mu.Lock()
	var err error
	if len(d.answers) > 0 {
		err, d.answers = d.answers[0], d.answers[1:]
	}
	d.mu.Unlock()

	d.addrs <- addr

	return err
}

// next waits for the link's next request and returns its address.
func (d *dialRequests) next(t *testing.T) string {
	t.Helper()

	select {
	case a := <-d.addrs:
		return a
	case <-time.After(waitTimeout):
		t.Fatalf("link did not ask lnd to dial it")
		return ""
	}
}

// none asserts that no request is pending.
func (d *dialRequests) none(t *testing.T) {
	t.Helper()

	select {
	case a := <-d.addrs:
		t.Fatalf("unexpected request to dial %s", a)
	default:
	}
}
