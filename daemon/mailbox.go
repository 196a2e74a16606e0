package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/internal/backoff"
	"github.com/holdd/holdd/mailbox"
	"github.com/holdd/holdd/recipient"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// errMailboxNeedsPeerLink is returned for role=mailbox on a custom-message
// transport: the mailbox is a hop of its recipients' paths, and only the
// peer link lets lnd forward that hop to holdd.
var errMailboxNeedsPeerLink = errors.New("role=mailbox needs " +
	"transport=peer (lnd 0.21 or newer)")

// errServerNeedsPeerLink is returned for role=server on a custom-message
// transport: the static invoice server is measured only behind the peer
// link (with L on lnd 0.20.2 its registration and serve exchange failed
// on regtest), so it refuses to run where it was not shown to work.
var errServerNeedsPeerLink = errors.New("role=server needs " +
	"transport=peer (lnd 0.21 or newer)")

// mailboxRole is the mailbox role: it keeps onion messages for registered
// recipients that are offline and forwards them through lnd.
type mailboxRole struct {
	mb  *mailbox.Mailbox
	key *btcec.PublicKey

	// log is the daemon's own, for the line saying the role is on.
	log logrus.FieldLogger

	// queue takes messages from the transport's read loop and goes on,
	// so a slow store write or send never delays the peer link's pongs
	// or a release behind it.
	queue *mailbox.AsyncForwarder
}

// newMailboxRole builds the mailbox and the queue in front of it; nothing
// runs until Start.
func newMailboxRole(cfg *Config, lnd *rpcclient.Client, db *store.Store,
	mailboxKey *btcec.PublicKey, sender *onionsend.Sender, clk clock.Clock,
	logs *loggers) (*mailboxRole, error) {

	allow := make([]route.Vertex, 0, len(cfg.Mailbox.Allow))
	for _, k := range cfg.Mailbox.Allow {
		key, err := parseNodeKey(k)
		if err != nil {
			return nil, err
		}
		allow = append(allow, key)
	}
	mb, err := mailbox.New(mailbox.Config{
		Store:      db,
		Forwarder:  sender,
		Peers:      lnd.Lightning,
		Messages:   lnd.Lightning,
		Channels:   lnd.Lightning,
		MailboxKey: mailboxKey,
		Open:       cfg.Mailbox.Open,
		Allow:      allow,
		Limits: mailbox.Limits{
			MaxPerRecipient:      cfg.Mailbox.MaxPerRecipient,
			MaxBytesPerRecipient: cfg.Mailbox.MaxBytesPerRecipient,
			MaxTotal:             cfg.Mailbox.MaxTotal,
			MaxTotalBytes:        cfg.Mailbox.MaxTotalBytes,
			MaxAge:               cfg.Mailbox.MaxAge,
			// A short maxage is swept at least four times within it.
			SweepInterval: min(mailbox.DefaultSweepInterval,
				cfg.Mailbox.MaxAge/4),
		},
		Clock:  clk,
		Logger: logs.sub(subMBOX),
	})
	if err != nil {
		return nil, err
	}
	return &mailboxRole{
		mb:    mb,
		key:   mailboxKey,
		log:   logs.sub(subMBOX),
		queue: mailbox.NewAsyncForwarder(mb, 0),
	}, nil
}

func (r *mailboxRole) Name() string { return "mailbox role" }

// Start starts the mailbox; the queue in front of it needs no start.
func (r *mailboxRole) Start(ctx context.Context, _ func(error)) error {
	if err := r.mb.Start(ctx); err != nil {
		return fmt.Errorf("start mailbox: %w", err)
	}
	r.log.Infof("Mailbox on: keeping messages for registered "+
		"recipients (mailbox key %x)", r.key.SerializeCompressed())
	return nil
}

// Stop stops the queue, then the mailbox.
func (r *mailboxRole) Stop() error {
	r.queue.Stop()
	return r.mb.Stop()
}

// mailboxRegistrar keeps this node registered with its LSP's mailbox
// (recipient role with recipient.mailbox set). The mailbox delivers only
// after a registration that follows the recipient coming online, so holdd
// registers again whenever its own link to lnd comes up and whenever lnd
// reconnects to the LSP, plus every refreshInterval.
type mailboxRegistrar struct {
	client    *mailbox.Client
	lsp       route.Vertex
	lspKey    *btcec.PublicKey
	responder *recipient.Responder
	peers     peerEventSource
	clock     clock.Clock
	log       logrus.FieldLogger

	trigger chan struct{}

	// linkUp reports whether holdd's own link to lnd is up: a
	// registration makes the mailbox deliver at once, and our lnd drops
	// messages for a holdd that is not connected to it.
	linkUp func() bool
}

