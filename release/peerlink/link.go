package peerlink

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/internal/backoff"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/sirupsen/logrus"
)

var (
	// ErrNotConnected is returned by Send while the link is not up.
	ErrNotConnected = errors.New("peer link not connected")

	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("peer link already started")

	// ErrStopped is returned by Start after Stop.
	ErrStopped = errors.New("peer link stopped")

	// ErrNoInit means lnd's first message was not Init (BOLT 1).
	ErrNoInit = errors.New("first message from peer is not init")

	// ErrUnknownEvenMessage means lnd sent an even message type we do not
	// understand; BOLT 1 requires closing the connection.
	ErrUnknownEvenMessage = errors.New("unknown even message type")

	// ErrMalformedMessage means a message could not be decoded.
	ErrMalformedMessage = errors.New("malformed message")

	// ErrPingTimeout means lnd did not answer our ping in time.
	ErrPingTimeout = errors.New("no pong within ping timeout")

	// ErrPongMismatch means a pong did not carry the bytes we asked for.
	ErrPongMismatch = errors.New("pong length does not match ping")

	// ErrWrongPeer means the dialled node is not the configured lnd.
	ErrWrongPeer = errors.New("connected peer has unexpected identity key")

	// ErrReplaced means lnd started a new connection to the link, which
	// took the place of this one (lnd keeps one per peer).
	ErrReplaced = errors.New("replaced by a newer connection from lnd")
)

// maxInboundHandshakes bounds the Init exchanges on inbound connections
// running at once; only lnd's key gets that far.
const maxInboundHandshakes = 4

// pingPongBytes is how many pong bytes our liveness pings ask for; a pong
// of the right length is evidence the peer really parsed our ping.
const pingPongBytes = 16

// Link is holdd's peer connection to its own lnd. It dials, exchanges Init,
// answers pings, delivers onion messages and reconnects on any failure until
// stopped.
type Link struct {
	cfg Config
	log logrus.FieldLogger

	// features is our Init feature vector: data_loss_protect (lnd
	// disconnects peers without it) and onion messages, both optional.
	features *lnwire.RawFeatureVector

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// running counts the link's live goroutines, so tests can prove
	// Stop leaves none behind.
	running atomic.Int32

	// listener and inbound are set in listen mode: connections lnd
	// dialled, past the Init exchange, wait in inbound for the run loop
	// (the newest wins). handshakes bounds the Init exchanges in flight.
	listener   *brontide.Listener
	inbound    chan *session
	handshakes chan struct{}

	mu      sync.Mutex
	started bool
	stopped bool
	state   State
	sess    *session
	stats   Stats
}

// New validates cfg and returns a stopped Link.
func New(cfg Config) (*Link, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())

	return &Link{
		cfg: cfg,
		log: cfg.Logger.WithFields(logrus.Fields{
			"peer": fmt.Sprintf("%x@%s",
				cfg.PeerPubKey.SerializeCompressed(),
				cfg.PeerAddr),
		}),
		features: lnwire.NewRawFeatureVector(
			lnwire.DataLossProtectOptional,
			lnwire.OnionMessagesOptional,
		),
		ctx:        ctx,
		cancel:     cancel,
		inbound:    make(chan *session, 1),
		handshakes: make(chan struct{}, maxInboundHandshakes),
		stats: Stats{
			MessagesReceived: make(map[lnwire.MessageType]uint64),
		},
	}, nil
}

// Start launches the dial/reconnect loop and returns immediately. In
// listen mode it first binds the listener, so a bad address fails here.
func (l *Link) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()

	switch {
	case l.stopped:
		return ErrStopped
	case l.started:
		return ErrAlreadyStarted
	}

	if l.cfg.Listen != "" {
		ln, err := brontide.NewListener(
			&keychain.PrivKeyECDH{PrivKey: l.cfg.NodeKey},
			l.cfg.Listen, l.acceptKey,
		)
		if err != nil {
			return fmt.Errorf("peer link listen on %s: %w",
				l.cfg.Listen, err)
		}
		l.listener = ln
		l.goRoutine(l.acceptLoop)
	}
	l.started = true

	l.goRoutine(l.run)

	return nil
}

