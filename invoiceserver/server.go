package invoiceserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/internal/keyedlimit"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/sirupsen/logrus"
)

// Outcomes the server counts. Every drop changes no state.
const (
	OutcomeOfferPathsSent    = "offer_paths_sent"
	OutcomeInvoicePersisted  = "invoice_persisted"
	OutcomeInvoiceServed     = "invoice_served"
	OutcomeNoPathID          = "no_path_id"
	OutcomeUnknownPath       = "unknown_path"
	OutcomeForged            = "forged"
	OutcomeExpiredPath       = "expired_path"
	OutcomeUnknownRecipient  = "unknown_recipient"
	OutcomeExpiredRecipient  = "expired_recipient"
	OutcomeSlotOutOfRange    = "slot_out_of_range"
	OutcomeUnexpectedMessage = "unexpected_message"
	OutcomeUnknownEven       = "unknown_even_tlv"
	OutcomeMalformed         = "malformed_tlv"
	OutcomeNoReplyPath       = "no_reply_path"
	OutcomeRateRecipient     = "rate_limited_recipient"
	OutcomeRateRequester     = "rate_limited_requester"
	OutcomeInvoiceTooLarge   = "invoice_too_large"
	OutcomeInvalidInvoice    = "invalid_invoice"
	OutcomeExpiredInvoice    = "expired_invoice"
	OutcomeForeignOffer      = "foreign_offer"
	OutcomeNoInvoice         = "no_invoice"
	OutcomeWrongOffer        = "wrong_offer"
	OutcomeStoreError        = "store_error"
	OutcomeMintError         = "mint_error"
	OutcomeSendFailed        = "send_failed"

	// OutcomeForwardFailed counts invoice_requests that were answered
	// but could not be forwarded to the recipient; it is counted beside
	// OutcomeInvoiceServed.
	OutcomeForwardFailed = "forward_failed"
)

// Defaults, after LDK v0.2 and ldk-node v0.7.
const (
	// DefaultMaxRecipients bounds the recipients table.
	DefaultMaxRecipients = 10_000

	// DefaultMaxSlots is the slots per recipient: LDK's client caches 10
	// offers, one slot each.
	DefaultMaxSlots = 16

	// MaxInvoiceSize is LDK's MAX_STATIC_INVOICE_SIZE_BYTES
	// (offers/flow.rs); Config.MaxInvoiceSize may only lower it.
	MaxInvoiceSize = 5 * 1024

	// DefaultOfferPathTTL is LDK's DEFAULT_ASYNC_RECEIVE_OFFER_EXPIRY,
	// one year.
	DefaultOfferPathTTL = 365 * 24 * time.Hour

	// DefaultBurst and DefaultInterval are ldk-node's static invoice
	// server rate limit: a bucket of 5 refilled every 100 ms.
	DefaultBurst    = 5
	DefaultInterval = 100 * time.Millisecond

	// DefaultInvoiceRequestBurst and DefaultInvoiceRequestInterval
	// bound the invoice_requests for one recipient: 50 at once, 50 a
	// second after that.
	DefaultInvoiceRequestBurst    = 50
	DefaultInvoiceRequestInterval = 20 * time.Millisecond

	// DefaultMaxLimiterKeys bounds each rate limiter's memory.
	DefaultMaxLimiterKeys = 10_000

	// MaxPathsPerCall bounds the paths one call or message mints.
	MaxPathsPerCall = 8
)

