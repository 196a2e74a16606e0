package custommsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/holdd/holdd/internal/backoff"
	"github.com/holdd/holdd/internal/keyedlimit"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second

	// DefaultPeerBurst and DefaultPeerInterval limit the onion messages
	// one peer may have peeled: 20 at once, then 10 a second. Peeling
	// one asks lnd for up to two ECDHs (DeriveSharedKey), so a peer
	// without a limit could keep lnd's signer busy for everybody.
	DefaultPeerBurst    = 20
	DefaultPeerInterval = 100 * time.Millisecond

	// DefaultMaxTrackedPeers bounds the rate limiter's memory.
	DefaultMaxTrackedPeers = 1024
)

// Drop reasons the transport reports through OnDrop.
const (
	DropUndecodable = "undecodable"
	DropRateLimited = "rate_limited"
)

var (
	// ErrInvalidConfig is wrapped by every error New returns for a bad
	// Config.
	ErrInvalidConfig = errors.New("custommsg: invalid config")

	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("custommsg: transport already started")

	// ErrStopped is returned by Start and Send after Stop.
	ErrStopped = errors.New("custommsg: transport stopped")

	// ErrSend wraps the error of a failed SendCustomMessage call.
	ErrSend = errors.New("custommsg: SendCustomMessage failed")

	// ErrStreamEnded is logged when lnd ends the subscription without an
	// error.
	ErrStreamEnded = errors.New("custommsg: custom message stream ended")
)

// CustomMessageClient is the part of lnrpc.LightningClient the transport
// uses.
type CustomMessageClient interface {
	SubscribeCustomMessages(ctx context.Context,
		in *lnrpc.SubscribeCustomMessagesRequest,
		opts ...grpc.CallOption) (
		lnrpc.Lightning_SubscribeCustomMessagesClient, error)

	SendCustomMessage(ctx context.Context,
		in *lnrpc.SendCustomMessageRequest,
		opts ...grpc.CallOption) (*lnrpc.SendCustomMessageResponse,
		error)
}

// Config configures a Transport.
type Config struct {
	// Client is lnd's Lightning service.
	Client CustomMessageClient

	// OnMessage receives every decoded onion message, in arrival order,
	// on the receive goroutine (e.g. release.Intake.HandleOnionMessage).
	// While it runs no further message is read.
	OnMessage func(ctx context.Context, msg *lnwire.OnionMessage)

	// MinBackoff and MaxBackoff bound the doubling wait before a
	// resubscribe.
	MinBackoff, MaxBackoff time.Duration

	// Clock drives the backoff.
	Clock clock.Clock

	// Logger receives the transport's logs.
	Logger logrus.FieldLogger

	// OnStateChange, if set, is called from the receive goroutine each
	// time the subscription comes up or goes down, in order.
	OnStateChange func(connected bool)

	// OnDrop, if set, learns every type-513 message dropped before
	// OnMessage, with its reason (DropUndecodable, DropRateLimited), so
	// the drops show in the intake's counters. It must not block.
	OnDrop func(reason string)

	// PeerBurst and PeerInterval limit, per sending peer, the onion
	// messages handed to OnMessage (each costs lnd up to two
	// DeriveSharedKey calls): PeerBurst at once, then one per
	// PeerInterval. MaxTrackedPeers bounds how many peers the limit
	// remembers.
	PeerBurst       int
	PeerInterval    time.Duration
	MaxTrackedPeers int
}