// ListenAddr returns the address the link listens on, nil when it dials.
func (l *Link) ListenAddr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()

	if l.listener == nil {
		return nil
	}

	return l.listener.Addr()
}

// advertiseAddr is the address lnd is asked to dial.
func (l *Link) advertiseAddr() string {
	if l.cfg.AdvertiseAddr != "" {
		return l.cfg.AdvertiseAddr
	}

	return l.listener.Addr().String()
}

// Stop closes the connection and waits for all goroutines to exit. It is
// safe to call more than once, and before Start, but not from OnMessage or
// OnStateChange, which run on the goroutines Stop waits for.
func (l *Link) Stop() error {
	l.mu.Lock()
	l.stopped = true
	sess := l.sess
	l.mu.Unlock()

	l.cancel()
	if sess != nil {
		sess.closeWith(ErrStopped)
	}
	if l.listener != nil {
		_ = l.listener.Close()
	}
	l.wg.Wait()

	// A connection handed over just as the run loop ended.
	select {
	case s := <-l.inbound:
		s.closeWith(ErrStopped)
	default:
	}

	return nil
}

// State returns the current connection state.
func (l *Link) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()

	return l.state
}

// NodeID returns the identity key lnd sees for us.
func (l *Link) NodeID() *btcec.PublicKey {
	return l.cfg.NodeKey.PubKey()
}

// Stats returns a snapshot of the link's counters.
func (l *Link) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()

	return l.stats.clone()
}

// Send writes msg to lnd. It returns ErrNotConnected while the link is not
// up. A failed write drops the link, since a partly written Noise frame
// leaves the stream unusable.
func (l *Link) Send(ctx context.Context, msg lnwire.Message) error {
	l.mu.Lock()
	sess := l.sess
	l.mu.Unlock()

	if sess == nil {
		return ErrNotConnected
	}

	return sess.write(ctx, msg)
}

// goRoutine runs f on a goroutine tracked by wg and running.
func (l *Link) goRoutine(f func()) {
	l.wg.Add(1)
	l.running.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.running.Add(-1)
		f()
	}()
}

// setState records s and reports it. Only the run goroutine changes state,
// so OnStateChange sees transitions in order.
func (l *Link) setState(s State) {
	l.mu.Lock()
	changed := l.state != s
	l.state = s
	l.mu.Unlock()

	if changed && l.cfg.OnStateChange != nil {
		l.cfg.OnStateChange(s)
	}
}

// run is the reconnect loop. Each attempt logs exactly one line when it
// ends, so a long outage costs one line per backoff interval.
func (l *Link) run() {
	defer l.setState(StateDisconnected)

	if l.listener != nil {
		l.runListening()
		return
	}

	attempt := 0
	for {
		l.setState(StateConnecting)
		connected, upFor, err := l.connectAndServe()
		if l.ctx.Err() != nil {
			return
		}
		l.setState(StateDisconnected)

		if connected && upFor >= l.cfg.BackoffResetAfter {
			attempt = 0
		}
		delay := backoff.Jittered(
			attempt, l.cfg.MinBackoff, l.cfg.MaxBackoff, backoff.RandJitter,
		)
		attempt++

		if connected {
			l.log.Warnf("Peer link to lnd lost after %v: %v; "+
				"reconnecting in %v", upFor.Round(time.Second),
				err, delay.Round(time.Millisecond))
		} else {
			l.log.Warnf("Peer link to lnd failed (attempt %d): %v; "+
				"retrying in %v", attempt, err,
				delay.Round(time.Millisecond))
		}

		select {
		case <-l.ctx.Done():
			return
		case <-l.cfg.Clock.TickAfter(delay):
		}
	}
}