// Config configures a Server. Zero values take the defaults.
type Config struct {
	Auth   *Authenticator
	Minter PathMinter
	Store  Store
	Sender Sender

	// Forwarder may be nil: invoice_requests are then answered but not
	// forwarded.
	Forwarder Forwarder

	// Chain is the genesis hash of the chain static invoices must be
	// for (bolt12.BitcoinChain on mainnet); required.
	Chain chainhash.Hash

	Clock clock.Clock
	Log   logrus.FieldLogger

	MaxRecipients int
	MaxSlots      uint16

	// MaxInvoiceSize is at most MaxInvoiceSize.
	MaxInvoiceSize int

	// OfferPathTTL is how long offer paths (and the serve path) live.
	OfferPathTTL time.Duration

	// OfferPaths is how many paths one offer_paths carries (default 1:
	// all enter at the same lnd, so more add no reliability).
	OfferPaths int

	// RecipientBurst/RecipientInterval limit one recipient's own
	// messages: its offer_paths_requests and serve_static_invoices.
	RecipientBurst    int
	RecipientInterval time.Duration

	// InvoiceRequestBurst/InvoiceRequestInterval limit the
	// invoice_requests for one recipient's offers from all requesters
	// together. It is looser than the per-requester limit, so one
	// requester's flood, stopped by its own bucket first, leaves room
	// for everyone else.
	InvoiceRequestBurst    int
	InvoiceRequestInterval time.Duration

	// RequesterBurst/RequesterInterval limit the invoice_requests one
	// requester sends, keyed by its reply path's introduction node.
	RequesterBurst    int
	RequesterInterval time.Duration

	MaxLimiterKeys int
}

// Server is the static invoice server. It is safe for concurrent use.
type Server struct {
	cfg Config

	controlLimit *keyedlimit.Limiter[string]
	invreqLimit  *keyedlimit.Limiter[string]
	peerLimit    *keyedlimit.Limiter[[33]byte]

	// newSessionKey blinds registration and serve paths; tests swap it.
	newSessionKey func() (*btcec.PrivateKey, error)

	mu     sync.Mutex
	counts map[string]uint64
}

// New checks cfg, applies the defaults and returns a Server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Auth == nil, cfg.Minter == nil, cfg.Store == nil,
		cfg.Sender == nil:
		return nil, fmt.Errorf("%w: the server needs an authenticator, "+
			"a minter, a store and a sender", ErrInvalidRequest)
	case cfg.Chain == (chainhash.Hash{}):
		return nil, fmt.Errorf("%w: no chain", ErrInvalidRequest)
	case cfg.MaxInvoiceSize > MaxInvoiceSize:
		return nil, fmt.Errorf("%w: max invoice size %d is over %d",
			ErrInvalidRequest, cfg.MaxInvoiceSize, MaxInvoiceSize)
	case cfg.OfferPaths > MaxPathsPerCall:
		return nil, fmt.Errorf("%w: %d offer paths, at most %d",
			ErrInvalidRequest, cfg.OfferPaths, MaxPathsPerCall)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxRecipients, DefaultMaxRecipients)
	def(&cfg.MaxInvoiceSize, MaxInvoiceSize)
	def(&cfg.OfferPaths, 1)
	def(&cfg.RecipientBurst, DefaultBurst)
	def(&cfg.RequesterBurst, DefaultBurst)
	def(&cfg.InvoiceRequestBurst, DefaultInvoiceRequestBurst)
	def(&cfg.MaxLimiterKeys, DefaultMaxLimiterKeys)
	defDur(&cfg.OfferPathTTL, DefaultOfferPathTTL)
	defDur(&cfg.RecipientInterval, DefaultInterval)
	defDur(&cfg.RequesterInterval, DefaultInterval)
	defDur(&cfg.InvoiceRequestInterval, DefaultInvoiceRequestInterval)
	if cfg.MaxSlots == 0 {
		cfg.MaxSlots = DefaultMaxSlots
	}
	return &Server{
		cfg: cfg,
		controlLimit: keyedlimit.New[string](cfg.RecipientBurst,
			cfg.RecipientInterval, cfg.MaxLimiterKeys),
		invreqLimit: keyedlimit.New[string](cfg.InvoiceRequestBurst,
			cfg.InvoiceRequestInterval, cfg.MaxLimiterKeys),
		peerLimit: keyedlimit.New[[33]byte](cfg.RequesterBurst,
			cfg.RequesterInterval, cfg.MaxLimiterKeys),
		newSessionKey: btcec.NewPrivateKey,
		counts:        make(map[string]uint64),
	}, nil
}

