package daemon

import (
	"context"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/asyncoffer"
	"github.com/holdd/holdd/eventfeed"
	"github.com/holdd/holdd/recipient"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/fn/v2"
)

// recipientRole is the recipient role: it answers held_htlc_available on
// this node's async-receive paths and, with recipient.mailbox set, keeps
// this node registered with its LSP's mailbox.
type recipientRole struct {
	responder *recipient.Responder
	feed      *eventfeed.Feed[recipient.Event]

	// registrar is nil without recipient.mailbox.
	registrar *mailboxRegistrar

	// offers is the async offer client; nil without recipient.server.
	offers *asyncoffer.Client

	goroutines *fn.GoroutineManager
}

// newRecipientRole builds the recipient role; nothing runs until Start.
// finalHop is where receive paths end (nil: at lnd). link is the release
// transport's state: the registrar registers only while it is up.
func newRecipientRole(cfg *Config, lnd *rpcclient.Client, db *store.Store,
	auth *release.Authenticator, finalHop *btcec.PublicKey,
	sender *onionsend.Sender, link *linkStatus, clk clock.Clock,
	logs *loggers) (*recipientRole, error) {

	feed := eventfeed.New[recipient.Event]()
	responder, err := recipient.New(recipient.Config{
		Auth:          auth,
		Store:         db,
		Sender:        releaseSender{sender},
		LndKey:        lnd.IdentityKey,
		HolddKey:      finalHop,
		PathTTL:       cfg.Recipient.PathExpiry,
		ReplyBurst:    cfg.Recipient.ReplyBurst,
		ReplyInterval: cfg.Recipient.ReplyInterval,
		OnEvent:       feed.Publish,
		Clock:         clk,
		Logger:        logs.sub(subRCPT),
	})
	if err != nil {
		return nil, err
	}
	role := &recipientRole{
		responder:  responder,
		feed:       feed,
		goroutines: fn.NewGoroutineManager(),
	}
	if cfg.Recipient.Mailbox != "" {
		role.registrar, err = newMailboxRegistrar(lnd,
			cfg.Recipient.Mailbox, responder, link.Connected, clk,
			logs.sub(subMBXC))
		if err != nil {
			return nil, err
		}
	}
	return role, nil
}

func (r *recipientRole) Name() string { return "recipient role" }

// Start starts the responder's reply workers, which send off the
// transport's read loop, and the mailbox registration.
func (r *recipientRole) Start(ctx context.Context, _ func(error)) error {
	r.responder.Start()
	if r.registrar != nil && !r.goroutines.Go(ctx, r.registrar.run) {
		r.responder.Stop()
		return ctx.Err()
	}
	if r.offers != nil {
		if err := r.offers.Start(ctx); err != nil {
			r.goroutines.Stop()
			r.responder.Stop()
			return err
		}
	}
	return nil
}

// Stop ends the registration, then the reply workers.
func (r *recipientRole) Stop() error {
	if r.offers != nil {
		r.offers.Stop()
	}
	r.goroutines.Stop()
	r.responder.Stop()
	return nil
}

// linkUp asks the registrar, if any, to register again: the release
// transport has just come up.
func (r *recipientRole) linkUp() {
	if r.registrar != nil {
		r.registrar.Trigger()
	}
	if r.offers != nil {
		r.offers.Trigger()
	}
}

// releaseSender sends release_held_htlc through lnd.
type releaseSender struct {
	s *onionsend.Sender
}

func (r releaseSender) SendRelease(ctx context.Context,
	replyPath *onionmsg.BlindedPath) (recipient.ReplyRoute, error) {

	route, err := r.s.Send(ctx, replyPath, nil, map[uint64][]byte{
		onionmsg.ReleaseHeldHTLCType: recipient.ReleaseHeldHTLCValue,
	})
	return recipient.ReplyRoute{Peer: route.Peer, Via: route.Via}, err
}
