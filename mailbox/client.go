package mailbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
)

// Client defaults.
const (
	// DefaultRegisterTimeout bounds one Register call.
	DefaultRegisterTimeout = 30 * time.Second

	// DefaultResendInterval is how long Register waits for an answer
	// before sending mailbox_register again. lnd may not have set up the
	// subscription yet when the first answer arrives, and a custom
	// message can be lost on a reconnect; registering is idempotent.
	DefaultResendInterval = 5 * time.Second
)

var (
	// ErrRefused is returned by Register when the LSP refuses; the
	// error names its reason.
	ErrRefused = errors.New("mailbox: registration refused")

	// ErrNoAnswer is returned by Register when no answer came in time.
	ErrNoAnswer = errors.New("mailbox: no answer to registration")

	// ErrSubscription is returned by Register when lnd's custom message
	// stream failed.
	ErrSubscription = errors.New("mailbox: custom message subscription " +
		"failed")
)

// Registration is an LSP's acceptance of our registration.
type Registration struct {
	// LSP is the LSP lnd's node key: the first hop of our paths.
	LSP route.Vertex

	// MailboxKey is the LSP holdd's node key: the hop after the LSP's
	// lnd, which stores our messages.
	MailboxKey *btcec.PublicKey

	// MaxAge is how long the mailbox keeps a message for us.
	MaxAge time.Duration

	// MaxMessages and MaxBytes bound what it keeps for us.
	MaxMessages uint64
	MaxBytes    uint64

	// RegisteredAt is when the acceptance arrived (our clock).
	RegisteredAt time.Time
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Messages is our lnd, which talks to the LSP's lnd.
	Messages CustomMessenger

	// Timeout bounds one Register call; ResendInterval spaces repeated
	// registration messages within it.
	Timeout        time.Duration
	ResendInterval time.Duration

	Clock  clock.Clock
	Logger logrus.FieldLogger
}

// Client registers this node with an LSP's mailbox (the recipient side).
type Client struct {
	cfg ClientConfig
	log logrus.FieldLogger
}

// NewClient validates cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	switch {
	case cfg.Messages == nil:
		return nil, fmt.Errorf("%w: custom messenger is required",
			ErrInvalidConfig)
	case cfg.Timeout < 0 || cfg.ResendInterval < 0:
		return nil, fmt.Errorf("%w: negative duration",
			ErrInvalidConfig)
	}
	setDefault(&cfg.Timeout, DefaultRegisterTimeout)
	setDefault(&cfg.ResendInterval, DefaultResendInterval)
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}

	return &Client{
		cfg: cfg,
		log: cfg.Logger,
	}, nil
}

// Register asks the LSP whose lnd node key is lsp to store our onion
// messages while we are offline, and waits for its answer. It subscribes to
// custom messages before sending, resends while no answer came, and takes
// only an answer from lsp that echoes this call's request id. Calling it
// again refreshes the registration.
func (c *Client) Register(ctx context.Context, lsp route.Vertex) (*Registration,
	error) {

	if _, err := btcec.ParsePubKey(lsp[:]); err != nil {
		return nil, fmt.Errorf("%w: LSP key: %w", ErrInvalidConfig, err)
	}
	var idBuf [8]byte
	if _, err := rand.Read(idBuf[:]); err != nil {
		return nil, err
	}
	req := RegisterMsg{RequestID: binary.BigEndian.Uint64(idBuf[:])}
	data, err := req.Encode()
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	stream, err := c.cfg.Messages.SubscribeCustomMessages(ctx,
		&lnrpc.SubscribeCustomMessagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSubscription, err)
	}
	answers := make(chan *RegisteredMsg, 1)
	failed := make(chan error, 1)
	go func() {
		ans, err := c.await(stream, lsp, req.RequestID)
		if err != nil {
			failed <- err
			return
		}
		answers <- ans
	}()

	for attempt := 1; ; attempt++ {
		_, err := c.cfg.Messages.SendCustomMessage(ctx,
			&lnrpc.SendCustomMessageRequest{
				Peer: lsp[:],
				Type: RegisterMsgType,
				Data: data,
			})
		if err != nil {
			// Not fatal: lnd may be reconnecting to the LSP.
			c.log.Debugf("Sending mailbox_register to %v "+
				"(attempt %d): %v", lsp, attempt, err)
		}

		select {
		case ans := <-answers:
			return c.accepted(lsp, ans)

		case err := <-failed:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w from %v: %w",
					ErrNoAnswer, lsp, ctx.Err())
			}
			return nil, fmt.Errorf("%w: %w", ErrSubscription, err)

		case <-ctx.Done():
			return nil, fmt.Errorf("%w from %v after %d attempt(s): "+
				"%w", ErrNoAnswer, lsp, attempt, ctx.Err())

		case <-c.cfg.Clock.TickAfter(c.cfg.ResendInterval):
		}
	}
}

// await reads the stream until lsp answers request id. Other messages,
// including undecodable answers, are skipped: anyone connected to our lnd
// can send us custom messages.
func (c *Client) await(stream lnrpc.Lightning_SubscribeCustomMessagesClient,
	lsp route.Vertex, id uint64) (*RegisteredMsg, error) {

	for {
		msg, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if msg.GetType() != RegisteredMsgType ||
			!bytes.Equal(msg.GetPeer(), lsp[:]) {

			continue
		}
		ans, err := DecodeRegistered(msg.GetData())
		if err != nil {
			c.log.Warnf("Ignoring answer from %v: %v", lsp, err)
			continue
		}
		if ans.RequestID != id {
			continue
		}

		return ans, nil
	}
}

func (c *Client) accepted(lsp route.Vertex, ans *RegisteredMsg) (*Registration,
	error) {

	if ans.Refused() {
		return nil, fmt.Errorf("%w by %v: %q", ErrRefused, lsp,
			ans.Error)
	}
	r := &Registration{
		LSP:          lsp,
		MailboxKey:   ans.MailboxKey,
		MaxAge:       ans.MaxAge,
		MaxMessages:  ans.MaxMessages,
		MaxBytes:     ans.MaxBytes,
		RegisteredAt: c.cfg.Clock.Now(),
	}
	c.log.Infof("Registered with the mailbox of %v (mailbox key %x, "+
		"messages kept %v)", lsp, ans.MailboxKey.SerializeCompressed(),
		ans.MaxAge)

	return r, nil
}