// AddRecipient registers a recipient (or renews one: a new expiry, fresh
// paths) and returns n registration paths, what LDK's
// blinded_paths_for_async_recipient returns, for the recipient to be
// configured with out of band. ttl 0 means the registration never expires.
func (s *Server) AddRecipient(ctx context.Context, id []byte,
	ttl time.Duration, n int) (Recipient, []*onionmsg.BlindedPath, error) {

	switch {
	case len(id) == 0 || len(id) > MaxRecipientIDLen:
		return Recipient{}, nil, fmt.Errorf("%w: %d bytes",
			ErrInvalidRecipientID, len(id))
	case n < 1 || n > MaxPathsPerCall:
		return Recipient{}, nil, fmt.Errorf("%w: %d paths, want 1..%d",
			ErrInvalidRequest, n, MaxPathsPerCall)
	case ttl < 0 || (ttl > 0 && ttl < time.Minute):
		return Recipient{}, nil, fmt.Errorf("%w: expiry %v",
			ErrInvalidRequest, ttl)
	}
	now := s.cfg.Clock.Now()
	r := Recipient{ID: append([]byte(nil), id...),
		CreatedAt: now.UTC()}
	if ttl > 0 {
		// Whole seconds, the path_id's resolution.
		r.ExpiresAt = time.Unix(now.Add(ttl).Unix(), 0).UTC()
	}
	pathID, err := s.cfg.Auth.Mint(Claim{Kind: KindRegistration,
		RecipientID: r.ID, ExpiresAt: r.ExpiresAt})
	if err != nil {
		return Recipient{}, nil, err
	}
	paths := make([]*onionmsg.BlindedPath, 0, n)
	for range n {
		key, err := s.newSessionKey()
		if err != nil {
			return Recipient{}, nil, err
		}
		p, err := s.cfg.Minter.MintPath(key, pathID)
		if err != nil {
			return Recipient{}, nil, err
		}
		paths = append(paths, p)
	}
	r, err = s.cfg.Store.PutAsyncRecipient(ctx, r, s.cfg.MaxRecipients)
	if err != nil {
		return Recipient{}, nil, err
	}
	return r, paths, nil
}

// RemoveRecipient removes a recipient and its invoices. Its paths stay
// authentic but lead nowhere: their messages are counted as
// unknown_recipient or no_invoice.
func (s *Server) RemoveRecipient(ctx context.Context, id []byte) error {
	return s.cfg.Store.RemoveAsyncRecipient(ctx, id)
}

// ListRecipients returns every registered recipient.
func (s *Server) ListRecipients(ctx context.Context) ([]Recipient, error) {
	return s.cfg.Store.ListAsyncRecipients(ctx)
}

// ListInvoiceSlots returns the static invoices stored for every
// recipient, without their bytes; nil when the Store cannot list them.
func (s *Server) ListInvoiceSlots(ctx context.Context) ([]InvoiceSlot,
	error) {

	l, ok := s.cfg.Store.(SlotLister)
	if !ok {
		return nil, nil
	}
	return l.ListStaticInvoiceSlots(ctx)
}

// Handle processes one peeled onion message whose path_id KindOf
// recognises, and returns its outcome, which it has counted. It never
// fails: a bad message changes nothing but a counter.
func (s *Server) Handle(ctx context.Context, p *onionmsg.Peeled) string {
	outcome := s.handle(ctx, p)
	s.count(outcome)
	return outcome
}

