package asyncsend

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"google.golang.org/grpc"
)

const (
	// DefaultMinMessages is how many held_htlc_available messages go
	// out per held HTLC when there are release paths enough.
	DefaultMinMessages = 2

	// DefaultTimeoutSeconds is the payment attempt timeout when the
	// request sets none, as lncli's.
	DefaultTimeoutSeconds = 60

	// DefaultResubscribeDelay is the wait before subscribing to custom
	// messages again after the stream broke.
	DefaultResubscribeDelay = 2 * time.Second

	// DefaultSendTimeout bounds one onion message send.
	DefaultSendTimeout = 30 * time.Second

	// maxPending bounds the deliveries kept while the payment hash or
	// the HTLC's first hop is not known yet, so a peer flooding us with
	// deliveries costs bounded memory.
	maxPending = 32

	// maxPendingPerPeer bounds one peer's share of them.
	maxPendingPerPeer = 4

	// DefaultHelloTimeout bounds the wait for the LSP's release_paths_ack
	// before paying.
	DefaultHelloTimeout = 5 * time.Second

	// DefaultRequestDelay is how long after the HTLC is in flight Pay
	// waits for the path delivery before asking for it
	// (release_paths_request); DefaultRequestInterval spaces further
	// requests, at most DefaultMaxRequests of them.
	DefaultRequestDelay    = 3 * time.Second
	DefaultRequestInterval = 5 * time.Second
	DefaultMaxRequests     = 5
)

// heldHTLCAvailable is the final-hop payload: TLV 72 with value 00, which
// LDK needs (it drops an empty value).
func heldHTLCAvailable() map[uint64][]byte {
	return map[uint64][]byte{onionmsg.HeldHTLCAvailableType: {0x00}}
}

var (
	// ErrInvalidConfig is wrapped by every error New returns.
	ErrInvalidConfig = errors.New("asyncsend: invalid config")

	// ErrInvalidRequest is wrapped by every error about a bad Request;
	// nothing was sent.
	ErrInvalidRequest = errors.New("asyncsend: invalid request")

	// ErrPayment is returned when lnd refuses the payment (e.g. the
	// invoice is already paid or expired).
	ErrPayment = errors.New("asyncsend: lnd refused the payment")

	// ErrStreamEnded is returned when lnd's payment stream ends before
	// the payment reached a final state; the payment may still be in
	// flight.
	ErrStreamEnded = errors.New("asyncsend: payment stream ended " +
		"before a final state")

	// ErrInterrupted is returned when the caller's context ends first.
	// lnd keeps the payment in flight.
	ErrInterrupted = errors.New("asyncsend: interrupted; the payment " +
		"stays in flight")
)

// CustomMessageSubscriber is the part of lnrpc.LightningClient that
// receives path deliveries.
type CustomMessageSubscriber interface {
	SubscribeCustomMessages(ctx context.Context,
		in *lnrpc.SubscribeCustomMessagesRequest,
		opts ...grpc.CallOption) (
		lnrpc.Lightning_SubscribeCustomMessagesClient, error)
}

// LSPMessenger is the part of lnrpc.LightningClient that talks to the LSP
// before and while paying: release_paths_request (48007) goes out through
// SendCustomMessage, and ListChannels finds the peers to greet.
type LSPMessenger interface {
	SendCustomMessage(ctx context.Context,
		in *lnrpc.SendCustomMessageRequest, opts ...grpc.CallOption) (
		*lnrpc.SendCustomMessageResponse, error)
	ListChannels(ctx context.Context, in *lnrpc.ListChannelsRequest,
		opts ...grpc.CallOption) (*lnrpc.ListChannelsResponse, error)
}

// PaymentSender is the part of routerrpc.RouterClient that pays.
type PaymentSender interface {
	SendPaymentV2(ctx context.Context, in *routerrpc.SendPaymentRequest,
		opts ...grpc.CallOption) (routerrpc.Router_SendPaymentV2Client,
		error)
}

