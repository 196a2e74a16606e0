package asyncoffer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/internal/backoff"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/sirupsen/logrus"
)

// ErrInvalidConfig is wrapped by every error New returns.
var ErrInvalidConfig = errors.New("asyncoffer: invalid config")

// Defaults, after LDK's client (rust-lightning v0.2
// offers/async_receive_offer_cache.rs) where it has one.
const (
	// DefaultInvoiceExpiry is the static invoice's relative expiry
	// (bolt12.DefaultStaticInvoiceRelativeExpiry, 14 days).
	DefaultInvoiceExpiry = bolt12.DefaultStaticInvoiceRelativeExpiry

	// DefaultRefreshEvery re-sends a live invoice this often (LDK: 2
	// hours), so paths and policies in it stay current.
	DefaultRefreshEvery = 2 * time.Hour

	// DefaultMinPathsLife refuses offer paths expiring sooner (LDK: 3
	// months) and requests new ones when the current ones get there.
	DefaultMinPathsLife = 90 * 24 * time.Hour

	// DefaultReplyPathTTL is how long our reply paths are valid.
	DefaultReplyPathTTL = time.Hour

	// DefaultRetryMin and DefaultRetryMax bound the retry backoff while
	// the server does not answer.
	DefaultRetryMin = 5 * time.Second
	DefaultRetryMax = 10 * time.Minute

	// DefaultServeAttempts is how many serve_static_invoice go
	// unanswered before the slot asks for offer paths again.
	DefaultServeAttempts = 5

	// DefaultSelfCltvDelta is P's relay delta toward V.
	DefaultSelfCltvDelta = 40

	// DefaultFinalCltvDelta is V's final delta.
	DefaultFinalCltvDelta = 80

	// DefaultMaxCltvBlocks is how far past the invoice's expiry (in
	// blocks) V still accepts an HTLC's CLTV: a held HTLC is parked at
	// the sender's LSP for a while before it reaches V.
	DefaultMaxCltvBlocks = 2016
)

// maxPaymentPaths bounds the payment paths in one static invoice.
const maxPaymentPaths = 3

// Outcomes the handler and the client count.
const (
	OutcomeOfferPaths     = "offer_paths"
	OutcomePersisted      = "static_invoice_persisted"
	OutcomeInvoiceRequest = "forwarded_invoice_request"
	OutcomeForged         = "client_forged"
	OutcomeExpired        = "client_expired"
	OutcomeMalformed      = "client_malformed"
	OutcomeWrongMessage   = "client_wrong_message"
	OutcomeBusy           = "client_busy"
	OutcomeUnexpected     = "client_unexpected"
	OutcomeBuildFailed    = "client_build_failed"
	OutcomeSendFailed     = "client_send_failed"
	OutcomeRequestSent    = "offer_paths_request_sent"
	OutcomeServeSent      = "serve_static_invoice_sent"
	OutcomePathsTooShort  = "offer_paths_expire_too_soon"
	OutcomeOfferBuilt     = "offer_built"
	OutcomeLive           = "invoice_live"
)

// Config configures a Client.
type Config struct {
	// ServerPaths are the paths addasyncrecipient printed on the LSP.
	ServerPaths []*onionmsg.BlindedPath

	// Slots is how many offers to keep (slots 0..Slots-1).
	Slots int

	// AmountMsat makes the offers carry an amount; nil for none.
	AmountMsat  *uint64
	Description string

	// Self is this node's lnd key, P.
	Self *btcec.PublicKey

	// Chain is the genesis hash of the network (offer_chains unless
	// mainnet).
	Chain chainhash.Hash

	Auth         *PathAuth
	Store        Store
	Sender       Sender
	Minter       PathMinter
	ReceivePaths ReceivePaths
	Graph        Graph

	// ForwardMinter mints the forward_invoice_request_path; nil means
	// Minter. The daemon passes its receive-path minter, whose paths
	// run through the mailbox where one is configured, so that a
	// request forwarded while this node is offline waits there.
	ForwardMinter PathMinter

	InvoiceExpiry  time.Duration
	RefreshEvery   time.Duration
	MinPathsLife   time.Duration
	ReplyPathTTL   time.Duration
	RetryMin       time.Duration
	RetryMax       time.Duration
	ServeAttempts  int
	SelfCltvDelta  uint16
	FinalCltvDelta uint16
	MaxCltvBlocks  uint32

	// NewKey makes session, offer and V keys (btcec.NewPrivateKey).
	NewKey func() (*btcec.PrivateKey, error)

	// Jitter draws in [0, n) for the retry backoff.
	Jitter func(n int64) int64

	Clock  clock.Clock
	Logger logrus.FieldLogger
}