func (s *Server) handle(ctx context.Context, p *onionmsg.Peeled) string {
	if p == nil || p.Data == nil {
		return OutcomeNoPathID
	}
	pathID := p.Data.PathID.ValOpt().UnwrapOr(nil)
	if len(pathID) == 0 {
		return OutcomeNoPathID
	}
	kind, ok := KindOf(pathID)
	if !ok {
		return OutcomeUnknownPath
	}
	want := map[PathKind]uint64{
		KindRegistration: onionmsg.OfferPathsRequestType,
		KindServe:        onionmsg.ServeStaticInvoiceType,
		KindOffer:        onionmsg.InvoiceRequestType,
	}[kind]
	// BOLT 1: an unknown even type must stop us acting on the message.
	for t := range p.FinalTLVs {
		if t%2 == 0 && t != want {
			return OutcomeUnknownEven
		}
	}
	value, ok := p.FinalTLVs[want]
	if !ok {
		return OutcomeUnexpectedMessage
	}

	now := s.cfg.Clock.Now()
	claim, err := s.cfg.Auth.Verify(pathID, now)
	switch {
	case errors.Is(err, ErrForgedPathID):
		return OutcomeForged
	case errors.Is(err, ErrExpiredPathID):
		return OutcomeExpiredPath
	case err != nil:
		return OutcomeUnknownPath
	}
	if claim.Slot >= s.cfg.MaxSlots {
		return OutcomeSlotOutOfRange
	}

	switch kind {
	case KindRegistration:
		return s.handleOfferPathsRequest(ctx, claim, value, p.ReplyPath,
			now)
	case KindServe:
		return s.handleServe(ctx, claim, value, p.ReplyPath, now)
	default:
		return s.handleInvoiceRequest(ctx, claim, value, p.ReplyPath,
			now)
	}
}

// checkRecipient looks the recipient up and applies its control rate.
func (s *Server) checkRecipient(ctx context.Context, id []byte,
	now time.Time) string {

	// The rate first: the id is authentic, and a flood should not cost
	// a database read per message.
	if !s.controlLimit.Allow(string(id), now) {
		return OutcomeRateRecipient
	}
	r, err := s.cfg.Store.GetAsyncRecipient(ctx, id)
	switch {
	case errors.Is(err, ErrUnknownRecipient):
		return OutcomeUnknownRecipient
	case err != nil:
		s.cfg.Log.Errorf("Static invoice server: read recipient: %v",
			err)
		return OutcomeStoreError
	case r.Expired(now):
		return OutcomeExpiredRecipient
	}
	return ""
}

// handleOfferPathsRequest answers offer_paths_request with offer paths for
// (recipient, slot) and a serve path as the reply path, both valid for
// OfferPathTTL (LDK: OffersMessageFlow::handle_offer_paths_request).
func (s *Server) handleOfferPathsRequest(ctx context.Context, reg Claim,
	value []byte, replyPath *onionmsg.BlindedPath, now time.Time) string {

	req, err := onionmsg.DecodeOfferPathsRequest(value)
	if err != nil {
		return OutcomeMalformed
	}
	if req.InvoiceSlot >= s.cfg.MaxSlots {
		return OutcomeSlotOutOfRange
	}
	if replyPath == nil {
		return OutcomeNoReplyPath
	}
	if o := s.checkRecipient(ctx, reg.RecipientID, now); o != "" {
		return o
	}
	expires := time.Unix(now.Add(s.cfg.OfferPathTTL).Unix(), 0)
	offer := Claim{Kind: KindOffer, RecipientID: reg.RecipientID,
		Slot: req.InvoiceSlot, ExpiresAt: expires}
	paths, err := s.offerPaths(offer)
	if err != nil {
		s.cfg.Log.Errorf("Static invoice server: mint offer paths: %v",
			err)
		return OutcomeMintError
	}
	serve := offer
	serve.Kind = KindServe
	servePath, err := s.mintRandom(serve)
	if err != nil {
		s.cfg.Log.Errorf("Static invoice server: mint serve path: %v",
			err)
		return OutcomeMintError
	}
	exp := uint64(expires.Unix())
	msg, err := onionmsg.EncodeOfferPaths(onionmsg.OfferPaths{
		Paths: paths, PathsAbsoluteExpiry: &exp,
	})
	if err != nil {
		return OutcomeMintError
	}
	err = s.cfg.Sender.Send(ctx, replyPath, servePath,
		map[uint64][]byte{onionmsg.OfferPathsType: msg})
	if err != nil {
		s.cfg.Log.Debugf("Static invoice server: send offer_paths: %v",
			err)
		return OutcomeSendFailed
	}
	return OutcomeOfferPathsSent
}

