package peerlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/sirupsen/logrus"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultMinBackoff        = 500 * time.Millisecond
	DefaultMaxBackoff        = 30 * time.Second
	DefaultBackoffResetAfter = time.Minute
	DefaultPingInterval      = time.Minute
	DefaultPingTimeout       = 30 * time.Second
	DefaultDialTimeout       = 15 * time.Second
	DefaultHandshakeTimeout  = 15 * time.Second
	DefaultIOTimeout         = 5 * time.Second

	// DefaultRedialGrace is how long, after a drop, the link leaves lnd
	// to redial it on its own (lnd retries a permanent peer after its
	// minbackoff, 1 s by default) before asking again.
	DefaultRedialGrace = 3 * time.Second

	// DefaultRedialWait and DefaultMaxRedialWait bound how long the link
	// waits for lnd to dial after lnd accepted the request, doubling per
	// unanswered request. lnd keeps retrying a permanent peer by itself,
	// so asking again is only a safety net; each request leaves lnd one
	// more connection request to retry.
	DefaultRedialWait    = 30 * time.Second
	DefaultMaxRedialWait = 10 * time.Minute
)

// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("invalid peerlink config")

// MessageHandler receives onion messages in arrival order. It runs on the
// read goroutine and must not block for long: while it runs, pings from lnd
// go unanswered.
type MessageHandler func(ctx context.Context, msg *lnwire.OnionMessage)

// DialFunc opens an authenticated brontide connection to addr.
type DialFunc func(ctx context.Context, local keychain.SingleKeyECDH,
	addr *lnwire.NetAddress) (*brontide.Conn, error)

// DialRequestFunc asks lnd to dial addr (host:port) and to keep redialling
// it: lnrpc ConnectPeer with perm set, for holdd's own node key.
type DialRequestFunc func(ctx context.Context, addr string) error

// Config configures a Link.
type Config struct {
	// NodeKey is holdd's own node key, the identity lnd sees.
	NodeKey *btcec.PrivateKey

	// PeerPubKey is lnd's identity key (from GetInfo).
	PeerPubKey *btcec.PublicKey

	// PeerAddr is lnd's p2p listen address, host:port.
	PeerAddr string

	// OnMessage receives every onion message lnd delivers.
	OnMessage MessageHandler

	// Listen, when set, is the address the link listens on for lnd to
	// dial it (host:port; port 0 picks a free one). The link then never
	// dials lnd itself: it asks lnd, through RequestDial, to dial it as a
	// permanent peer. lnd puts only peers that dial in and have no
	// channel into its restricted slots (num-restricted-slots, 100 by
	// default) and refuses them once those are taken; a peer lnd dialled
	// takes no slot, so whoever fills them cannot lock holdd out.
	Listen string

	// AdvertiseAddr is the host:port lnd is asked to dial; empty means
	// the address Listen bound (right when lnd and holdd share a host).
	AdvertiseAddr string

	// RequestDial asks lnd to dial the link; required with Listen.
	RequestDial DialRequestFunc

	// RedialGrace is how long after a drop the link waits for lnd's own
	// redial before asking again; RedialWait and MaxRedialWait bound the
	// wait after a request lnd accepted (see the defaults).
	RedialGrace, RedialWait, MaxRedialWait time.Duration

	// Dial opens the connection; tests may replace it. The default is
	// brontide.Dial over a net.Dialer with DialTimeout that is aborted
	// when the link stops.
	Dial DialFunc

	// MinBackoff and MaxBackoff bound the capped exponential reconnect
	// backoff (with jitter).
	MinBackoff, MaxBackoff time.Duration

	// BackoffResetAfter is how long a link must have stayed up for the
	// next reconnect to start again from MinBackoff.
	BackoffResetAfter time.Duration

	// PingInterval is how often we ping lnd to detect a dead link; the
	// link is dropped if no pong arrives within PingTimeout.
	PingInterval time.Duration
	PingTimeout  time.Duration

	// DialTimeout bounds the TCP connect of the default dialer.
	DialTimeout time.Duration

	// HandshakeTimeout bounds the wait for lnd's Init.
	HandshakeTimeout time.Duration

	// IOTimeout bounds each write, and the read of a message body once
	// its header has arrived (as lnd does for its own peers).
	IOTimeout time.Duration

	// Clock drives backoff and pings. Socket deadlines necessarily use
	// wall time.
	Clock clock.Clock

	// Logger receives the link's logs.
	Logger logrus.FieldLogger

	// OnStateChange, if set, is called on every state transition, in
	// order, from the link's goroutine.
	OnStateChange func(State)
}