// validate checks cfg and fills in defaults.
func (cfg *Config) validate() error {
	switch {
	case cfg.Client == nil:
		return fmt.Errorf("%w: lnd client is required",
			ErrInvalidConfig)

	case cfg.OnMessage == nil:
		return fmt.Errorf("%w: onion message handler is required",
			ErrInvalidConfig)

	case cfg.MinBackoff < 0 || cfg.MaxBackoff < 0:
		return fmt.Errorf("%w: negative backoff", ErrInvalidConfig)

	case cfg.PeerBurst < 0 || cfg.PeerInterval < 0 ||
		cfg.MaxTrackedPeers < 0:

		return fmt.Errorf("%w: negative peer rate limit",
			ErrInvalidConfig)
	}
	if cfg.PeerBurst == 0 {
		cfg.PeerBurst = DefaultPeerBurst
	}
	if cfg.PeerInterval == 0 {
		cfg.PeerInterval = DefaultPeerInterval
	}
	if cfg.MaxTrackedPeers == 0 {
		cfg.MaxTrackedPeers = DefaultMaxTrackedPeers
	}

	// A lone MaxBackoff below the default minimum asks for faster
	// retries, not a conflict.
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
		if cfg.MaxBackoff > 0 && cfg.MaxBackoff < cfg.MinBackoff {
			cfg.MinBackoff = cfg.MaxBackoff
		}
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.MinBackoff > cfg.MaxBackoff {
		return fmt.Errorf("%w: min backoff %v exceeds max backoff %v",
			ErrInvalidConfig, cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	return nil
}

// Stats are the transport's counters since New.
type Stats struct {
	// Received counts every custom message read from lnd, any type.
	Received uint64

	// Decoded counts onion messages handed to OnMessage.
	Decoded uint64

	// Undecodable counts type-513 messages that were not a valid
	// onion_message and were dropped.
	Undecodable uint64

	// RateLimited counts onion messages dropped because their peer was
	// over its rate.
	RateLimited uint64

	// Ignored counts custom messages of other types: lnd 0.18-0.20 has
	// no server-side filter and streams them all.
	Ignored uint64

	// Sent and SendFailed count Send calls by outcome.
	Sent       uint64
	SendFailed uint64

	// Subscriptions counts streams opened; StreamFailures counts failed
	// subscribe calls and streams that ended.
	Subscriptions  uint64
	StreamFailures uint64
}

// Transport receives and sends onion messages as lnd custom messages.
type Transport struct {
	cfg Config
	log logrus.FieldLogger

	// peers limits each peer's onion messages, which cost lnd ECDHs.
	peers *keyedlimit.Limiter[route.Vertex]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	started   bool
	stopped   bool
	connected bool
	stats     Stats
}

// New validates cfg and returns a stopped Transport.
func New(cfg Config) (*Transport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{
		cfg: cfg,
		log: cfg.Logger,
		peers: keyedlimit.New[route.Vertex](cfg.PeerBurst,
			cfg.PeerInterval, cfg.MaxTrackedPeers),
		ctx:    ctx,
		cancel: cancel,
	}, nil
}

// Start launches the subscribe loop and returns immediately. The loop
// resubscribes with capped backoff whenever the stream ends, until Stop.
func (t *Transport) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()

	switch {
	case t.stopped:
		return ErrStopped
	case t.started:
		return ErrAlreadyStarted
	}
	t.started = true

	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.run()
	}()
	return nil
}

// Stop ends the subscription and waits for the receive goroutine. It is
// safe to call more than once and before Start, but not from OnMessage or
// OnStateChange, which run on the goroutine it waits for.
func (t *Transport) Stop() error {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()

	t.cancel()
	t.wg.Wait()
	return nil
}

// Connected reports whether a subscription is open. lnd only reports a
// failed subscription on the stream's first read, so a stream that is
// about to fail may briefly count as connected.
func (t *Transport) Connected() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.connected
}

// Stats returns a snapshot of the counters.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Send sends msg to peer as a type-513 custom message:
// path_key (33) | u16 len | packet. lnd must run with
// protocol.custom-message=513 to accept the type.
func (t *Transport) Send(ctx context.Context, peer route.Vertex,
	msg *lnwire.OnionMessage) error {

	t.mu.Lock()
	stopped := t.stopped
	t.mu.Unlock()
	if stopped {
		return ErrStopped
	}

	data, err := EncodeOnionMessage(msg)
	if err != nil {
		return err
	}

	_, err = t.cfg.Client.SendCustomMessage(
		ctx, &lnrpc.SendCustomMessageRequest{
			Peer: peer[:],
			Type: uint32(lnwire.MsgOnionMessage),
			Data: data,
		},
	)

	t.mu.Lock()
	if err != nil {
		t.stats.SendFailed++
	} else {
		t.stats.Sent++
	}
	t.mu.Unlock()

	if err != nil {
		return fmt.Errorf("%w: to %v: %w", ErrSend, peer, err)
	}
	return nil
}

