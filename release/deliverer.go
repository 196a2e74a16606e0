package release

import (
	"context"
	"sync"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
)

// CustomMessageSender sends a peer custom message through lnd.
type CustomMessageSender interface {
	SendCustomMessage(ctx context.Context, peer route.Vertex, msgType uint32,
		data []byte) error
}

// DelivererConfig configures a Deliverer.
type DelivererConfig struct {
	Minter *Minter
	Sender CustomMessageSender

	// PathCount is how many release paths each HTLC gets.
	PathCount int

	// PathTTL is how long release paths work after the hold started,
	// unless the HTLC's own hold deadline is earlier, for a record that
	// carries no path expiry of its own (PathExpiresAt zero).
	PathTTL time.Duration

	// SendTimeout bounds one delivery attempt.
	SendTimeout time.Duration

	// Held lists held HTLCs for redeliveries; Peers finds the peer of
	// an HTLC held while its peer was unknown. Both may be nil when
	// nothing is redelivered (then only the first delivery goes out).
	Held  HeldLister
	Peers PeerResolver

	// MinRedeliveryInterval spaces deliveries of one HTLC's paths
	// (default DefaultMinRedeliveryInterval); RedeliveryQueue bounds the
	// redelivery jobs waiting (default DefaultRedeliveryQueue).
	MinRedeliveryInterval time.Duration
	RedeliveryQueue       int

	Clock clock.Clock

	Logger logrus.FieldLogger
}

// Deliverer mints release paths for each newly held HTLC and sends them to
// the HTLC's sender as a PathDeliveryMsgType custom message. It keeps the
// minted paths of active HTLCs so the API returns the same paths.
type Deliverer struct {
	cfg DelivererConfig

	mu    sync.Mutex
	paths map[plugin.CircuitKey]*PathDelivery

	// live holds the keys of HTLCs held now. Paths are cached only for
	// them, so a delivery that finishes after its HTLC was resolved does
	// not leave its paths behind.
	live map[plugin.CircuitKey]struct{}

	// lastSent is when each live HTLC's paths last went out.
	lastSent map[plugin.CircuitKey]time.Time

	sent         uint64
	failed       uint64
	redeliveries map[string]uint64

	jobs chan redeliverJob

	wg sync.WaitGroup
}

var _ plugin.Observer = (*Deliverer)(nil)

// NewDeliverer creates a Deliverer.
func NewDeliverer(cfg DelivererConfig) *Deliverer {
	if cfg.PathCount < 1 {
		cfg.PathCount = 2
	}
	if cfg.PathTTL == 0 {
		cfg.PathTTL = 7 * 24 * time.Hour
	}
	if cfg.SendTimeout == 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.MinRedeliveryInterval <= 0 {
		cfg.MinRedeliveryInterval = DefaultMinRedeliveryInterval
	}
	if cfg.RedeliveryQueue <= 0 {
		cfg.RedeliveryQueue = DefaultRedeliveryQueue
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	return &Deliverer{
		cfg:          cfg,
		paths:        make(map[plugin.CircuitKey]*PathDelivery),
		live:         make(map[plugin.CircuitKey]struct{}),
		lastSent:     make(map[plugin.CircuitKey]time.Time),
		redeliveries: make(map[string]uint64),
		jobs:         make(chan redeliverJob, cfg.RedeliveryQueue),
	}
}

// HoldEvent mints and sends paths for a new hold, and forgets the paths of
// HTLCs that are no longer held.
func (d *Deliverer) HoldEvent(ev plugin.Event) {
	switch ev.Kind {
	case plugin.EventHeld:
		d.mu.Lock()
		d.live[ev.HTLC.Key] = struct{}{}
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.deliver(ev.HTLC)
		}()
	case plugin.EventResumed, plugin.EventFailed, plugin.EventGone:
		d.mu.Lock()
		delete(d.paths, ev.HTLC.Key)
		delete(d.live, ev.HTLC.Key)
		delete(d.lastSent, ev.HTLC.Key)
		d.mu.Unlock()
	}
}

