package recipient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/internal/keyedlimit"
	"github.com/holdd/holdd/internal/workqueue"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
)

// Outcomes of a held_htlc_available message, as counted and reported.
const (
	OutcomeReplied     = "replied"
	OutcomeNoReplyPath = "no_reply_path"
	OutcomeMalformed   = "malformed_path_id"
	OutcomeForged      = "forged"
	OutcomeExpired     = "expired"
	OutcomeUnknownPath = "unknown_path"
	OutcomeRevoked     = "revoked"
	OutcomeRateLimited = "rate_limited"
	OutcomeSendFailed  = "send_failed"
	OutcomeStoreError  = "store_error"

	// OutcomeQueued is what HandleHeldHTLCAvailable returns for a message
	// handed to the reply workers; its final outcome comes later, in the
	// counts and the event. OutcomeBusy counts messages dropped because
	// the reply queue was full.
	OutcomeQueued = "queued"
	OutcomeBusy   = "dropped_busy"
)

// Reply queue defaults: replies wait here, off the transport's read loop,
// for a few workers. Each reply takes at most SendTimeout.
const (
	DefaultReplyQueueDepth = 256
	DefaultReplyWorkers    = 4
)

// ReleaseHeldHTLCValue is the value holdd writes for release_held_htlc: LDK
// drops the message with an empty value, so it is an empty TLV stream's
// length byte.
var ReleaseHeldHTLCValue = []byte{0x00}

// ReplyRoute says how a reply left.
type ReplyRoute struct {
	// Peer is the peer of our lnd the reply was handed to.
	Peer route.Vertex

	// Via is true when that peer is not the reply path's introduction
	// node but an LSP that forwards to it.
	Via bool
}

// ReplySender sends release_held_htlc along a reply path through lnd.
type ReplySender interface {
	SendRelease(ctx context.Context,
		replyPath *onionmsg.BlindedPath) (ReplyRoute, error)
}

// Store keeps the receive paths.
type Store interface {
	InsertReceivePath(ctx context.Context, p ReceivePath) error
	GetReceivePath(ctx context.Context, id [8]byte) (ReceivePath,
		error)
	ListReceivePaths(ctx context.Context, now time.Time,
		all bool) ([]ReceivePath, error)
	RevokeReceivePath(ctx context.Context, id [8]byte, now time.Time) error
	RecordReceiveReply(ctx context.Context, id [8]byte, at time.Time) error
}

// Event is one held_htlc_available message and what holdd did with it.
type Event struct {
	// PathID is the receive path it came over; zero when the path_id
	// did not authenticate.
	PathID  [8]byte
	Outcome string

	// Route is set when a reply was sent.
	Route ReplyRoute

	// Err is why a known path got no reply, if there was an error.
	Err error
	At  time.Time
}

// Config configures a Responder.
type Config struct {
	Auth   *release.Authenticator
	Store  Store
	Sender ReplySender

	// LndKey is our lnd's node key; HolddKey is holdd's peer-link key,
	// or nil when lnd is the paths' final hop (custom-message transport).
	LndKey   *btcec.PublicKey
	HolddKey *btcec.PublicKey

	// PathTTL is how long new paths work unless the request says.
	PathTTL time.Duration

	// ReplyBurst and ReplyInterval rate-limit replies per path: up to
	// ReplyBurst at once, then one per ReplyInterval. A published path is
	// shared by every payer, so the limit bounds how far a stranger can
	// use holdd to send messages, not how many payments succeed.
	ReplyBurst    int
	ReplyInterval time.Duration

	// SendTimeout bounds one reply.
	SendTimeout time.Duration

	// ReplyQueueDepth and ReplyWorkers bound the replies waiting to be
	// sent and the sends running at once. A reply is sent off the
	// transport's read loop, so a reply path through a stalled node
	// never holds up lnd's pings or other messages; a message that finds
	// the queue full is dropped and counted as OutcomeBusy.
	ReplyQueueDepth int
	ReplyWorkers    int

	// OnEvent, if set, learns every handled message. It must not block.
	OnEvent func(Event)

	Clock  clock.Clock
	Logger logrus.FieldLogger
}

// Responder is the recipient role.
type Responder struct {
	cfg     Config
	limiter *keyedlimit.Limiter[[8]byte]
	replies *workqueue.Queue[reply]

	mu     sync.Mutex
	mb     *Mailbox
	wantMB bool
	counts map[string]uint64

	// newSessionKey is swapped in tests for reproducible paths.
	newSessionKey func() (*btcec.PrivateKey, error)
}