// event is a verified message from the server, handed to the loop.
type event struct {
	claim     PathClaim
	kind      uint64
	value     []byte
	replyPath *onionmsg.BlindedPath
}

// slotRun is a slot's in-memory state beside its stored row.
type slotRun struct {
	row      Slot
	attempts int
	due      time.Time

	// serveExpiry is the expiry of the reply path of the last
	// serve_static_invoice: only a persisted over that path confirms
	// the current invoice.
	serveExpiry int64
	pending     *bolt12.StaticInvoice
}

// Client runs the client side of the static invoice server protocol.
type Client struct {
	cfg Config

	// server is serverID of cfg.ServerPaths.
	server []byte

	events  chan event
	trigger chan struct{}

	mu     sync.Mutex
	counts map[string]uint64

	goroutines *fn.GoroutineManager
}

// New checks cfg and returns a Client; nothing runs until Start.
func New(cfg Config) (*Client, error) {
	switch {
	case len(cfg.ServerPaths) == 0:
		return nil, fmt.Errorf("%w: no server paths", ErrInvalidConfig)
	case cfg.Slots < 1 || cfg.Slots > 1<<16:
		return nil, fmt.Errorf("%w: %d slots", ErrInvalidConfig,
			cfg.Slots)
	case cfg.Self == nil || cfg.Auth == nil || cfg.Store == nil ||
		cfg.Sender == nil || cfg.Minter == nil ||
		cfg.ReceivePaths == nil || cfg.Graph == nil:

		return nil, fmt.Errorf("%w: missing dependency",
			ErrInvalidConfig)
	case cfg.AmountMsat != nil && *cfg.AmountMsat == 0:
		return nil, fmt.Errorf("%w: zero amount", ErrInvalidConfig)
	}
	setDefault(&cfg.InvoiceExpiry, DefaultInvoiceExpiry)
	setDefault(&cfg.RefreshEvery, DefaultRefreshEvery)
	setDefault(&cfg.MinPathsLife, DefaultMinPathsLife)
	setDefault(&cfg.ReplyPathTTL, DefaultReplyPathTTL)
	setDefault(&cfg.RetryMin, DefaultRetryMin)
	setDefault(&cfg.RetryMax, DefaultRetryMax)
	setDefault(&cfg.ServeAttempts, DefaultServeAttempts)
	setDefault(&cfg.SelfCltvDelta, DefaultSelfCltvDelta)
	setDefault(&cfg.FinalCltvDelta, DefaultFinalCltvDelta)
	setDefault(&cfg.MaxCltvBlocks, DefaultMaxCltvBlocks)
	if cfg.NewKey == nil {
		cfg.NewKey = btcec.NewPrivateKey
	}
	if cfg.ForwardMinter == nil {
		cfg.ForwardMinter = cfg.Minter
	}
	if cfg.Jitter == nil {
		cfg.Jitter = backoff.RandJitter
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.AmountMsat != nil && cfg.Description == "" {
		cfg.Description = "holdd"
	}
	server, err := serverID(cfg.ServerPaths)
	if err != nil {
		return nil, err
	}
	return &Client{
		cfg:        cfg,
		server:     server,
		events:     make(chan event, 64),
		trigger:    make(chan struct{}, 1),
		counts:     make(map[string]uint64),
		goroutines: fn.NewGoroutineManager(),
	}, nil
}

// serverID names the configured server by its registration paths: a slot
// built against other paths (recipient.server changed) belongs to another
// server, or to another registration, and starts over.
func serverID(paths []*onionmsg.BlindedPath) ([]byte, error) {
	h := sha256.New()
	for _, p := range paths {
		b, err := p.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: server path: %w",
				ErrInvalidConfig, err)
		}
		h.Write(b)
	}
	return h.Sum(nil), nil
}