// offerPaths mints the offer paths of an offer claim. They are the same
// every time for the same claim.
func (s *Server) offerPaths(c Claim) ([]*onionmsg.BlindedPath, error) {
	pathID, err := s.cfg.Auth.Mint(c)
	if err != nil {
		return nil, err
	}
	paths := make([]*onionmsg.BlindedPath, 0, s.cfg.OfferPaths)
	for i := range s.cfg.OfferPaths {
		p, err := s.cfg.Minter.MintPath(
			s.cfg.Auth.offerSessionKey(pathID, i), pathID,
		)
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func (s *Server) mintRandom(c Claim) (*onionmsg.BlindedPath, error) {
	pathID, err := s.cfg.Auth.Mint(c)
	if err != nil {
		return nil, err
	}
	key, err := s.newSessionKey()
	if err != nil {
		return nil, err
	}
	return s.cfg.Minter.MintPath(key, pathID)
}

// handleServe checks serve_static_invoice, persists the invoice and then
// confirms with static_invoice_persisted (LDK:
// verify_serve_static_invoice_message, static_invoice_persisted). On top
// of LDK's checks the invoice must verify and be for an offer whose paths
// are exactly this server's offer paths for the serve path's recipient
// and slot.
func (s *Server) handleServe(ctx context.Context, c Claim, value []byte,
	replyPath *onionmsg.BlindedPath, now time.Time) string {

	msg, err := onionmsg.DecodeServeStaticInvoice(value)
	if err != nil {
		return OutcomeMalformed
	}
	if len(msg.Invoice) > s.cfg.MaxInvoiceSize {
		return OutcomeInvoiceTooLarge
	}
	if replyPath == nil {
		return OutcomeNoReplyPath
	}
	if o := s.checkRecipient(ctx, c.RecipientID, now); o != "" {
		return o
	}
	inv, err := bolt12.DecodeStaticInvoice(msg.Invoice)
	if err != nil {
		return OutcomeInvalidInvoice
	}
	switch err := inv.Check(now, s.cfg.Chain); {
	case errors.Is(err, bolt12.ErrExpired):
		return OutcomeExpiredInvoice
	case err != nil:
		return OutcomeInvalidInvoice
	}
	offer := c
	offer.Kind = KindOffer
	ours, err := s.offerPaths(offer)
	if err != nil {
		return OutcomeMintError
	}
	if !onlyOurPaths(inv.Offer.Paths, ours) {
		return OutcomeForeignOffer
	}
	offerID, err := inv.OfferID()
	if err != nil {
		return OutcomeInvalidInvoice
	}
	fwd, err := msg.ForwardInvoiceRequestPath.Bytes()
	if err != nil {
		return OutcomeMalformed
	}
	err = s.cfg.Store.PutStaticInvoice(ctx, StaticInvoice{
		RecipientID: c.RecipientID,
		Slot:        c.Slot,
		Invoice:     msg.Invoice,
		OfferID:     offerID,
		ForwardPath: fwd,
		ExpiresAt:   time.Unix(int64(min(inv.ExpiresAt(), 1<<62)), 0).UTC(),
		StoredAt:    now.UTC(),
	})
	switch {
	case errors.Is(err, ErrUnknownRecipient):
		return OutcomeUnknownRecipient
	case err != nil:
		s.cfg.Log.Errorf("Static invoice server: persist invoice: %v",
			err)
		return OutcomeStoreError
	}
	err = s.cfg.Sender.Send(ctx, replyPath, nil, map[uint64][]byte{
		onionmsg.StaticInvoicePersistedType: onionmsg.
			EncodeStaticInvoicePersisted(),
	})
	if err != nil {
		// The invoice is served all the same; the recipient sends it
		// again when no confirmation comes.
		s.cfg.Log.Debugf("Static invoice server: send "+
			"static_invoice_persisted: %v", err)
		return OutcomeSendFailed
	}
	return OutcomeInvoicePersisted
}

// onlyOurPaths reports whether paths is non-empty and every one of them is
// one of ours.
func onlyOurPaths(paths, ours []*onionmsg.BlindedPath) bool {
	if len(paths) == 0 {
		return false
	}
	for _, p := range paths {
		found := false
		for _, o := range ours {
			if p.Equal(o) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// handleInvoiceRequest answers an invoice_request on an offer path with the
// slot's static invoice (onionmsg TLV 70) along the request's reply path,
// and forwards the request to the recipient.
func (s *Server) handleInvoiceRequest(ctx context.Context, c Claim,
	value []byte, replyPath *onionmsg.BlindedPath, now time.Time) string {

	if replyPath == nil {
		return OutcomeNoReplyPath
	}
	if !s.peerLimit.Allow(requesterKey(replyPath), now) {
		return OutcomeRateRequester
	}
	if !s.invreqLimit.Allow(string(c.RecipientID), now) {
		return OutcomeRateRecipient
	}
	// The signature is the recipient's to check; the server only makes
	// sure the request is for the offer it serves.
	ir, err := bolt12.DecodeInvoiceRequest(value,
		bolt12.SkipSignatureCheck())
	if err != nil {
		return OutcomeMalformed
	}
	inv, err := s.cfg.Store.GetStaticInvoice(ctx, c.RecipientID, c.Slot)
	switch {
	case errors.Is(err, ErrNoInvoice):
		return OutcomeNoInvoice
	case err != nil:
		s.cfg.Log.Errorf("Static invoice server: read invoice: %v", err)
		return OutcomeStoreError
	}
	switch {
	case !inv.RecipientExpiresAt.IsZero() &&
		!now.Before(inv.RecipientExpiresAt):
		return OutcomeExpiredRecipient
	case !now.Before(inv.ExpiresAt):
		return OutcomeExpiredInvoice
	}
	offerID, err := ir.OfferID()
	if err != nil || offerID != bolt12.OfferID(inv.OfferID) {
		return OutcomeWrongOffer
	}
	err = s.cfg.Sender.Send(ctx, replyPath, nil,
		map[uint64][]byte{onionmsg.StaticInvoiceType: inv.Invoice})
	if err != nil {
		s.cfg.Log.Debugf("Static invoice server: send static "+
			"invoice: %v", err)
		return OutcomeSendFailed
	}
	if s.cfg.Forwarder != nil {
		if err := s.forward(ctx, inv.ForwardPath, replyPath,
			value); err != nil {

			s.cfg.Log.Debugf("Static invoice server: forward "+
				"invoice_request: %v", err)
			s.count(OutcomeForwardFailed)
		}
	}
	return OutcomeInvoiceServed
}

func (s *Server) forward(ctx context.Context, rawPath []byte,
	replyPath *onionmsg.BlindedPath, invreq []byte) error {

	path, err := decodeOnePath(rawPath)
	if err != nil {
		return err
	}
	return s.cfg.Forwarder.ForwardInvoiceRequest(ctx, path, replyPath,
		invreq)
}

// requesterKey names a requester by its reply path's introduction node,
// the only part of a message a requester cannot vary without moving its
// replies elsewhere.
func requesterKey(p *onionmsg.BlindedPath) [33]byte {
	var k [33]byte
	switch {
	case p.IntroNode != nil:
		copy(k[:], p.IntroNode.SerializeCompressed())
	case p.IntroSCIDDir != nil:
		k[0] = p.IntroSCIDDir.Direction
		scid := p.IntroSCIDDir.SCID.ToUint64()
		for i := range 8 {
			k[1+i] = byte(scid >> (56 - 8*i))
		}
	}
	return k
}

func (s *Server) count(outcome string) {
	s.mu.Lock()
	s.counts[outcome]++
	s.mu.Unlock()
}

// Counts returns how many messages ended in each outcome.
func (s *Server) Counts() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}