// New creates a Responder.
func New(cfg Config) (*Responder, error) {
	if cfg.Auth == nil || cfg.Store == nil || cfg.Sender == nil ||
		cfg.LndKey == nil {

		return nil, errors.New("recipient: needs an authenticator, a " +
			"store, a sender and lnd's key")
	}
	if cfg.PathTTL == 0 {
		cfg.PathTTL = 30 * 24 * time.Hour
	}
	if cfg.ReplyBurst < 1 {
		cfg.ReplyBurst = 20
	}
	if cfg.ReplyInterval == 0 {
		cfg.ReplyInterval = 3 * time.Second
	}
	if cfg.SendTimeout == 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.ReplyQueueDepth < 1 {
		cfg.ReplyQueueDepth = DefaultReplyQueueDepth
	}
	if cfg.ReplyWorkers < 1 {
		cfg.ReplyWorkers = DefaultReplyWorkers
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	r := &Responder{
		cfg: cfg,
		limiter: keyedlimit.New[[8]byte](cfg.ReplyBurst,
			cfg.ReplyInterval, maxLimitedPaths),
		counts:        make(map[string]uint64),
		newSessionKey: btcec.NewPrivateKey,
	}
	r.replies = workqueue.New(cfg.ReplyQueueDepth, cfg.ReplyWorkers,
		r.sendReply)

	return r, nil
}

// Start starts the reply workers.
func (r *Responder) Start() {
	r.replies.Start()
}

// Stop stops the reply workers, cancelling replies being sent; replies
// still queued are not sent, as a message reaching a stopping holdd would
// not be.
func (r *Responder) Stop() {
	r.replies.Stop()
}

// reply is a held_htlc_available that passed the checks the read loop
// makes, waiting for a worker.
type reply struct {
	pathID    [8]byte
	replyPath *onionmsg.BlindedPath
	at        time.Time
}

// SetMailbox makes paths minted from now on run through an LSP's mailbox
// (nil: straight to our lnd). Paths minted before keep working.
func (r *Responder) SetMailbox(mb *Mailbox) {
	r.mu.Lock()
	r.mb = mb
	r.mu.Unlock()
}

// WantMailbox makes AddPaths refuse with ErrMailboxPending until
// SetMailbox names the mailbox: a path minted without it would not reach
// this node while it is offline, which the operator asked for.
func (r *Responder) WantMailbox() {
	r.mu.Lock()
	r.wantMB = true
	r.mu.Unlock()
}

// MailboxState returns the mailbox paths run through, and whether one is
// wanted.
func (r *Responder) MailboxState() (*Mailbox, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mb, r.wantMB
}

func (r *Responder) mailbox() (*Mailbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wantMB && r.mb == nil {
		return nil, ErrMailboxPending
	}
	return r.mb, nil
}

// HandleHeldHTLCAvailable answers a held_htlc_available message that
// arrived with pathID and replyPath. It runs on the transport's read loop,
// so it only makes the checks that need no store or network: the path_id's
// MAC and expiry, a reply path, the path's rate. A message that passes is
// queued for a reply worker and OutcomeQueued returned; the worker checks
// the stored path (unknown, revoked) and sends. Only an authentic, stored,
// unrevoked, unexpired path within its rate gets a reply; anything else
// changes nothing but a counter. Every message ends in exactly one counted
// outcome and one event.
func (r *Responder) HandleHeldHTLCAvailable(_ context.Context,
	pathID []byte, replyPath *onionmsg.BlindedPath) string {

	now := r.cfg.Clock.Now()
	ev, ok := r.check(pathID, replyPath, now)
	if ok {
		if r.replies.Push(reply{pathID: ev.PathID,
			replyPath: replyPath, at: now}) {

			return OutcomeQueued
		}
		r.cfg.Logger.Debugf("Dropping held_htlc_available on receive "+
			"path %x: reply queue full", ev.PathID)
		ev.Outcome = OutcomeBusy
	}
	r.publish(ev)

	return ev.Outcome
}

// publish counts ev and hands it to OnEvent.
func (r *Responder) publish(ev Event) {
	ev.At = r.cfg.Clock.Now()
	r.mu.Lock()
	r.counts[ev.Outcome]++
	r.mu.Unlock()
	if r.cfg.OnEvent != nil {
		r.cfg.OnEvent(ev)
	}
}

// check makes the read loop's checks. ok means the message may have a
// reply: ev then carries only the path id.
func (r *Responder) check(pathID []byte, replyPath *onionmsg.BlindedPath,
	now time.Time) (Event, bool) {

	claim, err := r.cfg.Auth.VerifyReceive(pathID, now)
	switch {
	case errors.Is(err, release.ErrForgedPathID):
		r.cfg.Logger.Debugf("No reply to held_htlc_available with a " +
			"forged path_id")
		return Event{Outcome: OutcomeForged}, false
	case errors.Is(err, release.ErrExpiredPathID):
		r.cfg.Logger.Infof("No reply to held_htlc_available on receive "+
			"path %x: expired at %v", claim.PathID, claim.ExpiresAt.UTC())
		return Event{PathID: claim.PathID, Outcome: OutcomeExpired}, false
	case err != nil:
		r.cfg.Logger.Debugf("No reply to held_htlc_available: %v", err)
		return Event{Outcome: OutcomeMalformed}, false
	}
	ev := Event{PathID: claim.PathID}

	if replyPath == nil {
		r.cfg.Logger.Infof("held_htlc_available on receive path %x has "+
			"no reply path: nothing to release", claim.PathID)
		ev.Outcome = OutcomeNoReplyPath
		return ev, false
	}
	// Before the queue: a published path is shared by every payer, and
	// one path must not fill the queue for the others.
	if !r.limiter.Allow(claim.PathID, now) {
		r.cfg.Logger.Debugf("Rate-limited held_htlc_available on "+
			"receive path %x", claim.PathID)
		ev.Outcome = OutcomeRateLimited
		return ev, false
	}

	return ev, true
}

// sendReply is the worker's part: the stored path's state, then the send.
func (r *Responder) sendReply(ctx context.Context, rp reply) {
	ev := Event{PathID: rp.pathID}
	r.reply(ctx, rp, &ev)
	r.publish(ev)
}

func (r *Responder) reply(ctx context.Context, rp reply, ev *Event) {
	p, err := r.cfg.Store.GetReceivePath(ctx, rp.pathID)
	switch {
	case errors.Is(err, ErrUnknownPath):
		// Authentic but not ours any more, e.g. a store restored
		// from an old backup: the operator never saw this path.
		r.cfg.Logger.Infof("No reply to held_htlc_available on unknown "+
			"receive path %x", rp.pathID)
		ev.Outcome = OutcomeUnknownPath
		return
	case err != nil:
		r.cfg.Logger.Errorf("Receive path %x: %v", rp.pathID, err)
		ev.Outcome, ev.Err = OutcomeStoreError, err
		return
	case !p.RevokedAt.IsZero():
		r.cfg.Logger.Infof("No reply to held_htlc_available on revoked "+
			"receive path %x", rp.pathID)
		ev.Outcome = OutcomeRevoked
		return
	}

	r.cfg.Logger.Infof("held_htlc_available on receive path %x: sending "+
		"release_held_htlc", rp.pathID)
	sendCtx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
	route, err := r.cfg.Sender.SendRelease(sendCtx, rp.replyPath)
	cancel()
	if err != nil {
		r.cfg.Logger.Warnf("release_held_htlc for receive path %x not "+
			"sent: %v", rp.pathID, err)
		ev.Outcome, ev.Err = OutcomeSendFailed, err
		return
	}
	ev.Outcome, ev.Route = OutcomeReplied, route
	r.cfg.Logger.Infof("release_held_htlc sent to peer %v (via LSP: %v) "+
		"for receive path %x", route.Peer, route.Via, rp.pathID)
	if err := r.cfg.Store.RecordReceiveReply(ctx, rp.pathID,
		rp.at); err != nil {

		// The reply is out; only the path's reply count is behind.
		r.cfg.Logger.Errorf("Count reply on receive path %x: %v",
			rp.pathID, err)
	}
}

// Counts returns how many held_htlc_available messages ended in each
// outcome.
func (r *Responder) Counts() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}

// String names the route for logs and the API.
func (rr ReplyRoute) String() string {
	if rr.Via {
		return fmt.Sprintf("via LSP %v", rr.Peer)
	}
	return fmt.Sprintf("direct to %v", rr.Peer)
}