// current returns the stored row of slot i if it was built against the
// configured server, else a fresh requesting slot.
func (c *Client) current(row Slot, found bool, i int) (Slot, bool) {
	if found && bytes.Equal(row.Server, c.server) {
		return row, false
	}
	return Slot{Slot: uint16(i), Phase: PhaseRequesting}, found
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Start loads the slots and starts the loop.
func (c *Client) Start(ctx context.Context) error {
	if !c.goroutines.Go(ctx, c.run) {
		return ctx.Err()
	}
	return nil
}

// Stop ends the loop and waits for it.
func (c *Client) Stop() {
	c.goroutines.Stop()
}

// Trigger makes every slot talk to the server now: call it when the link
// to the network comes (back) up. A live slot re-sends its invoice.
func (c *Client) Trigger() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Counts returns the client's outcome counters.
func (c *Client) Counts() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

func (c *Client) count(outcome string) {
	c.mu.Lock()
	c.counts[outcome]++
	c.mu.Unlock()
}

// Offers returns every configured slot, by slot number: the stored row,
// or a requesting slot not stored yet.
func (c *Client) Offers(ctx context.Context) ([]Slot, error) {
	stored, err := c.cfg.Store.ListAsyncOfferSlots(ctx)
	if err != nil {
		return nil, err
	}
	bySlot := make(map[uint16]Slot, len(stored))
	for _, s := range stored {
		bySlot[s.Slot] = s
	}
	out := make([]Slot, c.cfg.Slots)
	for i := range out {
		s, ok := bySlot[uint16(i)]
		out[i], _ = c.current(s, ok, i)
	}
	return out, nil
}

// run is the client's loop: every slot's state changes here, one at a
// time, so no lock guards them.
func (c *Client) run(ctx context.Context) {
	slots, err := c.load(ctx)
	if err != nil {
		c.cfg.Logger.Errorf("Async offers: cannot load slots: %v", err)
		return
	}
	// Start counts as a reconnect.
	c.kickAll(slots)
	for {
		c.step(ctx, slots)
		wait := c.nextWake(slots)
		timer := c.cfg.Clock.TickAfter(wait)
		select {
		case <-ctx.Done():
			return
		case <-c.trigger:
			c.kickAll(slots)
		case ev := <-c.events:
			c.handleEvent(ctx, slots, ev)
		case <-timer:
		}
	}
}

func (c *Client) load(ctx context.Context) ([]*slotRun, error) {
	stored, err := c.cfg.Store.ListAsyncOfferSlots(ctx)
	if err != nil {
		return nil, err
	}
	bySlot := make(map[uint16]Slot, len(stored))
	for _, s := range stored {
		bySlot[s.Slot] = s
	}
	out := make([]*slotRun, c.cfg.Slots)
	for i := range out {
		stored, ok := bySlot[uint16(i)]
		row, reset := c.current(stored, ok, i)
		row.Server = c.server
		if reset {
			// Its offer names another server's paths: drop it
			// now, so GetOffer never shows it as live again.
			c.cfg.Logger.Infof("Async offers: slot %d was built "+
				"for another recipient.server; asking for new "+
				"offer paths", i)
			row.UpdatedAt = c.cfg.Clock.Now()
			if err := c.cfg.Store.PutAsyncOfferSlot(ctx,
				row); err != nil {

				return nil, err
			}
		}
		out[i] = &slotRun{row: row}
	}
	return out, nil
}

// kickAll makes every slot act now, from its first attempt.
func (c *Client) kickAll(slots []*slotRun) {
	now := c.cfg.Clock.Now()
	for _, s := range slots {
		s.attempts = 0
		s.due = now
	}
}

func (c *Client) nextWake(slots []*slotRun) time.Duration {
	now := c.cfg.Clock.Now()
	wait := c.cfg.RetryMax
	for _, s := range slots {
		if d := s.due.Sub(now); d < wait {
			wait = d
		}
	}
	// A slot already due ticks at once (TickAfter(0)), also on a test
	// clock that does not move.
	return max(wait, 0)
}

// step runs every slot whose time has come.
func (c *Client) step(ctx context.Context, slots []*slotRun) {
	now := c.cfg.Clock.Now()
	for _, s := range slots {
		if now.Before(s.due) {
			continue
		}
		switch s.row.Phase {
		case PhaseRequesting:
			c.sendRequest(ctx, s)

		case PhaseServing:
			if s.attempts >= c.cfg.ServeAttempts {
				c.cfg.Logger.Warnf("Async offer slot %d: %d "+
					"serve_static_invoice unanswered, "+
					"asking for offer paths again",
					s.row.Slot, s.attempts)
				s.row.Phase = PhaseRequesting
				s.attempts = 0
				c.sendRequest(ctx, s)
				continue
			}
			c.sendServe(ctx, s)

		case PhaseLive:
			// Refresh time: serve a fresh invoice, or get new
			// paths if the offer's are running out.
			s.attempts = 0
			s.row.Phase = PhaseServing
			if c.pathsRunningOut(s.row, now) {
				s.row.Phase = PhaseRequesting
				c.sendRequest(ctx, s)
				continue
			}
			c.sendServe(ctx, s)
		}
	}
}

func (c *Client) pathsRunningOut(row Slot, now time.Time) bool {
	return !row.PathsExpiresAt.IsZero() &&
		row.PathsExpiresAt.Before(now.Add(c.cfg.MinPathsLife))
}

// retry schedules the slot's next attempt with backoff.
func (c *Client) retry(s *slotRun) {
	d := backoff.Jittered(s.attempts, c.cfg.RetryMin, c.cfg.RetryMax,
		c.cfg.Jitter)
	s.attempts++
	s.due = c.cfg.Clock.Now().Add(d)
}

// replyPath mints a reply path to us for kind and slot.
func (c *Client) replyPath(kind PathKind, slot uint16) (*onionmsg.BlindedPath,
	int64, error) {

	exp := c.cfg.Clock.Now().Add(c.cfg.ReplyPathTTL).Unix()
	id := c.cfg.Auth.Mint(PathClaim{
		Kind: kind, Slot: slot, ExpiresAt: time.Unix(exp, 0),
	})
	key, err := c.cfg.NewKey()
	if err != nil {
		return nil, 0, err
	}
	p, err := c.cfg.Minter.MintPath(key, id)
	return p, exp, err
}

func (c *Client) sendRequest(ctx context.Context, s *slotRun) {
	defer c.retry(s)
	server := c.cfg.ServerPaths[s.attempts%len(c.cfg.ServerPaths)]
	reply, _, err := c.replyPath(KindOfferPaths, s.row.Slot)
	if err != nil {
		c.count(OutcomeBuildFailed)
		c.cfg.Logger.Errorf("Async offer slot %d: reply path: %v",
			s.row.Slot, err)
		return
	}
	err = c.cfg.Sender.SendMessage(ctx, server, reply, map[uint64][]byte{
		onionmsg.OfferPathsRequestType: onionmsg.EncodeOfferPathsRequest(
			onionmsg.OfferPathsRequest{InvoiceSlot: s.row.Slot},
		),
	})
	if err != nil {
		c.count(OutcomeSendFailed)
		c.cfg.Logger.Warnf("Async offer slot %d: offer_paths_request "+
			"not sent (attempt %d): %v", s.row.Slot, s.attempts+1,
			err)
		return
	}
	c.count(OutcomeRequestSent)
	c.cfg.Logger.Debugf("Async offer slot %d: offer_paths_request sent",
		s.row.Slot)
}

// sendServe builds a fresh static invoice for the slot's offer and sends
// it along the server's serve path.
func (c *Client) sendServe(ctx context.Context, s *slotRun) {
	defer c.retry(s)
	si, err := c.buildInvoice(ctx, s.row)
	if err != nil {
		c.count(OutcomeBuildFailed)
		c.cfg.Logger.Errorf("Async offer slot %d: %v", s.row.Slot, err)
		return
	}
	servePath, err := onionmsg.DecodeBlindedPath(
		bytesReader(s.row.ServePath),
	)
	if err != nil {
		c.count(OutcomeBuildFailed)
		s.row.Phase = PhaseRequesting
		return
	}
	// The forward path must outlive the invoice.
	forward, err := c.forwardPath(s.row.Slot, si)
	if err != nil {
		c.count(OutcomeBuildFailed)
		return
	}
	value, err := onionmsg.EncodeServeStaticInvoice(
		onionmsg.ServeStaticInvoice{
			Invoice:                   si.Encode(),
			ForwardInvoiceRequestPath: forward,
		},
	)
	if err != nil {
		c.count(OutcomeBuildFailed)
		return
	}
	reply, exp, err := c.replyPath(KindPersisted, s.row.Slot)
	if err != nil {
		c.count(OutcomeBuildFailed)
		return
	}
	err = c.cfg.Sender.SendMessage(ctx, servePath, reply,
		map[uint64][]byte{onionmsg.ServeStaticInvoiceType: value})
	if err != nil {
		c.count(OutcomeSendFailed)
		c.cfg.Logger.Warnf("Async offer slot %d: serve_static_invoice "+
			"not sent (attempt %d): %v", s.row.Slot, s.attempts+1,
			err)
		return
	}
	s.serveExpiry = exp
	s.pending = si
	c.count(OutcomeServeSent)
	c.cfg.Logger.Debugf("Async offer slot %d: serve_static_invoice sent "+
		"(%d bytes)", s.row.Slot, len(si.Encode()))
}

// forwardPath mints the forward_invoice_request_path, valid as long as
// the invoice.
func (c *Client) forwardPath(slot uint16,
	si *bolt12.StaticInvoice) (*onionmsg.BlindedPath, error) {

	id := c.cfg.Auth.Mint(PathClaim{
		Kind: KindInvoiceRequest, Slot: slot,
		ExpiresAt: time.Unix(int64(si.ExpiresAt()), 0),
	})
	key, err := c.cfg.NewKey()
	if err != nil {
		return nil, err
	}
	return c.cfg.ForwardMinter.MintPath(key, id)
}

// buildInvoice builds the static invoice for row's offer now.
func (c *Client) buildInvoice(ctx context.Context,
	row Slot) (*bolt12.StaticInvoice, error) {

	offer, err := bolt12.DecodeOffer(row.Offer)
	if err != nil {
		return nil, fmt.Errorf("stored offer: %w", err)
	}
	offerKey, _ := btcec.PrivKeyFromBytes(row.OfferKey)
	vKey, _ := btcec.PrivKeyFromBytes(row.VirtualKey)
	now := c.cfg.Clock.Now()
	created := time.Unix(now.Unix(), 0)
	expiresAt := created.Add(c.cfg.InvoiceExpiry)

	msgPaths, err := c.cfg.ReceivePaths.MessagePaths(ctx, expiresAt)
	if err != nil {
		return nil, fmt.Errorf("receive paths: %w", err)
	}
	lsp := c.serverLSP()
	if lsp == nil {
		return nil, fmt.Errorf("%w: the server path's introduction "+
			"node is not a node id", ErrBuild)
	}
	policies, err := c.cfg.Graph.PoliciesFrom(ctx, lsp)
	if err != nil {
		return nil, fmt.Errorf("LSP policies: %w", err)
	}
	if len(policies) == 0 {
		return nil, fmt.Errorf("%w: no channel from the LSP %x",
			ErrBuild, lsp.SerializeCompressed())
	}
	height, err := c.cfg.Graph.BestHeight(ctx)
	if err != nil {
		return nil, fmt.Errorf("block height: %w", err)
	}
	// V accepts CLTVs up to the invoice's expiry in blocks, plus
	// MaxCltvBlocks for the time a held HTLC waits.
	blocks := uint32(c.cfg.InvoiceExpiry/(10*time.Minute)) +
		c.cfg.MaxCltvBlocks
	maxCltv := height + blocks + uint32(c.cfg.FinalCltvDelta)
	pathID := c.cfg.Auth.Mint(PathClaim{
		Kind: KindPayment, Slot: row.Slot, ExpiresAt: expiresAt,
	})
	// A few paths give the payer a choice of channel; more only grow
	// the invoice toward the server's 5 KiB limit.
	if len(policies) > maxPaymentPaths {
		policies = policies[:maxPaymentPaths]
	}
	var payPaths []bolt12.PaymentPath
	for _, pol := range policies {
		session, err := c.cfg.NewKey()
		if err != nil {
			return nil, err
		}
		pp, err := BuildPaymentPath(PaymentPathParams{
			LSP:            lsp,
			Self:           c.cfg.Self,
			Virtual:        vKey.PubKey(),
			Policy:         pol,
			FakeSCID:       lnwire.NewShortChanIDFromInt(row.FakeSCID),
			SelfCltvDelta:  c.cfg.SelfCltvDelta,
			FinalCltvDelta: c.cfg.FinalCltvDelta,
			MaxCltvExpiry:  maxCltv,
			PathID:         pathID,
			SessionKey:     session,
		})
		if err != nil {
			return nil, err
		}
		payPaths = append(payPaths, pp)
	}
	return BuildStaticInvoice(offer, InvoiceParams{
		SigningKey:     offerKey,
		PaymentPaths:   payPaths,
		MessagePaths:   msgPaths,
		CreatedAt:      created,
		RelativeExpiry: c.cfg.InvoiceExpiry,
	})
}

// serverLSP is L: the introduction node of the server paths.
func (c *Client) serverLSP() *btcec.PublicKey {
	for _, p := range c.cfg.ServerPaths {
		if p.IntroNode != nil {
			return p.IntroNode
		}
	}
	return nil
}

// handleEvent applies a verified server message to its slot.
func (c *Client) handleEvent(ctx context.Context, slots []*slotRun,
	ev event) {

	if int(ev.claim.Slot) >= len(slots) {
		c.count(OutcomeUnexpected)
		return
	}
	s := slots[ev.claim.Slot]
	switch ev.kind {
	case onionmsg.OfferPathsType:
		c.onOfferPaths(ctx, s, ev)

	case onionmsg.StaticInvoicePersistedType:
		c.onPersisted(ctx, s, ev)

	case onionmsg.InvoiceRequestType:
		c.onInvoiceRequest(ctx, s, ev)
	}
}

func (c *Client) onOfferPaths(ctx context.Context, s *slotRun, ev event) {
	if s.row.Phase != PhaseRequesting {
		c.count(OutcomeUnexpected)
		return
	}
	m, err := onionmsg.DecodeOfferPaths(ev.value)
	if err != nil || ev.replyPath == nil {
		c.count(OutcomeMalformed)
		return
	}
	now := c.cfg.Clock.Now()
	var pathsExp time.Time
	if m.PathsAbsoluteExpiry != nil {
		pathsExp = time.Unix(int64(*m.PathsAbsoluteExpiry), 0)
		if pathsExp.Before(now.Add(c.cfg.MinPathsLife)) {
			c.count(OutcomePathsTooShort)
			c.cfg.Logger.Warnf("Async offer slot %d: offer paths "+
				"expire at %v, too soon", s.row.Slot, pathsExp)
			return
		}
	}
	servePath, err := ev.replyPath.Bytes()
	if err != nil {
		c.count(OutcomeMalformed)
		return
	}
	row := s.row
	offerKey, err := c.cfg.NewKey()
	if err != nil {
		c.count(OutcomeBuildFailed)
		return
	}
	offer, err := BuildOffer(OfferParams{
		Paths:          m.Paths,
		SigningKey:     offerKey,
		AmountMsat:     c.cfg.AmountMsat,
		Description:    c.cfg.Description,
		AbsoluteExpiry: pathsExp,
		Chain:          c.cfg.Chain,
	})
	if err != nil {
		c.count(OutcomeBuildFailed)
		c.cfg.Logger.Errorf("Async offer slot %d: %v", row.Slot, err)
		return
	}
	if row.VirtualKey == nil {
		v, err := c.cfg.NewKey()
		if err != nil {
			c.count(OutcomeBuildFailed)
			return
		}
		row.VirtualKey = v.Serialize()
		row.FakeSCID, err = newFakeSCID()
		if err != nil {
			c.count(OutcomeBuildFailed)
			return
		}
	}
	row.Offer = offer.Encode()
	row.OfferKey = offerKey.Serialize()
	row.PathsExpiresAt = pathsExp
	row.ServePath = servePath
	row.Phase = PhaseServing
	row.Live = false
	row.Invoice = nil
	row.InvoiceExpiresAt = time.Time{}
	row.UpdatedAt = now
	if err := c.cfg.Store.PutAsyncOfferSlot(ctx, row); err != nil {
		c.cfg.Logger.Errorf("Async offer slot %d: store: %v", row.Slot,
			err)
		return
	}
	s.row = row
	s.attempts = 0
	c.count(OutcomeOfferBuilt)
	c.cfg.Logger.Infof("Async offer slot %d: built offer %s", row.Slot,
		offer.String())
	c.sendServe(ctx, s)
}

func (c *Client) onPersisted(ctx context.Context, s *slotRun, ev event) {
	if s.row.Phase != PhaseServing || s.pending == nil ||
		ev.claim.ExpiresAt.Unix() != s.serveExpiry {

		c.count(OutcomeUnexpected)
		return
	}
	if err := onionmsg.DecodeStaticInvoicePersisted(ev.value); err != nil {
		c.count(OutcomeMalformed)
		return
	}
	now := c.cfg.Clock.Now()
	row := s.row
	row.Phase = PhaseLive
	row.Live = true
	row.Invoice = s.pending.Encode()
	row.InvoiceExpiresAt = time.Unix(int64(s.pending.ExpiresAt()), 0)
	row.ServedAt = now
	row.UpdatedAt = now
	if err := c.cfg.Store.PutAsyncOfferSlot(ctx, row); err != nil {
		c.cfg.Logger.Errorf("Async offer slot %d: store: %v", row.Slot,
			err)
		return
	}
	s.row = row
	s.pending = nil
	s.attempts = 0
	s.due = c.refreshAt(row)
	c.count(OutcomeLive)
	c.cfg.Logger.Infof("Async offer slot %d is live; invoice expires "+
		"%v, refresh at %v", row.Slot, row.InvoiceExpiresAt.UTC(),
		s.due.UTC())
}

// refreshAt is when a live slot re-serves: RefreshEvery after it was
// served, and in any case half-way to the invoice's expiry.
func (c *Client) refreshAt(row Slot) time.Time {
	at := row.ServedAt.Add(c.cfg.RefreshEvery)
	half := row.ServedAt.Add(row.InvoiceExpiresAt.Sub(row.ServedAt) / 2)
	if half.Before(at) {
		at = half
	}
	return at
}

func (c *Client) onInvoiceRequest(ctx context.Context, s *slotRun,
	ev event) {

	var reply []byte
	if ev.replyPath != nil {
		reply, _ = ev.replyPath.Bytes()
	}
	err := c.cfg.Store.InsertForwardedInvoiceRequest(ctx,
		ForwardedRequest{
			Slot:       s.row.Slot,
			Request:    ev.value,
			ReplyPath:  reply,
			ReceivedAt: c.cfg.Clock.Now(),
		})
	if err != nil {
		c.cfg.Logger.Errorf("Async offer slot %d: store forwarded "+
			"invoice_request: %v", s.row.Slot, err)
		return
	}
	c.cfg.Logger.Infof("Async offer slot %d: forwarded invoice_request "+
		"recorded (%d bytes)", s.row.Slot, len(ev.value))
}

// newFakeSCID draws the short channel id P's hop names toward V: a block
// height above lnd's alias range (16_000_000-16_250_000) and below the
// 24-bit limit, so it is neither a real channel nor one of lnd's aliases.
func newFakeSCID() (uint64, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<24))
	if err != nil {
		return 0, err
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	scid := lnwire.ShortChannelID{
		BlockHeight: 16_500_000 + uint32(n.Int64()%200_000),
		TxIndex:     binary.BigEndian.Uint32(b[:]) & 0xffffff,
		TxPosition:  uint16(b[3]),
	}
	return scid.ToUint64(), nil
}
