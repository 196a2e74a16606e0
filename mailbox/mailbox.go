package mailbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// Defaults for zero-valued Limits fields. A default onion message (1300
// byte payload) is a 1366-byte packet; BOLT 4's largest is 32834 bytes.
const (
	// DefaultMaxMessageBytes admits every packet size BOLT 4 defines.
	DefaultMaxMessageBytes = 1 + 33 + 32768 + 32

	// DefaultMaxPerRecipient keeps a recipient's backlog to what one
	// wake-up can drain in about a second.
	DefaultMaxPerRecipient = 100

	// DefaultMaxBytesPerRecipient is 1 MiB: 100 default-size messages
	// fit, 31 of the largest.
	DefaultMaxBytesPerRecipient = 1 << 20

	// DefaultMaxTotal and DefaultMaxTotalBytes bound the whole store
	// (100k messages, 256 MiB), whatever the number of recipients.
	DefaultMaxTotal      = 100_000
	DefaultMaxTotalBytes = 256 << 20

	// DefaultMaxAge: a message for a held HTLC is worthless once the
	// HTLC has been failed back, and few holds outlast three days.
	DefaultMaxAge = 72 * time.Hour

	// DefaultSweepInterval is how often expired messages are dropped
	// and stalled deliveries retried.
	DefaultSweepInterval = time.Minute

	// DefaultSendTimeout bounds one SendOnionMessage call.
	DefaultSendTimeout = 30 * time.Second

	// DefaultMaxDrains bounds concurrent deliveries to lnd.
	DefaultMaxDrains = 8

	// DefaultRegisterInterval is the least time between two
	// registrations from one peer that are acted on.
	DefaultRegisterInterval = time.Second

	// DefaultMinBackoff and DefaultMaxBackoff bound the wait before
	// resubscribing to lnd.
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// drainBatch is how many messages a delivery reads from the store at once.
const drainBatch = 16

var (
	// ErrInvalidConfig is wrapped by every error New returns.
	ErrInvalidConfig = errors.New("mailbox: invalid config")

	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("mailbox: already started")

	// ErrStopped is returned by Start after Stop.
	ErrStopped = errors.New("mailbox: stopped")
)

// Outcome is what Handle did with a message.
type Outcome string

const (
	// OutcomeForwarded: the recipient was online and lnd took the
	// message at once.
	OutcomeForwarded Outcome = "forwarded"

	// OutcomeStored: the message is stored and goes out when the
	// recipient is online (behind its older messages).
	OutcomeStored Outcome = "stored"

	// OutcomeUnregistered: the next node is not a registered recipient.
	OutcomeUnregistered Outcome = "dropped_unregistered"

	// OutcomeTooLarge: the packet exceeds MaxMessageBytes.
	OutcomeTooLarge Outcome = "dropped_too_large"

	// OutcomeInvalid: no message, no path key or an empty packet.
	OutcomeInvalid Outcome = "dropped_invalid"

	// OutcomeNotRunning: the mailbox is not started or already stopped.
	OutcomeNotRunning Outcome = "dropped_not_running"

	// OutcomeSendUncertain: the send to lnd timed out, so the message
	// may or may not have gone out; it was dropped, not retried.
	OutcomeSendUncertain Outcome = "dropped_send_uncertain"

	// OutcomeStoreError: the message could not be stored.
	OutcomeStoreError Outcome = "store_error"
)

// Reasons a message was dropped, the keys of Stats.Dropped.
const (
	DropUnregistered   = "unregistered"
	DropTooLarge       = "too_large"
	DropInvalid        = "invalid"
	DropNotRunning     = "not_running"
	DropStoreError     = "store_error"
	DropRecipientCount = string(EvictRecipientCount)
	DropRecipientBytes = string(EvictRecipientBytes)
	DropTotalCount     = string(EvictTotalCount)
	DropTotalBytes     = string(EvictTotalBytes)
	DropExpired        = "expired"

	// DropClaimedAtStart: a message was being handed to lnd when holdd
	// stopped; it may have gone out, so it is never sent again.
	DropClaimedAtStart = "claimed_at_restart"

	// DropSendUncertain: the send timed out or was cancelled, so lnd may
	// have sent it; it is not sent again.
	DropSendUncertain = "send_uncertain"

	// DropRecipientRemoved: the recipient was unregistered.
	DropRecipientRemoved = "recipient_unregistered"

	// DropBusy: the queue in front of the mailbox was full (see
	// AsyncForwarder).
	DropBusy = "busy"
)

// Forwarder hands an onion message to a connected peer of lnd. onionsend's
// Sender implements it. An error means lnd did not send the message, unless
// it is a timeout or cancellation, after which nobody knows.
type Forwarder interface {
	SendToPeer(ctx context.Context, peer route.Vertex,
		msg *lnwire.OnionMessage) error
}

// PeerClient is the part of lnd's Lightning service that tells the mailbox
// which peers are connected.
type PeerClient interface {
	ListPeers(ctx context.Context, in *lnrpc.ListPeersRequest,
		opts ...grpc.CallOption) (*lnrpc.ListPeersResponse, error)

	SubscribePeerEvents(ctx context.Context,
		in *lnrpc.PeerEventSubscription, opts ...grpc.CallOption) (
		lnrpc.Lightning_SubscribePeerEventsClient, error)
}

// CustomMessenger is the part of lnd's Lightning service the registration
// exchange runs over, on both sides.
type CustomMessenger interface {
	SubscribeCustomMessages(ctx context.Context,
		in *lnrpc.SubscribeCustomMessagesRequest,
		opts ...grpc.CallOption) (
		lnrpc.Lightning_SubscribeCustomMessagesClient, error)

	SendCustomMessage(ctx context.Context,
		in *lnrpc.SendCustomMessageRequest,
		opts ...grpc.CallOption) (*lnrpc.SendCustomMessageResponse,
		error)
}

// ChannelLister is the part of lnd's Lightning service the registration
// policy uses: a peer with a channel to the LSP may register.
type ChannelLister interface {
	ListChannels(ctx context.Context, in *lnrpc.ListChannelsRequest,
		opts ...grpc.CallOption) (*lnrpc.ListChannelsResponse, error)
}

// MessageStore is the mailbox's durable state; *store.Store implements it.
type MessageStore interface {
	RegisterMailboxRecipient(ctx context.Context, peer route.Vertex,
		now time.Time) (Recipient, bool, error)
	UnregisterMailboxRecipient(ctx context.Context, peer route.Vertex) (
		[]RemovedMessage, bool, error)
	ListMailboxRecipients(ctx context.Context) ([]Recipient,
		error)
	PutMailboxMessage(ctx context.Context, m StoredMessage,
		claim bool, lim StoreLimits) (PutResult, error)
	NextMailboxMessages(ctx context.Context, recipient route.Vertex,
		limit int) ([]StoredMessage, error)
	ClaimMailboxMessage(ctx context.Context, id int64,
		now time.Time) (bool, error)
	UnclaimMailboxMessage(ctx context.Context, id int64) (bool, error)
	DeleteMailboxMessage(ctx context.Context, id int64) (bool, error)
	ExpireMailboxMessages(ctx context.Context, cutoff time.Time) (
		[]RemovedMessage, error)
	DropClaimedMailboxMessages(ctx context.Context) (
		[]RemovedMessage, error)
	MailboxRecipientsWithMessages(ctx context.Context) ([]route.Vertex, error)
	MailboxUsage(ctx context.Context) (int64, int64, error)
}

// Limits bound the store and pace the mailbox. Zero fields take the
// defaults; negative ones are refused.
type Limits struct {
	// MaxMessageBytes is the largest packet accepted.
	MaxMessageBytes int64

	// MaxPerRecipient and MaxBytesPerRecipient bound one recipient's
	// stored messages; its oldest go first.
	MaxPerRecipient      int64
	MaxBytesPerRecipient int64

	// MaxTotal and MaxTotalBytes bound all stored messages; the
	// globally oldest go first.
	MaxTotal      int64
	MaxTotalBytes int64

	// MaxAge is how long a message is kept.
	MaxAge time.Duration

	// SweepInterval is how often expired messages are dropped and
	// deliveries that stalled on an error are retried.
	SweepInterval time.Duration

	// SendTimeout bounds one send to lnd.
	SendTimeout time.Duration

	// MaxDrains bounds how many recipients are delivered to at once:
	// the sends to lnd in flight, one per recipient at most.
	MaxDrains int

	// RegisterInterval is the least time between two registrations
	// from one peer that are acted on; faster ones are ignored.
	RegisterInterval time.Duration
}

func (l *Limits) validate() error {
	if l.MaxMessageBytes < 0 || l.MaxPerRecipient < 0 ||
		l.MaxBytesPerRecipient < 0 || l.MaxTotal < 0 ||
		l.MaxTotalBytes < 0 || l.MaxAge < 0 || l.SweepInterval < 0 ||
		l.SendTimeout < 0 || l.MaxDrains < 0 || l.RegisterInterval < 0 {

		return fmt.Errorf("%w: negative limit", ErrInvalidConfig)
	}
	setDefault(&l.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&l.MaxPerRecipient, DefaultMaxPerRecipient)
	setDefault(&l.MaxBytesPerRecipient, DefaultMaxBytesPerRecipient)
	setDefault(&l.MaxTotal, DefaultMaxTotal)
	setDefault(&l.MaxTotalBytes, DefaultMaxTotalBytes)
	setDefault(&l.MaxAge, DefaultMaxAge)
	setDefault(&l.SweepInterval, DefaultSweepInterval)
	setDefault(&l.SendTimeout, DefaultSendTimeout)
	setDefault(&l.MaxDrains, DefaultMaxDrains)
	setDefault(&l.RegisterInterval, DefaultRegisterInterval)

	// A message that cannot fit would evict a recipient's whole backlog
	// and still be refused by the store.
	if l.MaxMessageBytes > l.MaxBytesPerRecipient ||
		l.MaxMessageBytes > l.MaxTotalBytes {

		return fmt.Errorf("%w: max message size %d exceeds a byte "+
			"bound", ErrInvalidConfig, l.MaxMessageBytes)
	}
	if l.MaxAge < time.Second {
		return fmt.Errorf("%w: max age %v is below a second",
			ErrInvalidConfig, l.MaxAge)
	}

	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Config configures a Mailbox.
type Config struct {
	// Store keeps registrations and messages.
	Store MessageStore

	// Forwarder sends messages through lnd.
	Forwarder Forwarder

	// Peers tells which peers lnd is connected to.
	Peers PeerClient

	// Messages carries the registration exchange.
	Messages CustomMessenger

	// Channels lists lnd's channels for the registration policy. It may
	// be nil when Open is set or only Allow may register.
	Channels ChannelLister

	// MailboxKey is holdd's peer-link node key, told to registering
	// recipients.
	MailboxKey *btcec.PublicKey

	// Open lets any peer register. Otherwise a peer may register if it
	// has a channel with lnd or is listed in Allow.
	Open  bool
	Allow []route.Vertex

	Limits Limits

	// MinBackoff and MaxBackoff bound the wait before resubscribing to
	// lnd's peer events and custom messages.
	MinBackoff, MaxBackoff time.Duration

	Clock  clock.Clock
	Logger logrus.FieldLogger
}

func (cfg *Config) validate() error {
	switch {
	case cfg.Store == nil:
		return fmt.Errorf("%w: store is required", ErrInvalidConfig)
	case cfg.Forwarder == nil:
		return fmt.Errorf("%w: forwarder is required", ErrInvalidConfig)
	case cfg.Peers == nil:
		return fmt.Errorf("%w: peer client is required",
			ErrInvalidConfig)
	case cfg.Messages == nil:
		return fmt.Errorf("%w: custom messenger is required",
			ErrInvalidConfig)
	case cfg.MailboxKey == nil:
		return fmt.Errorf("%w: mailbox key is required",
			ErrInvalidConfig)
	case cfg.Channels == nil && !cfg.Open && len(cfg.Allow) == 0:
		return fmt.Errorf("%w: no one could register: need a channel "+
			"lister, an allowlist or an open mailbox",
			ErrInvalidConfig)
	case cfg.MinBackoff < 0 || cfg.MaxBackoff < 0:
		return fmt.Errorf("%w: negative backoff", ErrInvalidConfig)
	}
	if err := cfg.Limits.validate(); err != nil {
		return err
	}
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, max(DefaultMaxBackoff, cfg.MinBackoff))
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

// Stats are the mailbox's gauges and counters since New.
type Stats struct {
	// StoredMessages and StoredBytes are what is stored now.
	StoredMessages int64
	StoredBytes    int64

	// Recipients is the number of registered recipients, and
	// OnlineRecipients how many of them are ready for delivery.
	Recipients       int
	OnlineRecipients int

	// Stored counts messages Handle stored (forwarded ones included,
	// since they are stored before they are sent).
	Stored uint64

	// ForwardedDirect counts messages Handle sent at once; Delivered
	// those sent later from the store.
	ForwardedDirect uint64
	Delivered       uint64

	// SendFailures counts sends lnd refused; the message stays stored.
	SendFailures uint64

	// Dropped counts messages dropped, by reason (Drop*).
	Dropped map[string]uint64

	// Registrations counts registration messages by outcome (Reg*).
	Registrations map[string]uint64

	// PeerEventsUp reports whether the peer event stream is open.
	PeerEventsUp bool
}

// RecipientInfo is a registration and what is stored for it.
type RecipientInfo struct {
	Recipient

	// Online reports whether the recipient is ready for delivery.
	Online bool
}

// recipientState is what the mailbox knows of one registered recipient
// besides what the store keeps. It lives in Mailbox.recipients exactly while
// the recipient is registered.
type recipientState struct {
	// ready is set once the recipient can take messages: connected, its
	// holdd registered again and its channel with us active.
	ready bool

	// offlineGen counts the recipient's PEER_OFFLINE events, so that a
	// readiness decided before one is not applied after it.
	offlineGen uint64

	// waiting is set while a channel waiter runs for the recipient.
	waiting bool
}

// Mailbox stores and delivers onion messages for registered recipients.
// See the package documentation for who owns what.
type Mailbox struct {
	cfg Config
	lim Limits
	log logrus.FieldLogger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// slots bounds the sends to lnd in flight, one per recipient at
	// most; slotWaiters counts the sends waiting for one.
	slots       chan struct{}
	slotWaiters atomic.Int32

	allow map[route.Vertex]struct{}

	// lastReg is when each peer's last registration was acted on. Only
	// the registration goroutine touches it.
	lastReg map[route.Vertex]time.Time

	// peersSynced is set once the first ListPeers was applied. Only the
	// peer goroutine touches it.
	peersSynced bool

	mu      sync.Mutex
	started bool
	stopped bool

	// recipients holds the registered recipients and their readiness.
	recipients map[route.Vertex]*recipientState

	// queues holds the running queue owners, at most one per
	// recipient; inboxSize is the capacity each one starts with.
	queues    map[route.Vertex]*queue
	inboxSize int

	peersUp bool
	stats   Stats
}

// New validates cfg and returns a stopped Mailbox.
func New(cfg Config) (*Mailbox, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	allow := make(map[route.Vertex]struct{}, len(cfg.Allow))
	for _, p := range cfg.Allow {
		allow[p] = struct{}{}
	}

	return &Mailbox{
		cfg:        cfg,
		lim:        cfg.Limits,
		log:        cfg.Logger,
		ctx:        ctx,
		cancel:     cancel,
		slots:      make(chan struct{}, cfg.Limits.MaxDrains),
		allow:      allow,
		lastReg:    make(map[route.Vertex]time.Time),
		recipients: make(map[route.Vertex]*recipientState),
		queues:     make(map[route.Vertex]*queue),
		inboxSize:  asyncPerRecipient,
		stats: Stats{
			Dropped:       make(map[string]uint64),
			Registrations: make(map[string]uint64),
		},
	}, nil
}

// Start loads the registrations, drops messages a previous run left
// claimed, drops expired ones, and starts following lnd's peers and
// registration messages.
func (m *Mailbox) Start(ctx context.Context) error {
	m.mu.Lock()
	switch {
	case m.stopped:
		m.mu.Unlock()
		return ErrStopped
	case m.started:
		m.mu.Unlock()
		return ErrAlreadyStarted
	}
	m.mu.Unlock()

	recipients, err := m.cfg.Store.ListMailboxRecipients(ctx)
	if err != nil {
		return err
	}
	claimed, err := m.cfg.Store.DropClaimedMailboxMessages(ctx)
	if err != nil {
		return err
	}
	if len(claimed) > 0 {
		m.log.Warnf("Dropped %d message(s) that were being sent when "+
			"holdd stopped: they may have gone out already",
			len(claimed))
	}
	count, bytes, err := m.cfg.Store.MailboxUsage(ctx)
	if err != nil {
		return err
	}

	m.mu.Lock()
	if m.stopped || m.started {
		m.mu.Unlock()
		return ErrStopped
	}
	m.started = true
	for _, r := range recipients {
		m.recipients[r.Peer] = &recipientState{}
	}
	m.stats.StoredMessages, m.stats.StoredBytes = count, bytes
	if len(claimed) > 0 {
		m.stats.Dropped[DropClaimedAtStart] += uint64(len(claimed))
	}
	m.wg.Add(3)
	m.mu.Unlock()

	m.sweep(ctx)
	m.log.Infof("Mailbox started: %d registered recipient(s), %d "+
		"stored message(s) (%d bytes)", len(recipients), count, bytes)

	go func() {
		defer m.wg.Done()
		m.runPeers()
	}()
	go func() {
		defer m.wg.Done()
		m.runRegistrations()
	}()
	go func() {
		defer m.wg.Done()
		m.runSweeper()
	}()

	return nil
}

// Stop ends the subscriptions and waits for in-flight sends, each bounded
// by SendTimeout. Stored messages stay stored. It is safe to call more than
// once and before Start.
func (m *Mailbox) Stop() error {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()

	m.cancel()
	m.wg.Wait()

	return nil
}

// running reports whether the mailbox takes messages. m.mu must be held.
func (m *Mailbox) running() bool {
	return m.started && !m.stopped
}

// HandleForward is Handle with a plain string outcome, the form the intake
// takes.
func (m *Mailbox) HandleForward(ctx context.Context, next route.Vertex,
	msg *lnwire.OnionMessage) string {

	return string(m.Handle(ctx, next, msg))
}

// Handle takes a message whose next hop, after our own, is next, and waits
// for the recipient's queue to deal with it: the queue stores it for a
// registered recipient, evicting older messages over a bound, and sends it
// at once if the recipient is ready and has nothing older waiting. Bad input
// changes nothing but a counter. The store write does not follow ctx: once
// the queue took the message, its outcome is counted whoever waits for it.
func (m *Mailbox) Handle(_ context.Context, next route.Vertex,
	msg *lnwire.OnionMessage) Outcome {

	if outcome, ok := m.admit(next, msg); !ok {
		return outcome
	}
	req := &putRequest{msg: msg, reply: make(chan Outcome, 1)}

	// Counted as a sender, the queue cannot retire before it took req.
	m.mu.Lock()
	q := m.queueLocked(next)
	if q != nil {
		q.senders++
	}
	m.mu.Unlock()
	if q == nil {
		m.drop(DropNotRunning, 1)
		return OutcomeNotRunning
	}

	handedOver := false
	select {
	case q.inbox <- req:
		handedOver = true
	case <-m.ctx.Done():
	}
	m.mu.Lock()
	q.senders--
	m.mu.Unlock()

	if handedOver {
		select {
		case outcome := <-req.reply:
			return outcome
		case <-q.exited:
		}
		// The queue answers every request it took before it exits.
		select {
		case outcome := <-req.reply:
			return outcome
		default:
		}
	}
	m.drop(DropNotRunning, 1)

	return OutcomeNotRunning
}

// enqueue hands a message to its recipient's queue without waiting: the
// AsyncForwarder's way in. taken is called once the queue took it. A full
// inbox drops the message (DropBusy).
func (m *Mailbox) enqueue(next route.Vertex, msg *lnwire.OnionMessage,
	taken func()) Outcome {

	if outcome, ok := m.admit(next, msg); !ok {
		return outcome
	}
	req := &putRequest{msg: msg, taken: taken}

	// Handing over under m.mu: the queue retires under m.mu only with
	// an empty inbox, so req cannot land in a queue that has retired.
	m.mu.Lock()
	q := m.queueLocked(next)
	handedOver := false
	if q != nil {
		select {
		case q.inbox <- req:
			handedOver = true
		default:
		}
	}
	m.mu.Unlock()

	switch {
	case q == nil:
		m.drop(DropNotRunning, 1)
		return OutcomeNotRunning

	case !handedOver:
		m.drop(DropBusy, 1)
		return Outcome(OutcomeBusy)
	}

	return Outcome(OutcomeQueued)
}

// admit drops what no queue needs to see: bad input, a message while the
// mailbox is not running, or one for a peer that is not registered.
func (m *Mailbox) admit(next route.Vertex, msg *lnwire.OnionMessage) (Outcome,
	bool) {

	switch {
	case msg == nil || msg.PathKey == nil || len(msg.OnionBlob) == 0:
		m.drop(DropInvalid, 1)
		return OutcomeInvalid, false

	case int64(len(msg.OnionBlob)) > m.lim.MaxMessageBytes:
		m.drop(DropTooLarge, 1)
		m.log.Debugf("Dropping %d-byte message for %v: too large",
			len(msg.OnionBlob), next)
		return OutcomeTooLarge, false
	}

	m.mu.Lock()
	defer m.mu.Unlock()

	if !m.running() {
		m.stats.Dropped[DropNotRunning]++
		return OutcomeNotRunning, false
	}
	if m.recipients[next] == nil {
		m.stats.Dropped[DropUnregistered]++
		m.log.Debugf("Dropping message for %v: not registered", next)
		return OutcomeUnregistered, false
	}

	return "", true
}

func (m *Mailbox) storeLimits() StoreLimits {
	return StoreLimits{
		RecipientCount: m.lim.MaxPerRecipient,
		RecipientBytes: m.lim.MaxBytesPerRecipient,
		TotalCount:     m.lim.MaxTotal,
		TotalBytes:     m.lim.MaxTotalBytes,
	}
}

// noteStored accounts for a stored message and what it evicted.
func (m *Mailbox) noteStored(put PutResult, size int64) {
	m.mu.Lock()
	defer m.mu.Unlock()

	m.stats.Stored++
	m.stats.StoredMessages++
	m.stats.StoredBytes += size
	for _, e := range put.Evicted {
		m.removedLocked(string(e.Reason), e.Size)
	}
	if len(put.Evicted) > 0 {
		first := put.Evicted[0]
		m.log.Infof("Evicted %d older message(s) to make room, the "+
			"first for %v (%s)", len(put.Evicted), first.Recipient,
			first.Reason)
	}
}

// removed accounts for deleted messages that were not delivered.
func (m *Mailbox) removed(reason string, rows []RemovedMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()

	for _, r := range rows {
		m.removedLocked(reason, r.Size)
	}
}

func (m *Mailbox) removedLocked(reason string, size int64) {
	m.stats.Dropped[reason]++
	m.stats.StoredMessages--
	m.stats.StoredBytes -= size
}

func (m *Mailbox) drop(reason string, n uint64) {
	m.mu.Lock()
	m.stats.Dropped[reason] += n
	m.mu.Unlock()
}

// Stats returns a snapshot of the gauges and counters.
func (m *Mailbox) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()

	s := m.stats
	s.Dropped = make(map[string]uint64, len(m.stats.Dropped))
	for k, v := range m.stats.Dropped {
		s.Dropped[k] = v
	}
	s.Registrations = make(map[string]uint64, len(m.stats.Registrations))
	for k, v := range m.stats.Registrations {
		s.Registrations[k] = v
	}
	s.Recipients = len(m.recipients)
	for _, r := range m.recipients {
		if r.ready {
			s.OnlineRecipients++
		}
	}
	s.PeerEventsUp = m.peersUp

	return s
}

// Recipients lists the registrations, what is stored for each and whether
// it is online.
func (m *Mailbox) Recipients(ctx context.Context) ([]RecipientInfo, error) {
	list, err := m.cfg.Store.ListMailboxRecipients(ctx)
	if err != nil {
		return nil, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()

	out := make([]RecipientInfo, len(list))
	for i, r := range list {
		st := m.recipients[r.Peer]
		out[i] = RecipientInfo{
			Recipient: r,
			Online:    st != nil && st.ready,
		}
	}

	return out, nil
}

// Unregister removes peer's registration and drops its stored messages.
// found is false if peer was not registered.
func (m *Mailbox) Unregister(ctx context.Context, peer route.Vertex) (bool,
	error) {

	removed, found, err := m.cfg.Store.UnregisterMailboxRecipient(ctx,
		peer)
	// The store deletes in chunks and returns those it committed even
	// when a later one failed: the counts follow what it committed.
	m.removed(DropRecipientRemoved, removed)
	if err != nil {
		return false, err
	}
	// The recipient's queue, if one runs, finds its messages gone and
	// its next store write refused.
	m.mu.Lock()
	delete(m.recipients, peer)
	m.mu.Unlock()
	if found {
		m.log.Infof("Unregistered %v, dropped %d stored message(s)",
			peer, len(removed))
	}

	return found, nil
}