// validate checks cfg and fills in defaults.
func (cfg *Config) validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig,
			fmt.Sprintf(format, args...))
	}

	switch {
	case cfg.NodeKey == nil:
		return invalid("node key is required")

	case cfg.PeerPubKey == nil:
		return invalid("peer (lnd) public key is required")

	case cfg.PeerPubKey.IsEqual(cfg.NodeKey.PubKey()):
		return invalid("peer public key equals our own node key; " +
			"holdd needs its own key, distinct from lnd's")

	case cfg.Listen == "" && cfg.PeerAddr == "":
		return invalid("peer (lnd p2p) address is required")

	case cfg.Listen != "" && cfg.RequestDial == nil:
		return invalid("a listening link needs a way to ask lnd to " +
			"dial it")

	case cfg.OnMessage == nil:
		return invalid("onion message handler is required")
	}

	if cfg.Listen == "" {
		host, port, err := net.SplitHostPort(cfg.PeerAddr)
		if err != nil {
			return invalid("peer address %q: %v", cfg.PeerAddr, err)
		}
		if host == "" || port == "" {
			return invalid("peer address %q must be host:port",
				cfg.PeerAddr)
		}
	} else {
		if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
			return invalid("listen address %q: %v", cfg.Listen, err)
		}
		if cfg.AdvertiseAddr != "" {
			host, port, err := net.SplitHostPort(cfg.AdvertiseAddr)
			if err != nil || host == "" || port == "" ||
				port == "0" {

				return invalid("advertised address %q must be "+
					"host:port", cfg.AdvertiseAddr)
			}
		}
	}

	durations := []struct {
		name string
		val  *time.Duration
		def  time.Duration
	}{
		{"min backoff", &cfg.MinBackoff, DefaultMinBackoff},
		{"max backoff", &cfg.MaxBackoff, DefaultMaxBackoff},
		{"backoff reset", &cfg.BackoffResetAfter, DefaultBackoffResetAfter},
		{"ping interval", &cfg.PingInterval, DefaultPingInterval},
		{"ping timeout", &cfg.PingTimeout, DefaultPingTimeout},
		{"dial timeout", &cfg.DialTimeout, DefaultDialTimeout},
		{"handshake timeout", &cfg.HandshakeTimeout,
			DefaultHandshakeTimeout},
		{"io timeout", &cfg.IOTimeout, DefaultIOTimeout},
		{"redial grace", &cfg.RedialGrace, DefaultRedialGrace},
		{"redial wait", &cfg.RedialWait, DefaultRedialWait},
		{"max redial wait", &cfg.MaxRedialWait, DefaultMaxRedialWait},
	}
	// A lone MaxBackoff below the default minimum is a request for faster
	// retries, not a conflict.
	if cfg.MinBackoff == 0 && cfg.MaxBackoff > 0 &&
		cfg.MaxBackoff < DefaultMinBackoff {

		cfg.MinBackoff = cfg.MaxBackoff
	}
	for _, d := range durations {
		if *d.val < 0 {
			return invalid("%s must not be negative, got %v",
				d.name, *d.val)
		}
		if *d.val == 0 {
			*d.val = d.def
		}
	}
	if cfg.RedialWait > cfg.MaxRedialWait {
		cfg.MaxRedialWait = cfg.RedialWait
	}
	if cfg.MinBackoff > cfg.MaxBackoff {
		return invalid("min backoff %v exceeds max backoff %v",
			cfg.MinBackoff, cfg.MaxBackoff)
	}

	if cfg.Dial == nil {
		cfg.Dial = defaultDial(cfg.DialTimeout)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}

	return nil
}

// hostPort is a net.Addr that keeps the configured host:port unresolved, so
// that a host name (lnd in a container, say) is resolved on every dial.
type hostPort string

func (a hostPort) Network() string { return "tcp" }
func (a hostPort) String() string  { return string(a) }

// defaultDial returns a DialFunc around brontide.Dial. brontide's handshake
// reads ignore any context, so the socket is closed when ctx ends to make
// Stop prompt even mid-handshake.
func defaultDial(timeout time.Duration) DialFunc {
	return func(ctx context.Context, local keychain.SingleKeyECDH,
		addr *lnwire.NetAddress) (*brontide.Conn, error) {

		var stopClose func() bool
		dialer := func(network, address string,
			timeout time.Duration) (net.Conn, error) {

			d := net.Dialer{Timeout: timeout}
			c, err := d.DialContext(ctx, network, address)
			if err != nil {
				return nil, err
			}
			stopClose = context.AfterFunc(ctx, func() {
				_ = c.Close()
			})

			return c, nil
		}

		conn, err := brontide.Dial(local, addr, timeout, dialer)
		if stopClose != nil && !stopClose() {
			// ctx ended and closed the socket; whatever Dial
			// returned is unusable.
			if conn != nil {
				_ = conn.Close()
			}
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, err
		}

		return conn, nil
	}
}