// Messenger sends one onion message; *onionsend.Sender is one.
type Messenger interface {
	Send(ctx context.Context, path, replyPath *onionmsg.BlindedPath,
		finalTLVs map[uint64][]byte) (onionsend.Route, error)
}

// OnionMessengers returns a Config.NewMessenger that sends through
// onionsend with base, putting the LSP in front of base.Via.
func OnionMessengers(base onionsend.Config) func(*btcec.PublicKey) (
	Messenger, error) {

	return func(lsp *btcec.PublicKey) (Messenger, error) {
		cfg := base
		cfg.Via = append([]*btcec.PublicKey{lsp}, base.Via...)
		return onionsend.New(cfg)
	}
}

// Config configures a Payer.
type Config struct {
	// Messages is our lnd's custom message stream.
	Messages CustomMessageSubscriber

	// Router is our lnd's router.
	Router PaymentSender

	// NewMessenger returns the Messenger for one held HTLC; lsp is the
	// peer that delivered its release paths, to route through when the
	// recipient's introduction node is not our peer.
	NewMessenger func(lsp *btcec.PublicKey) (Messenger, error)

	// Clock stamps progress and drives the resubscribe delay.
	Clock clock.Clock

	// Rand is where keysend preimages come from; default crypto/rand.
	Rand io.Reader

	// ResubscribeDelay and SendTimeout default to the constants above.
	ResubscribeDelay time.Duration
	SendTimeout      time.Duration

	// LSP, when set, lets Pay greet the LSP before paying (a hello
	// release_paths_request, answered by release_paths_ack: without it a
	// holdd LSP does not hold the HTLC) and ask for the path delivery
	// when it does not come. Nil: neither.
	LSP LSPMessenger

	// HelloTimeout, RequestDelay, RequestInterval and MaxRequests
	// default to the constants above.
	HelloTimeout    time.Duration
	RequestDelay    time.Duration
	RequestInterval time.Duration
	MaxRequests     int
}

// Payer makes async payments. It keeps no state between payments; each
// Pay call runs its own subscriptions.
type Payer struct {
	cfg Config
}