// runListening is the loop of a listening link: wait for lnd to dial in
// (asking it to), serve the connection, repeat.
func (l *Link) runListening() {
	l.log.Infof("Peer link listening on %v; asking lnd to dial %s",
		l.listener.Addr(), l.advertiseAddr())

	// At start nothing is connected: ask at once. After a drop lnd
	// redials a permanent peer by itself; ask only if it does not.
	firstAsk := time.Duration(0)
	for {
		l.setState(StateConnecting)
		sess := l.awaitInbound(firstAsk)
		if sess == nil {
			return
		}
		upFor, err := l.serve(sess)
		if l.ctx.Err() != nil {
			return
		}
		l.setState(StateDisconnected)
		l.log.Warnf("Peer link to lnd lost after %v: %v; waiting for "+
			"lnd to dial again", upFor.Round(time.Second), err)
		firstAsk = l.cfg.RedialGrace
	}
}

// awaitInbound waits for a connection lnd dialled, asking lnd to dial
// after firstAsk and again while none comes: after MinBackoff..MaxBackoff
// when the request failed (lnd down, or it still counts the old link as
// connected), after RedialWait..MaxRedialWait when lnd accepted it. It
// returns nil once the link stops.
func (l *Link) awaitInbound(firstAsk time.Duration) *session {
	wait := firstAsk
	failed, unanswered := 0, 0
	for {
		select {
		case <-l.ctx.Done():
			return nil

		case sess := <-l.inbound:
			return sess

		case <-l.cfg.Clock.TickAfter(wait):
		}

		err := l.cfg.RequestDial(l.ctx, l.advertiseAddr())
		if l.ctx.Err() != nil {
			return nil
		}
		l.mu.Lock()
		l.stats.DialRequests++
		if err != nil {
			l.stats.DialRequestsFailed++
		}
		l.mu.Unlock()

		if err != nil {
			wait = backoff.Jittered(failed, l.cfg.MinBackoff,
				l.cfg.MaxBackoff, backoff.RandJitter)
			failed++
			l.log.Warnf("Asking lnd to dial the peer link at %s "+
				"failed (attempt %d): %v; asking again in %v",
				l.advertiseAddr(), failed, err,
				wait.Round(time.Millisecond))

			continue
		}

		failed = 0
		wait = backoff.Jittered(unanswered, l.cfg.RedialWait,
			l.cfg.MaxRedialWait, backoff.RandJitter)
		unanswered++
		l.log.Debugf("Asked lnd to dial the peer link at %s",
			l.advertiseAddr())
	}
}

// acceptKey is the listener's filter: only lnd's identity gets past the
// Noise handshake.
func (l *Link) acceptKey(remote *btcec.PublicKey) (bool, error) {
	if remote.IsEqual(l.cfg.PeerPubKey) {
		return true, nil
	}

	return false, ErrWrongPeer
}

// acceptLoop takes connections from the listener and exchanges Init on
// each off the loop, so one slow peer cannot hold up the next.
func (l *Link) acceptLoop() {
	for {
		c, err := l.listener.Accept()
		if l.ctx.Err() != nil {
			if c != nil {
				_ = c.Close()
			}
			return
		}
		if err != nil {
			// A failed Noise handshake or a key other than lnd's:
			// the listener closed it already.
			l.mu.Lock()
			l.stats.Rejected++
			l.mu.Unlock()
			l.log.Debugf("Refused inbound connection: %v", err)

			continue
		}

		conn := c.(*brontide.Conn)
		select {
		case l.handshakes <- struct{}{}:
		default:
			// Only lnd's key gets here, and lnd keeps one
			// connection per peer; more at once is not lnd.
			_ = conn.Close()
			l.countFailedAttempt()

			continue
		}
		l.goRoutine(func() {
			defer func() { <-l.handshakes }()
			l.handshakeInbound(conn)
		})
	}
}