// Wait blocks until every delivery in flight is done and, once the context
// given to Start ended, the redelivery worker too.
func (d *Deliverer) Wait() {
	d.wg.Wait()
}

// Delivery returns the release paths of a held HTLC, minting them if this
// run of holdd has not yet (paths minted before a restart stay valid: the
// path_id secret and holdd's key are stored).
func (d *Deliverer) Delivery(rec plugin.HeldHTLC) (*PathDelivery, error) {
	return d.delivery(rec, true)
}

// delivery returns rec's cached paths or mints them. The API may adopt an
// HTLC held since before this run; the delivery goroutine must not, or a
// delivery outliving its HTLC would cache paths nobody removes.
func (d *Deliverer) delivery(rec plugin.HeldHTLC, adopt bool) (*PathDelivery,
	error) {

	d.mu.Lock()
	pd, ok := d.paths[rec.Key]
	d.mu.Unlock()
	if ok {
		return pd, nil
	}

	// The engine fixed the paths' expiry when it held the HTLC
	// (plugin.PathExpiry) and fails the HTLC back when it passes.
	expires := rec.PathExpiresAt
	if expires.IsZero() {
		expires = rec.HeldAt.Add(d.cfg.PathTTL)
		if !rec.HoldDeadline.IsZero() &&
			rec.HoldDeadline.Before(expires) {

			expires = rec.HoldDeadline
		}
		// path_ids carry whole seconds; round up so a path never
		// expires before the deadline it stands for.
		expires = expires.Truncate(time.Second).Add(time.Second)
	}
	claim := Claim{
		Key:         rec.Key,
		PaymentHash: rec.PaymentHash,
		ExpiresAt:   expires,
	}
	paths, err := d.cfg.Minter.Mint(claim, d.cfg.PathCount)
	if err != nil {
		return nil, err
	}
	pd = &PathDelivery{
		Key:         rec.Key,
		PaymentHash: rec.PaymentHash,
		AmountMsat:  rec.IncomingAmtMsat,
		ExpiresAt:   expires,
		Paths:       paths,
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if existing, ok := d.paths[rec.Key]; ok {
		return existing, nil
	}
	if _, ok := d.live[rec.Key]; !ok {
		if !adopt || !rec.State.Active() {
			return pd, nil
		}
		// Held since before this run: no EventHeld will come.
		d.live[rec.Key] = struct{}{}
	}
	d.paths[rec.Key] = pd
	return pd, nil
}

func (d *Deliverer) deliver(rec plugin.HeldHTLC) {
	log := d.cfg.Logger
	pd, err := d.delivery(rec, false)
	if err != nil {
		log.Errorf("Minting release paths for %v: %v", rec.Key, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(),
		d.cfg.SendTimeout)
	defer cancel()
	if rec.IncomingPeer == (route.Vertex{}) && d.cfg.Peers != nil {
		// The engine could not tell the peer; the channel may be
		// known by now.
		if p, err := d.cfg.Peers.PeerOf(ctx, rec.Key.ChanID); err == nil {
			rec.IncomingPeer = p
		}
	}
	if rec.IncomingPeer == (route.Vertex{}) || d.cfg.Sender == nil {
		log.Warnf("No peer to deliver release paths for %v to; they "+
			"are available through the API", rec.Key)
		return
	}
	err = d.send(ctx, rec.IncomingPeer, pd)

	d.mu.Lock()
	if err != nil {
		d.failed++
	} else {
		d.sent++
	}
	d.mu.Unlock()
	if err != nil {
		log.Warnf("Delivering release paths for %v to %x failed (sent "+
			"again when the peer reconnects or asks): %v", rec.Key,
			rec.IncomingPeer[:], err)
		return
	}
	log.Infof("Delivered %d release paths for %v to %x", len(pd.Paths),
		rec.Key, rec.IncomingPeer[:])
}

// DeliveryCounts returns how many deliveries were sent and failed.
func (d *Deliverer) DeliveryCounts() (sent, failed uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent, d.failed
}