// peerEventSource is lnd's peer event stream and channel list.
type peerEventSource interface {
	SubscribePeerEvents(ctx context.Context,
		in *lnrpc.PeerEventSubscription,
		opts ...grpc.CallOption) (lnrpc.Lightning_SubscribePeerEventsClient,
		error)

	ListChannels(ctx context.Context, in *lnrpc.ListChannelsRequest,
		opts ...grpc.CallOption) (*lnrpc.ListChannelsResponse, error)
}

const (
	// mailboxRefreshInterval re-registers even when nothing seemed to
	// change, in case an event was missed.
	mailboxRefreshInterval = 10 * time.Minute

	mailboxRetryMin = 2 * time.Second
	mailboxRetryMax = time.Minute

	// channelPollInterval spaces checks for an active channel with the
	// LSP after a reconnect.
	channelPollInterval = 250 * time.Millisecond
)

func newMailboxRegistrar(lnd *rpcclient.Client, lspHex string,
	responder *recipient.Responder, linkUp func() bool, clk clock.Clock,
	log logrus.FieldLogger) (*mailboxRegistrar, error) {

	lsp, err := parseNodeKey(lspHex)
	if err != nil {
		return nil, err
	}
	lspKey, err := btcec.ParsePubKey(lsp[:])
	if err != nil {
		return nil, err
	}
	client, err := mailbox.NewClient(mailbox.ClientConfig{
		Messages: lnd.Lightning,
		Clock:    clk,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	responder.WantMailbox()
	return &mailboxRegistrar{
		client:    client,
		lsp:       lsp,
		lspKey:    lspKey,
		responder: responder,
		peers:     lnd.Lightning,
		clock:     clk,
		log:       log,
		trigger:   make(chan struct{}, 1),
		linkUp:    linkUp,
	}, nil
}

// Trigger asks for a registration soon; it never blocks.
func (r *mailboxRegistrar) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// run registers until ctx ends.
func (r *mailboxRegistrar) run(ctx context.Context) {
	var watcher sync.WaitGroup
	defer watcher.Wait()
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		r.watchLSP(ctx)
	}()
	retry := mailboxRetryMin
	for {
		for !r.linkUp() {
			select {
			case <-ctx.Done():
				return
			case <-r.trigger:
			case <-r.clock.TickAfter(time.Second):
			}
		}
		r.waitChannelActive(ctx)
		reg, err := r.client.Register(ctx, r.lsp)
		wait := mailboxRefreshInterval
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.Warnf("Mailbox registration with %v: %v; retrying "+
				"in %v", r.lsp, err, retry)
			wait, retry = retry, backoff.Next(retry, mailboxRetryMax)
		default:
			// The client logs the registration.
			retry = mailboxRetryMin
			r.responder.SetMailbox(&recipient.Mailbox{
				LSPKey: r.lspKey, MailboxKey: reg.MailboxKey,
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-r.trigger:
		case <-r.clock.TickAfter(wait):
		}
	}
}

// waitChannelActive returns once this node has an active channel with the
// LSP, or has none at all. Registering tells the mailbox to deliver, the
// delivered held_htlc_available makes the sender's LSP resume the HTLC at
// once, and that HTLC fails at our LSP if our channel with it is not yet
// re-established after a reconnect.
func (r *mailboxRegistrar) waitChannelActive(ctx context.Context) {
	for ctx.Err() == nil {
		if ok, err := mailbox.ChannelReady(ctx, r.peers, r.lsp); ok &&
			err == nil {

			return
		}
		select {
		case <-ctx.Done():
		case <-r.clock.TickAfter(channelPollInterval):
		}
	}
}

// watchLSP triggers a registration each time lnd reconnects to the LSP.
func (r *mailboxRegistrar) watchLSP(ctx context.Context) {
	retry := mailboxRetryMin
	for ctx.Err() == nil {
		stream, err := r.peers.SubscribePeerEvents(ctx,
			&lnrpc.PeerEventSubscription{})
		for err == nil {
			var ev *lnrpc.PeerEvent
			ev, err = stream.Recv()
			if err == nil && ev.Type == lnrpc.PeerEvent_PEER_ONLINE &&
				ev.PubKey == hex.EncodeToString(r.lsp[:]) {

				retry = mailboxRetryMin
				r.Trigger()
			}
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Debugf("Peer events: %v; resubscribing in %v", err, retry)
		select {
		case <-ctx.Done():
			return
		case <-r.clock.TickAfter(retry):
		}
		retry = backoff.Next(retry, mailboxRetryMax)
	}
}