// handshakeInbound exchanges Init on a connection lnd dialled and hands it
// to the run loop. lnd sends Init only once it has started a peer for the
// connection, and keeps one peer per key: a connection that gets that far
// is the one lnd uses, so it replaces any older one. A connection lnd
// opened and then gave up on (a redundant redial) never sends Init and
// never disturbs the live link.
func (l *Link) handshakeInbound(conn *brontide.Conn) {
	sess, err := l.handshake(conn)
	if err != nil {
		l.countFailedAttempt()
		if l.ctx.Err() == nil {
			l.log.Debugf("Inbound connection from lnd ended "+
				"before Init: %v", err)
		}

		return
	}

	l.mu.Lock()
	old := l.sess
	l.mu.Unlock()
	if old != nil {
		old.closeWith(ErrReplaced)
	}

	for {
		select {
		case l.inbound <- sess:
			return

		case stale := <-l.inbound:
			stale.closeWith(ErrReplaced)

		case <-l.ctx.Done():
			sess.closeWith(ErrStopped)
			return
		}
	}
}

// connectAndServe runs one dialled connection from dial to failure.
// connected reports whether Init was exchanged, upFor for how long the link
// was up.
func (l *Link) connectAndServe() (bool, time.Duration, error) {
	addr := &lnwire.NetAddress{
		IdentityKey: l.cfg.PeerPubKey,
		Address:     hostPort(l.cfg.PeerAddr),
	}
	local := &keychain.PrivKeyECDH{PrivKey: l.cfg.NodeKey}

	conn, err := l.cfg.Dial(l.ctx, local, addr)
	if err != nil {
		l.countFailedAttempt()
		return false, 0, fmt.Errorf("dial: %w", err)
	}

	sess, err := l.handshake(conn)
	if err != nil {
		l.countFailedAttempt()
		return false, 0, err
	}

	upFor, err := l.serve(sess)

	return true, upFor, err
}

// handshake checks the remote key and exchanges Init. On error the
// connection is closed.
func (l *Link) handshake(conn *brontide.Conn) (*session, error) {
	sess := newSession(conn, l.cfg.IOTimeout)

	// Stop may run before the session is published; closing the socket
	// here makes the handshake read return instead of waiting it out.
	stopClose := context.AfterFunc(l.ctx, func() {
		sess.closeWith(ErrStopped)
	})
	defer stopClose()

	if remote := conn.RemotePub(); remote == nil ||
		!remote.IsEqual(l.cfg.PeerPubKey) {

		sess.closeWith(ErrWrongPeer)
		return nil, ErrWrongPeer
	}

	if err := l.exchangeInit(sess); err != nil {
		err = sess.cause(err)
		sess.closeWith(err)

		return nil, err
	}

	return sess, nil
}

// serve runs an established session until it fails and returns how long
// it was up.
func (l *Link) serve(sess *session) (time.Duration, error) {
	defer sess.closeWith(nil)

	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return 0, ErrStopped
	}
	l.sess = sess
	l.stats.Connects++
	l.mu.Unlock()

	// Stop after the session was published closes it through l.sess;
	// this covers the window before.
	stopClose := context.AfterFunc(l.ctx, func() {
		sess.closeWith(ErrStopped)
	})
	defer stopClose()

	connectedAt := l.cfg.Clock.Now()
	l.setState(StateConnected)
	l.log.Infof("Peer link to lnd up (node id %x)",
		l.NodeID().SerializeCompressed())

	pingCtx, stopPinger := context.WithCancel(l.ctx)
	var pingerDone sync.WaitGroup
	pingerDone.Add(1)
	l.goRoutine(func() {
		defer pingerDone.Done()
		l.pinger(pingCtx, sess)
	})

	err := l.readLoop(sess)

	stopPinger()
	sess.closeWith(err)
	pingerDone.Wait()

	l.mu.Lock()
	l.sess = nil
	l.stats.Disconnects++
	l.mu.Unlock()

	return l.cfg.Clock.Now().Sub(connectedAt), sess.cause(err)
}

func (l *Link) countFailedAttempt() {
	l.mu.Lock()
	l.stats.FailedAttempts++
	l.mu.Unlock()
}