// New checks cfg and returns a Payer.
func New(cfg Config) (*Payer, error) {
	switch {
	case cfg.Messages == nil:
		return nil, fmt.Errorf("%w: no custom message client",
			ErrInvalidConfig)
	case cfg.Router == nil:
		return nil, fmt.Errorf("%w: no router client", ErrInvalidConfig)
	case cfg.NewMessenger == nil:
		return nil, fmt.Errorf("%w: no messenger", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.ResubscribeDelay <= 0 {
		cfg.ResubscribeDelay = DefaultResubscribeDelay
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = DefaultSendTimeout
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	if cfg.RequestDelay <= 0 {
		cfg.RequestDelay = DefaultRequestDelay
	}
	if cfg.RequestInterval <= 0 {
		cfg.RequestInterval = DefaultRequestInterval
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = DefaultMaxRequests
	}
	return &Payer{cfg: cfg}, nil
}

// Request is one async payment: a BOLT 11 invoice or a keysend, and the
// recipient's message paths to tell it the HTLC is held.
type Request struct {
	// PaymentRequest is a BOLT 11 invoice. Exactly one of it and Dest
	// is set.
	PaymentRequest string

	// Dest is the keysend recipient.
	Dest *btcec.PublicKey

	// AmtSat is the keysend amount, or the amount of an invoice that
	// names none.
	AmtSat int64

	// OutgoingChanID, if set, is the only channel to pay out of: the
	// one to the LSP.
	OutgoingChanID uint64

	// FeeLimitSat is the most fee to pay; 0 allows only fee-free
	// routes, as in lnd.
	FeeLimitSat int64

	// TimeoutSeconds bounds lnd's attempts to find a route (default
	// 60); a held HTLC stays in flight regardless.
	TimeoutSeconds int32

	// CltvLimit caps the route's total time lock; 0 is lnd's maximum.
	CltvLimit int32

	// HoldType is the first-hop TLV that asks for the hold; default
	// plugin.DefaultHoldType.
	HoldType uint64

	// RecipientPaths are the recipient's blinded message paths.
	RecipientPaths []*onionmsg.BlindedPath

	// MinMessages is how many held_htlc_available messages to send
	// per held HTLC (default 2), at most one per release path.
	MinMessages int
}

func (r *Request) validate() error {
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil request", ErrInvalidRequest)
	case r.PaymentRequest == "" && r.Dest == nil:
		return fmt.Errorf("%w: neither an invoice nor a keysend "+
			"destination", ErrInvalidRequest)
	case r.PaymentRequest != "" && r.Dest != nil:
		return fmt.Errorf("%w: both an invoice and a keysend "+
			"destination", ErrInvalidRequest)
	case r.Dest != nil && r.AmtSat <= 0:
		return fmt.Errorf("%w: keysend needs a positive amount",
			ErrInvalidRequest)
	case r.AmtSat < 0 || r.FeeLimitSat < 0 || r.TimeoutSeconds < 0 ||
		r.CltvLimit < 0 || r.MinMessages < 0:
		return fmt.Errorf("%w: negative amount, fee limit, timeout, "+
			"cltv limit or message count", ErrInvalidRequest)
	case r.HoldType != 0 && r.HoldType < lnwire.MinCustomRecordsTlvType:
		return fmt.Errorf("%w: hold type %d is below %d, lnd cannot "+
			"send it", ErrInvalidRequest, r.HoldType,
			lnwire.MinCustomRecordsTlvType)
	case len(r.RecipientPaths) == 0:
		return fmt.Errorf("%w: no recipient path", ErrInvalidRequest)
	}
	for i, p := range r.RecipientPaths {
		if _, err := p.Bytes(); err != nil {
			return fmt.Errorf("%w: recipient path %d: %w",
				ErrInvalidRequest, i, err)
		}
	}
	return nil
}

// Stage names a step of an async payment.
type Stage string

const (
	// StagePaymentInFlight: lnd took the payment. Reported once.
	StagePaymentInFlight Stage = "payment_in_flight"

	// StageHeld: the LSP holds an HTLC of ours and sent its release
	// paths.
	StageHeld Stage = "held"

	// StageMessageSent: one held_htlc_available went out.
	StageMessageSent Stage = "held_htlc_available_sent"

	// StageMessageFailed: one held_htlc_available could not be sent;
	// the others are tried all the same.
	StageMessageFailed Stage = "held_htlc_available_failed"

	// StageSucceeded: the recipient claimed the payment.
	StageSucceeded Stage = "succeeded"

	// StageFailed: the payment failed for good.
	StageFailed Stage = "failed"
)

// Held is an HTLC the LSP holds, from its path delivery.
type Held struct {
	// LSP is the peer that delivered the paths.
	LSP route.Vertex

	// ChanID and HtlcID are the HTLC's incoming circuit key at the LSP.
	ChanID, HtlcID uint64

	AmountMsat uint64

	// Paths is how many release paths came.
	Paths int

	// ExpiresAt is when the release paths stop working.
	ExpiresAt time.Time
}

// MessageReport is how one held_htlc_available went.
type MessageReport struct {
	// ChanID and HtlcID name the held HTLC the message is about.
	ChanID, HtlcID uint64

	// Index is the message's number among this HTLC's messages.
	Index int

	// RecipientPath and ReleasePath are the indexes of the path the
	// message took and of the release path it carried as reply path.
	RecipientPath, ReleasePath int

	// Route says which peer took it and whether through the LSP.
	Route onionsend.Route

	// Err is set when the message did not go out.
	Err error
}

// Progress is one step of a payment.
type Progress struct {
	Stage Stage
	Time  time.Time

	// PaymentHash is zero until lnd names it.
	PaymentHash lntypes.Hash

	// Attempts is the number of HTLC attempts lnd reported
	// (StagePaymentInFlight).
	Attempts int

	// Held is set for StageHeld.
	Held *Held

	// Message is set for StageMessageSent and StageMessageFailed.
	Message *MessageReport

	// Preimage and FeeMsat are set for StageSucceeded.
	Preimage lntypes.Preimage
	FeeMsat  int64

	// FailureReason is set for StageFailed.
	FailureReason lnrpc.PaymentFailureReason
}

// Ignored counts path deliveries Pay did not act on.
type Ignored struct {
	// Undecodable: a 48001 message that is not a path delivery.
	Undecodable int

	// OtherPayment: a delivery for another payment hash.
	OtherPayment int

	// NotFirstHop: a delivery for our hash from a peer none of our
	// HTLCs went through; only the LSP that holds it can send one.
	NotFirstHop int

	// Duplicate: a second delivery for an HTLC already handled.
	Duplicate int

	// Expired: release paths that had already expired.
	Expired int

	// Overflow: deliveries dropped because too many were waiting.
	Overflow int
}

// Result is how a payment ended.
type Result struct {
	// PaymentHash is zero if lnd never named it.
	PaymentHash lntypes.Hash

	// Status is lnd's last reported status.
	Status lnrpc.Payment_PaymentStatus

	Preimage      lntypes.Preimage
	ValueMsat     int64
	FeeMsat       int64
	FailureReason lnrpc.PaymentFailureReason

	// Held are the HTLCs the LSP reported holding.
	Held []Held

	// MessagesSent and MessagesFailed count held_htlc_available sends.
	MessagesSent, MessagesFailed int

	Ignored Ignored

	// SubscriptionDrops counts custom message streams that broke.
	SubscriptionDrops int

	// Greeted and Acked count the peers sent a hello before paying and
	// those that answered it.
	Greeted, Acked int

	// PathRequests counts release_paths_request messages sent because
	// no path delivery came.
	PathRequests int
}

// Succeeded reports whether the payment settled.
func (r *Result) Succeeded() bool {
	return r.Status == lnrpc.Payment_SUCCEEDED
}

// Pay pays req through lnd with the hold signal and follows it to its end,
// calling onProgress (if set) on Pay's goroutine at each step. It returns
// the result once lnd reports the payment succeeded or failed; a failed
// payment is a result, not an error. If ctx ends first it returns the
// result so far and an error wrapping ErrInterrupted: lnd keeps the
// payment in flight.
func (p *Payer) Pay(ctx context.Context, req *Request,
	onProgress func(Progress)) (*Result, error) {

	if err := req.validate(); err != nil {
		return nil, err
	}
	run := &payment{
		cfg:       p.cfg,
		req:       req,
		report:    onProgress,
		firstHops: make(map[route.Vertex]struct{}),
		handled:   make(map[plugin.CircuitKey]struct{}),
		res:       &Result{},
	}
	sendReq, err := run.sendPaymentRequest()
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	var (
		wg    sync.WaitGroup
		drops atomic.Int64
	)
	defer func() {
		cancel()
		wg.Wait()
		run.res.SubscriptionDrops = int(drops.Load())
	}()

	// Subscribe before paying, so no delivery can slip by.
	sub, err := p.cfg.Messages.SubscribeCustomMessages(
		ctx, &lnrpc.SubscribeCustomMessagesRequest{},
	)
	if err != nil {
		return nil, fmt.Errorf("subscribe to custom messages: %w", err)
	}
	msgs := make(chan *lnrpc.CustomMessage)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.readMessages(ctx, sub, msgs, &drops)
	}()

	// Tell the LSP we read its path deliveries before the HTLC reaches
	// it: a holdd LSP holds HTLCs only for senders that did.
	if p.cfg.LSP != nil {
		if err := run.hello(ctx, msgs); err != nil {
			return run.res, err
		}
	}

	stream, err := p.cfg.Router.SendPaymentV2(ctx, sendReq)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPayment, err)
	}
	updates := make(chan paymentUpdate)
	wg.Add(1)
	go func() {
		defer wg.Done()
		readPayments(ctx, stream, updates)
	}()

	gotUpdate := false
	for {
		select {
		case m := <-msgs:
			run.onMessage(ctx, m)

		case <-run.requestTimer:
			run.requestPaths(ctx)

		case u := <-updates:
			switch {
			case u.err != nil && ctx.Err() != nil:
				return run.res, fmt.Errorf("%w: %w",
					ErrInterrupted, ctx.Err())

			case errors.Is(u.err, io.EOF):
				return run.res, ErrStreamEnded

			case u.err != nil && !gotUpdate:
				return run.res, fmt.Errorf("%w: %w", ErrPayment,
					u.err)

			case u.err != nil:
				return run.res, fmt.Errorf("%w: %w",
					ErrStreamEnded, u.err)
			}
			gotUpdate = true
			if run.onUpdate(ctx, u.payment) {
				return run.res, nil
			}
			run.armRequest()

		case <-ctx.Done():
			return run.res, fmt.Errorf("%w: %w", ErrInterrupted,
				ctx.Err())
		}
	}
}