// run is the subscribe loop. Each stream that ends logs exactly one line.
func (t *Transport) run() {
	defer t.setConnected(false)

	attempt := 0
	for {
		healthy, err := t.subscribeAndServe()
		if t.ctx.Err() != nil {
			return
		}
		t.setConnected(false)

		// A stream that worked earns a fresh start; one that fails
		// at once keeps doubling the wait so a broken lnd is not
		// hammered.
		if healthy {
			attempt = 0
		}
		delay := backoff.Exponential(
			attempt, t.cfg.MinBackoff, t.cfg.MaxBackoff,
		)
		attempt++

		t.mu.Lock()
		t.stats.StreamFailures++
		t.mu.Unlock()
		t.log.Warnf("Custom message subscription to lnd ended: %v; "+
			"resubscribing in %v", err, delay)

		select {
		case <-t.ctx.Done():
			return
		case <-t.cfg.Clock.TickAfter(delay):
		}
	}
}

// subscribeAndServe runs one subscription until it fails. healthy reports
// whether it delivered a message or stayed up for MaxBackoff.
func (t *Transport) subscribeAndServe() (bool, error) {
	start := t.cfg.Clock.Now()
	stream, err := t.cfg.Client.SubscribeCustomMessages(
		t.ctx, &lnrpc.SubscribeCustomMessagesRequest{},
	)
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}

	t.mu.Lock()
	t.stats.Subscriptions++
	t.mu.Unlock()
	t.setConnected(true)

	gotMessage := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			healthy := gotMessage ||
				t.cfg.Clock.Now().Sub(start) >= t.cfg.MaxBackoff
			return healthy, streamErr(err)
		}
		gotMessage = true
		t.handle(msg)
	}
}

// streamErr names a clean end of stream, which gRPC reports as a bare EOF.
func streamErr(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrStreamEnded
	}
	return fmt.Errorf("receive: %w", err)
}

// handle counts msg and hands it on if it is a decodable onion message.
func (t *Transport) handle(msg *lnrpc.CustomMessage) {
	if msg.GetType() != uint32(lnwire.MsgOnionMessage) {
		t.count(func(s *Stats) { s.Received++; s.Ignored++ })
		return
	}

	// Anyone connected to lnd can send these: drops are counted and
	// logged at debug level only, as the intake's are.
	onionMsg, err := decodeOnionMessage(msg.GetData())
	if err != nil {
		t.count(func(s *Stats) { s.Received++; s.Undecodable++ })
		t.log.Debugf("Dropping onion message from %x: %v",
			msg.GetPeer(), err)
		t.drop(DropUndecodable)
		return
	}

	var peer route.Vertex
	copy(peer[:], msg.GetPeer())
	if !t.peers.Allow(peer, t.cfg.Clock.Now()) {
		t.count(func(s *Stats) { s.Received++; s.RateLimited++ })
		t.log.Debugf("Dropping onion message from %x: over the "+
			"peer's rate", msg.GetPeer())
		t.drop(DropRateLimited)
		return
	}

	t.count(func(s *Stats) { s.Received++; s.Decoded++ })
	t.cfg.OnMessage(t.ctx, onionMsg)
}

func (t *Transport) drop(reason string) {
	if t.cfg.OnDrop != nil {
		t.cfg.OnDrop(reason)
	}
}

func (t *Transport) count(f func(*Stats)) {
	t.mu.Lock()
	f(&t.stats)
	t.mu.Unlock()
}

// setConnected records the subscription state and reports changes. Only
// the run goroutine calls it, so OnStateChange sees changes in order.
func (t *Transport) setConnected(connected bool) {
	t.mu.Lock()
	changed := t.connected != connected
	t.connected = connected
	t.mu.Unlock()

	if changed && t.cfg.OnStateChange != nil {
		t.cfg.OnStateChange(connected)
	}
}