// exchangeInit sends our Init and requires lnd's Init as its first message.
func (l *Link) exchangeInit(sess *session) error {
	ourInit := lnwire.NewInitMessage(
		lnwire.NewRawFeatureVector(), l.features.Clone(),
	)
	if err := sess.write(l.ctx, ourInit); err != nil {
		return fmt.Errorf("send init: %w", err)
	}

	headerDeadline := time.Now().Add(l.cfg.HandshakeTimeout)
	msgType, msg, err := sess.read(headerDeadline)
	if err != nil {
		return fmt.Errorf("read init: %w", err)
	}
	remoteInit, ok := msg.(*lnwire.Init)
	if !ok {
		return fmt.Errorf("%w: got type %d (%v)", ErrNoInit,
			uint16(msgType), msgType)
	}

	// lnd requires bits we never use (channel features); the link only
	// needs lnd to forward onion messages, so warn rather than refuse.
	// Merge copies; the message's own vectors stay as received.
	features := lnwire.NewRawFeatureVector()
	if remoteInit.Features != nil {
		_ = features.Merge(remoteInit.Features)
	}
	if remoteInit.GlobalFeatures != nil {
		_ = features.Merge(remoteInit.GlobalFeatures)
	}
	fv := lnwire.NewFeatureVector(features, lnwire.Features)
	if !fv.HasFeature(lnwire.OnionMessagesOptional) {
		l.log.Warnf("lnd does not advertise onion messages (bit " +
			"38/39); it will not forward release messages to " +
			"holdd (lnd >= 0.21 required)")
	}

	return nil
}

// readLoop handles messages until the connection fails.
func (l *Link) readLoop(sess *session) error {
	for {
		msgType, msg, err := sess.read(time.Time{})
		if err != nil {
			return err
		}

		l.mu.Lock()
		l.stats.MessagesReceived[msgType]++
		l.mu.Unlock()

		switch m := msg.(type) {
		case nil:
			// BOLT 1: "it's ok to be odd".
			if msgType%2 == 0 {
				return fmt.Errorf("%w: %d", ErrUnknownEvenMessage,
					uint16(msgType))
			}
			l.ignore(msgType)

		case *lnwire.OnionMessage:
			l.cfg.OnMessage(l.ctx, m)

		case *lnwire.Ping:
			// BOLT 1: pings asking for more than MaxPongBytes
			// must be ignored.
			if int(m.NumPongBytes) > lnwire.MaxPongBytes {
				l.ignore(msgType)
				continue
			}
			pong := lnwire.NewPong(make([]byte, m.NumPongBytes))
			if err := sess.write(l.ctx, pong); err != nil {
				return fmt.Errorf("send pong: %w", err)
			}
			l.mu.Lock()
			l.stats.PingsAnswered++
			l.mu.Unlock()

		case *lnwire.Pong:
			sess.gotPong(len(m.PongBytes))

		case *lnwire.Warning:
			l.log.Warnf("lnd sent warning: %v", m.Warning())

		case *lnwire.Error:
			l.log.Errorf("lnd sent error: %v", m.Error())

		default:
			// Custom types (>= 32768) and protocol messages a
			// channel-less peer has no use for (gossip, a second
			// Init, ...).
			l.ignore(msgType)
		}
	}
}

func (l *Link) ignore(msgType lnwire.MessageType) {
	l.mu.Lock()
	l.stats.Ignored++
	l.mu.Unlock()

	l.log.Debugf("Ignoring message type %d (%v) from lnd",
		uint16(msgType), msgType)
}