type paymentUpdate struct {
	payment *lnrpc.Payment
	err     error
}

func readPayments(ctx context.Context,
	stream routerrpc.Router_SendPaymentV2Client,
	updates chan<- paymentUpdate) {

	for {
		pmt, err := stream.Recv()
		select {
		case updates <- paymentUpdate{payment: pmt, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// readMessages passes on path deliveries and release_paths_acks until ctx
// ends. A broken stream is subscribed again after a delay: lnd does not
// queue custom messages, so one that arrives in the gap is lost; Pay then
// asks the LSP for the paths again (release_paths_request), and the LSP
// also sends them again when we reconnect to it.
func (p *Payer) readMessages(ctx context.Context,
	sub lnrpc.Lightning_SubscribeCustomMessagesClient,
	msgs chan<- *lnrpc.CustomMessage, drops *atomic.Int64) {

	for {
		if sub == nil {
			select {
			case <-p.cfg.Clock.TickAfter(p.cfg.ResubscribeDelay):
			case <-ctx.Done():
				return
			}
			var err error
			sub, err = p.cfg.Messages.SubscribeCustomMessages(
				ctx, &lnrpc.SubscribeCustomMessagesRequest{},
			)
			if err != nil {
				sub = nil
				continue
			}
		}

		m, err := sub.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			drops.Add(1)
			sub = nil
			continue
		}
		if m.Type != release.PathDeliveryMsgType &&
			m.Type != release.PathsAckMsgType {

			continue
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return
		}
	}
}

// pendingDelivery is a delivery waiting for the payment hash or for lnd to
// report an HTLC through its peer.
type pendingDelivery struct {
	peer     route.Vertex
	peerKey  *btcec.PublicKey
	delivery *release.PathDelivery
}

// payment is one Pay call's state; only Pay's goroutine touches it.
type payment struct {
	cfg    Config
	req    *Request
	report func(Progress)

	hash      lntypes.Hash
	hashKnown bool

	// firstHops are the first hops of our HTLC attempts: the only
	// peers that can hold one of them.
	firstHops map[route.Vertex]struct{}
	pending   []pendingDelivery
	handled   map[plugin.CircuitKey]struct{}

	inFlightReported bool
	res              *Result

	// requestTimer fires when it is time to ask the first hops for the
	// path delivery; nil while not armed.
	requestTimer <-chan time.Time
	requestArmed bool
}

// sendPaymentRequest builds lnd's request; for keysend it draws the
// preimage, so the hash is known before anything is sent.
func (r *payment) sendPaymentRequest() (*routerrpc.SendPaymentRequest,
	error) {

	holdType := r.req.HoldType
	if holdType == 0 {
		holdType = plugin.DefaultHoldType
	}
	timeout := r.req.TimeoutSeconds
	if timeout == 0 {
		timeout = DefaultTimeoutSeconds
	}
	sr := &routerrpc.SendPaymentRequest{
		PaymentRequest: r.req.PaymentRequest,
		Amt:            r.req.AmtSat,
		TimeoutSeconds: timeout,
		FeeLimitSat:    r.req.FeeLimitSat,
		CltvLimit:      r.req.CltvLimit,
		// One HTLC: each held part would need its own release.
		MaxParts: 1,
		FirstHopCustomRecords: map[uint64][]byte{
			holdType: {},
		},
	}
	if r.req.OutgoingChanID != 0 {
		sr.OutgoingChanIds = []uint64{r.req.OutgoingChanID}
	}
	if r.req.Dest != nil {
		var preimage lntypes.Preimage
		if _, err := io.ReadFull(r.cfg.Rand, preimage[:]); err != nil {
			return nil, fmt.Errorf("keysend preimage: %w", err)
		}
		r.hash = sha256.Sum256(preimage[:])
		r.hashKnown = true
		r.res.PaymentHash = r.hash
		sr.Dest = r.req.Dest.SerializeCompressed()
		sr.PaymentHash = r.hash[:]
		sr.DestCustomRecords = map[uint64][]byte{
			record.KeySendType: preimage[:],
		}
	}
	return sr, nil
}

func (r *payment) emit(p Progress) {
	p.Time = r.cfg.Clock.Now()
	p.PaymentHash = r.hash
	if r.report != nil {
		r.report(p)
	}
}

// onMessage takes a path-delivery custom message. It only parses it; the
// delivery is acted on once it matches our payment and HTLC.
func (r *payment) onMessage(ctx context.Context, m *lnrpc.CustomMessage) {
	if m.Type != release.PathDeliveryMsgType {
		// A late release_paths_ack.
		return
	}
	peerKey, err := btcec.ParsePubKey(m.Peer)
	if err != nil {
		r.res.Ignored.Undecodable++
		return
	}
	d, err := release.DecodePathDelivery(m.Data)
	if err != nil {
		r.res.Ignored.Undecodable++
		return
	}
	pd := pendingDelivery{
		peer:     route.NewVertex(peerKey),
		peerKey:  peerKey,
		delivery: d,
	}
	// A full queue drops its oldest entry from the same peer, else its
	// oldest: a peer flooding us cannot keep the LSP's delivery out.
	if len(r.pending) >= maxPending || r.pendingFrom(pd.peer) >=
		maxPendingPerPeer {

		r.res.Ignored.Overflow++
		r.dropOldest(pd.peer)
	}
	r.pending = append(r.pending, pd)
	r.processPending(ctx)
}

// pendingFrom counts the waiting deliveries from peer.
func (r *payment) pendingFrom(peer route.Vertex) int {
	n := 0
	for _, pd := range r.pending {
		if pd.peer == peer {
			n++
		}
	}
	return n
}

// dropOldest drops peer's oldest waiting delivery, or the oldest of all
// when peer has none waiting.
func (r *payment) dropOldest(peer route.Vertex) {
	i := slices.IndexFunc(r.pending, func(pd pendingDelivery) bool {
		return pd.peer == peer
	})
	if i < 0 {
		i = 0
	}
	r.pending = slices.Delete(r.pending, i, i+1)
}

// processPending acts on every waiting delivery that is for our payment
// and comes from the first hop of one of our HTLCs, drops those that can
// never match and keeps the rest waiting.
func (r *payment) processPending(ctx context.Context) {
	if !r.hashKnown {
		return
	}
	var keep []pendingDelivery
	for _, pd := range r.pending {
		d := pd.delivery
		if _, ok := r.firstHops[pd.peer]; !ok &&
			d.PaymentHash == r.hash {

			keep = append(keep, pd)
			continue
		}
		switch _, done := r.handled[d.Key]; {
		case d.PaymentHash != r.hash:
			r.res.Ignored.OtherPayment++

		case done:
			r.res.Ignored.Duplicate++

		case !d.ExpiresAt.After(r.cfg.Clock.Now()):
			r.res.Ignored.Expired++

		default:
			r.handleDelivery(ctx, pd)
		}
	}
	r.pending = keep
}

// planMessages pairs recipient path i (cycling) with release path i, so
// every message carries a distinct reply path.
func planMessages(recipient, releasePaths, minMessages int) [][2]int {
	n := min(max(minMessages, recipient), releasePaths)
	plan := make([][2]int, n)
	for i := range plan {
		plan[i] = [2]int{i % recipient, i}
	}
	return plan
}

// handleDelivery reports the held HTLC and sends held_htlc_available over
// the recipient's paths, one distinct release path as reply path each. A
// failed send does not stop the others.
func (r *payment) handleDelivery(ctx context.Context, pd pendingDelivery) {
	d := pd.delivery
	r.handled[d.Key] = struct{}{}
	held := Held{
		LSP:        pd.peer,
		ChanID:     d.Key.ChanID,
		HtlcID:     d.Key.HtlcID,
		AmountMsat: d.AmountMsat,
		Paths:      len(d.Paths),
		ExpiresAt:  d.ExpiresAt,
	}
	r.res.Held = append(r.res.Held, held)
	r.emit(Progress{Stage: StageHeld, Held: &held})

	minMessages := r.req.MinMessages
	if minMessages == 0 {
		minMessages = DefaultMinMessages
	}
	messenger, mErr := r.cfg.NewMessenger(pd.peerKey)
	plan := planMessages(len(r.req.RecipientPaths), len(d.Paths),
		minMessages)
	for i, pair := range plan {
		rep := MessageReport{
			ChanID:        d.Key.ChanID,
			HtlcID:        d.Key.HtlcID,
			Index:         i,
			RecipientPath: pair[0],
			ReleasePath:   pair[1],
			Err:           mErr,
		}
		if mErr == nil {
			sendCtx, cancel := context.WithTimeout(
				ctx, r.cfg.SendTimeout,
			)
			rep.Route, rep.Err = messenger.Send(sendCtx,
				r.req.RecipientPaths[pair[0]], d.Paths[pair[1]],
				heldHTLCAvailable())
			cancel()
		}

		stage := StageMessageSent
		if rep.Err != nil {
			stage = StageMessageFailed
			r.res.MessagesFailed++
		} else {
			r.res.MessagesSent++
		}
		r.emit(Progress{Stage: stage, Message: &rep})
	}
}

// onUpdate takes one payment update and reports whether it is final.
func (r *payment) onUpdate(ctx context.Context, pmt *lnrpc.Payment) bool {
	if pmt == nil {
		return false
	}
	if !r.hashKnown {
		if h, err := hex.DecodeString(pmt.PaymentHash); err == nil &&
			len(h) == len(r.hash) {

			copy(r.hash[:], h)
			r.hashKnown = true
			r.res.PaymentHash = r.hash
		}
	}
	for _, h := range pmt.Htlcs {
		if h.Route == nil || len(h.Route.Hops) == 0 {
			continue
		}
		hop, err := route.NewVertexFromStr(h.Route.Hops[0].PubKey)
		if err != nil {
			continue
		}
		r.firstHops[hop] = struct{}{}
	}
	r.res.Status = pmt.Status
	r.res.ValueMsat = pmt.ValueMsat
	r.res.FeeMsat = pmt.FeeMsat

	switch pmt.Status {
	case lnrpc.Payment_SUCCEEDED:
		if b, err := hex.DecodeString(pmt.PaymentPreimage); err == nil &&
			len(b) == 32 {

			r.res.Preimage = lntypes.Preimage(b)
		}
		r.finish()
		r.emit(Progress{Stage: StageSucceeded,
			Preimage: r.res.Preimage, FeeMsat: pmt.FeeMsat})
		return true

	case lnrpc.Payment_FAILED:
		r.res.FailureReason = pmt.FailureReason
		r.finish()
		r.emit(Progress{Stage: StageFailed,
			FailureReason: pmt.FailureReason})
		return true

	case lnrpc.Payment_INITIATED, lnrpc.Payment_IN_FLIGHT:
		if !r.inFlightReported {
			r.inFlightReported = true
			r.emit(Progress{Stage: StagePaymentInFlight,
				Attempts: len(pmt.Htlcs)})
		}
	}
	r.processPending(ctx)
	return false
}

// finish counts the deliveries still waiting when the payment ends.
func (r *payment) finish() {
	for _, pd := range r.pending {
		if r.hashKnown && pd.delivery.PaymentHash != r.hash {
			r.res.Ignored.OtherPayment++
		} else {
			r.res.Ignored.NotFirstHop++
		}
	}
	r.pending = nil
}

// lspPeers are the peers to greet: the peer of the requested outgoing
// channel, or every peer we have an active channel with.
func (r *payment) lspPeers(ctx context.Context) (map[route.Vertex]struct{},
	error) {

	resp, err := r.cfg.LSP.ListChannels(ctx, &lnrpc.ListChannelsRequest{
		ActiveOnly: true,
	})
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	peers := make(map[route.Vertex]struct{})
	for _, ch := range resp.GetChannels() {
		if r.req.OutgoingChanID != 0 && ch.ChanId != r.req.OutgoingChanID {
			continue
		}
		peer, err := route.NewVertexFromStr(ch.RemotePubkey)
		if err != nil {
			continue
		}
		peers[peer] = struct{}{}
	}
	return peers, nil
}

// hello sends an empty release_paths_request to each LSP peer and waits,
// at most HelloTimeout, until each answered with release_paths_ack. A peer
// that does not answer (no holdd, or an old one) is no error: the payment
// goes ahead, and such an LSP decides by itself whether to hold.
func (r *payment) hello(ctx context.Context,
	msgs <-chan *lnrpc.CustomMessage) error {

	peers, err := r.lspPeers(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPayment, err)
	}
	waiting := make(map[route.Vertex]struct{}, len(peers))
	for peer := range peers {
		_, err := r.cfg.LSP.SendCustomMessage(ctx,
			&lnrpc.SendCustomMessageRequest{
				Peer: peer[:],
				Type: release.PathsRequestMsgType,
				Data: []byte{},
			})
		if err != nil {
			continue
		}
		r.res.Greeted++
		waiting[peer] = struct{}{}
	}
	timeout := r.cfg.Clock.TickAfter(r.cfg.HelloTimeout)
	for len(waiting) > 0 {
		select {
		case m := <-msgs:
			if m.Type != release.PathsAckMsgType ||
				len(m.Peer) != 33 {

				r.onMessage(ctx, m)
				continue
			}
			if _, ok := waiting[route.Vertex(m.Peer)]; ok {
				delete(waiting, route.Vertex(m.Peer))
				r.res.Acked++
			}
		case <-timeout:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
		}
	}
	return nil
}

// armRequest starts the wait for the path delivery once an HTLC of ours is
// in flight through a known first hop.
func (r *payment) armRequest() {
	if r.cfg.LSP == nil || r.requestArmed || !r.hashKnown ||
		len(r.firstHops) == 0 || len(r.handled) > 0 {

		return
	}
	r.requestArmed = true
	r.requestTimer = r.cfg.Clock.TickAfter(r.cfg.RequestDelay)
}

// requestPaths asks each first hop for the paths of our held HTLC when no
// delivery has come yet, and waits RequestInterval for the next try, up
// to MaxRequests.
func (r *payment) requestPaths(ctx context.Context) {
	r.requestTimer = nil
	if len(r.handled) > 0 || r.res.PathRequests >= r.cfg.MaxRequests {
		return
	}
	hash := r.hash
	data, err := (&release.PathsRequest{PaymentHash: &hash}).Encode()
	if err != nil {
		return
	}
	for peer := range r.firstHops {
		_, _ = r.cfg.LSP.SendCustomMessage(ctx,
			&lnrpc.SendCustomMessageRequest{
				Peer: peer[:],
				Type: release.PathsRequestMsgType,
				Data: data,
			})
	}
	r.res.PathRequests++
	if r.res.PathRequests < r.cfg.MaxRequests {
		r.requestTimer = r.cfg.Clock.TickAfter(r.cfg.RequestInterval)
	}
}