// pinger pings lnd every PingInterval and drops the link if a pong does not
// follow within PingTimeout. lnd pings us too, but only answering those
// would not notice a link that died silently on our side.
func (l *Link) pinger(ctx context.Context, sess *session) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.cfg.Clock.TickAfter(l.cfg.PingInterval):
		}

		// Forget unsolicited pongs so only an answer to this ping
		// counts.
		select {
		case <-sess.pongs:
		default:
		}

		if err := sess.write(ctx, lnwire.NewPing(pingPongBytes)); err != nil {
			return
		}
		l.mu.Lock()
		l.stats.PingsSent++
		l.mu.Unlock()

		select {
		case <-ctx.Done():
			return

		case n := <-sess.pongs:
			if n != pingPongBytes {
				sess.closeWith(fmt.Errorf("%w: want %d bytes, "+
					"got %d", ErrPongMismatch,
					pingPongBytes, n))
				return
			}
			l.mu.Lock()
			l.stats.PongsMatched++
			l.mu.Unlock()

		case <-l.cfg.Clock.TickAfter(l.cfg.PingTimeout):
			sess.closeWith(fmt.Errorf("%w (%v)", ErrPingTimeout,
				l.cfg.PingTimeout))
			return
		}
	}
}

// session is one brontide connection. brontide.Conn's WriteMessage and Flush
// are not safe for concurrent use, hence writeMu.
type session struct {
	conn      *brontide.Conn
	ioTimeout time.Duration

	writeMu sync.Mutex

	// pongs carries the length of each received pong to the pinger.
	pongs chan int

	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

func newSession(conn *brontide.Conn, ioTimeout time.Duration) *session {
	return &session{
		conn:      conn,
		ioTimeout: ioTimeout,
		pongs:     make(chan int, 1),
	}
}

// closeWith closes the connection once, remembering why, so that the read
// loop's "use of closed connection" is reported as the real cause.
func (s *session) closeWith(err error) {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return
	}
	s.closed = true
	s.closeErr = err
	s.closeMu.Unlock()

	_ = s.conn.Close()
}

// cause prefers the reason the session was closed over err, which is often
// just the symptom of that close.
func (s *session) cause(err error) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()

	if s.closeErr != nil {
		return s.closeErr
	}

	return err
}

func (s *session) gotPong(n int) {
	select {
	case s.pongs <- n:
	default:
	}
}

// write encodes and sends msg. Any failure closes the session.
func (s *session) write(ctx context.Context, msg lnwire.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}

	var buf bytes.Buffer
	if _, err := lnwire.WriteMessage(&buf, msg, 0); err != nil {
		return fmt.Errorf("encode %v: %w", msg.MsgType(), err)
	}

	deadline := time.Now().Add(s.ioTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	err := s.conn.SetWriteDeadline(deadline)
	if err == nil {
		err = s.conn.WriteMessage(buf.Bytes())
	}
	if err == nil {
		_, err = s.conn.Flush()
	}
	if err != nil {
		err = fmt.Errorf("write %v: %w", msg.MsgType(), err)
		s.closeWith(err)

		return err
	}

	return nil
}

// read returns the next message. headerDeadline (zero for none) bounds the
// wait for the next header; the body must follow within ioTimeout. msg is
// nil, with a nil error, for a type lnwire does not know.
func (s *session) read(headerDeadline time.Time) (lnwire.MessageType,
	lnwire.Message, error) {

	if err := s.conn.SetReadDeadline(headerDeadline); err != nil {
		return 0, nil, err
	}
	pktLen, err := s.conn.ReadNextHeader()
	if err != nil {
		return 0, nil, fmt.Errorf("read header: %w", err)
	}

	err = s.conn.SetReadDeadline(time.Now().Add(s.ioTimeout))
	if err != nil {
		return 0, nil, err
	}
	raw, err := s.conn.ReadNextBody(make([]byte, pktLen))
	if err != nil {
		return 0, nil, fmt.Errorf("read body: %w", err)
	}

	if len(raw) < 2 {
		return 0, nil, fmt.Errorf("%w: %d byte message",
			ErrMalformedMessage, len(raw))
	}
	msgType := lnwire.MessageType(binary.BigEndian.Uint16(raw))

	msg, err := lnwire.ReadMessage(bytes.NewReader(raw), 0)
	var unknown *lnwire.UnknownMessage
	switch {
	case errors.As(err, &unknown):
		return msgType, nil, nil

	case err != nil:
		return msgType, nil, fmt.Errorf("%w: type %d: %v",
			ErrMalformedMessage, uint16(msgType), err)
	}

	return msgType, msg, nil
}
