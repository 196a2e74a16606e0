package release

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/routing/route"
)

// Outcomes of redeliveries, the keys of Deliverer.RedeliveryCounts.
const (
	// RedeliverSent: the paths went out again.
	RedeliverSent = "sent"

	// RedeliverSendFailed: lnd refused the send (e.g. the peer is
	// offline); the next reconnect or request tries again.
	RedeliverSendFailed = "send_failed"

	// RedeliverTooSoon: the HTLC's paths went out less than
	// MinRedeliveryInterval earlier.
	RedeliverTooSoon = "too_soon"

	// RedeliverExpired: the HTLC's paths have expired; none are sent.
	RedeliverExpired = "expired"

	// RedeliverQueueFull: the redelivery queue was full.
	RedeliverQueueFull = "queue_full"

	// RedeliverNoPeer: the HTLC's incoming peer is unknown.
	RedeliverNoPeer = "no_peer"

	// RedeliverFailed: listing or minting failed.
	RedeliverFailed = "failed"
)

const (
	// DefaultMinRedeliveryInterval spaces deliveries of one HTLC's paths.
	DefaultMinRedeliveryInterval = 2 * time.Second

	// DefaultRedeliveryQueue bounds the redelivery jobs waiting.
	DefaultRedeliveryQueue = 256
)

// HeldLister lists held HTLCs; the store is one.
type HeldLister interface {
	ListHTLCs(ctx context.Context, f plugin.ListFilter) ([]plugin.HeldHTLC,
		error)
}

// PeerResolver maps an incoming channel to its peer's node key.
type PeerResolver interface {
	PeerOf(ctx context.Context, chanID uint64) (route.Vertex, error)
}

// whyReconnect marks redeliveries for a sender that reconnected.
const whyReconnect = "reconnect"

// redeliverJob asks the worker to send the paths of the held HTLCs of
// peer (all held HTLCs if all is set), or only those recs.
type redeliverJob struct {
	all  bool
	peer route.Vertex
	recs []plugin.HeldHTLC
	why  string
}

// Start starts the redelivery worker; it stops when ctx ends and Wait
// waits for it.
func (d *Deliverer) Start(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case job := <-d.jobs:
				d.runJob(ctx, job)
			}
		}
	}()
}

// RedeliverAll queues the paths of every held HTLC for its sender: after a
// restart, the delivery made when the hold began may never have gone out.
func (d *Deliverer) RedeliverAll() {
	d.enqueue(redeliverJob{all: true, why: "restart"})
}

// RedeliverPeer queues the paths of every HTLC held for peer, e.g.
// because it came back online.
func (d *Deliverer) RedeliverPeer(peer route.Vertex, why string) {
	d.enqueue(redeliverJob{peer: peer, why: why})
}

// RedeliverChannel queues the paths of the HTLCs held for the peer of
// channel chanID, which just became active (the sender reconnected).
func (d *Deliverer) RedeliverChannel(ctx context.Context, chanID uint64) {
	if d.cfg.Peers == nil {
		return
	}
	if chanID == 0 {
		// The activity cache could not name the channel; the
		// sender's next request or holdd's next start covers it.
		d.cfg.Logger.Debugf("A channel became active that lnd's " +
			"list does not name yet; no redelivery")
		return
	}
	peer, err := d.cfg.Peers.PeerOf(ctx, chanID)
	if err != nil {
		d.cfg.Logger.Debugf("Channel %d active, peer unknown: %v",
			chanID, err)
		return
	}
	d.RedeliverPeer(peer, whyReconnect)
}

// enqueue adds a job unless the queue is full.
func (d *Deliverer) enqueue(job redeliverJob) bool {
	select {
	case d.jobs <- job:
		return true
	default:
		d.count(RedeliverQueueFull)
		d.cfg.Logger.Warnf("Redelivery queue full; dropping a %s "+
			"redelivery", job.why)
		return false
	}
}

// HeldFor returns the HTLCs held for peer that req names (all of them for
// a hello). An HTLC whose incoming peer was unknown when it was held is
// matched by its channel's peer now.
func (d *Deliverer) HeldFor(ctx context.Context, peer route.Vertex,
	req *PathsRequest) ([]plugin.HeldHTLC, error) {

	recs, err := d.heldOf(ctx, &peer)
	if err != nil {
		return nil, err
	}
	var out []plugin.HeldHTLC
	for _, rec := range recs {
		if req.Key != nil && rec.Key != *req.Key {
			continue
		}
		if req.PaymentHash != nil && rec.PaymentHash != *req.PaymentHash {
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

// Redeliver queues the paths of recs, held HTLCs of one peer.
func (d *Deliverer) Redeliver(recs []plugin.HeldHTLC, why string) bool {
	return d.enqueue(redeliverJob{recs: recs, why: why})
}

// heldOf lists the held HTLCs of peer (nil: of every peer), filling in
// the peer of HTLCs held while it was unknown.
func (d *Deliverer) heldOf(ctx context.Context,
	peer *route.Vertex) ([]plugin.HeldHTLC, error) {

	if d.cfg.Held == nil {
		return nil, fmt.Errorf("no store to list held HTLCs")
	}
	f := plugin.ListFilter{States: []plugin.HoldState{plugin.StateHeld}}
	if peer != nil {
		f.Peer = (*route.Vertex)(peer)
	}
	recs, err := d.cfg.Held.ListHTLCs(ctx, f)
	if err != nil {
		return nil, err
	}
	if peer != nil && *peer != (route.Vertex{}) {
		var unknown route.Vertex
		f.Peer = &unknown
		more, err := d.cfg.Held.ListHTLCs(ctx, f)
		if err != nil {
			return nil, err
		}
		recs = append(recs, more...)
	}
	out := recs[:0]
	for _, rec := range recs {
		if rec.IncomingPeer == (route.Vertex{}) && d.cfg.Peers != nil {
			p, err := d.cfg.Peers.PeerOf(ctx, rec.Key.ChanID)
			if err == nil {
				rec.IncomingPeer = p
			}
		}
		if peer != nil && rec.IncomingPeer != *peer {
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

func (d *Deliverer) runJob(ctx context.Context, job redeliverJob) {
	recs := job.recs
	if recs == nil {
		var peer *route.Vertex
		if !job.all {
			peer = &job.peer
		}
		var err error
		recs, err = d.heldOf(ctx, peer)
		if err != nil {
			if ctx.Err() == nil {
				d.count(RedeliverFailed)
				d.cfg.Logger.Errorf("Listing held HTLCs for a "+
					"%s redelivery: %v", job.why, err)
			}
			return
		}
	}
	// A peer whose send failed (offline, or lnd's send timed out) is
	// not tried again in this job: its remaining HTLCs would each wait
	// out the same timeout while every other peer's redelivery queues
	// behind them. Its next reconnect or request brings a new job.
	unreachable := make(map[route.Vertex]struct{})
	for _, rec := range recs {
		if ctx.Err() != nil {
			return
		}
		if _, skip := unreachable[rec.IncomingPeer]; skip {
			d.count(RedeliverSendFailed)
			continue
		}
		if !d.redeliver(ctx, rec, job.why) {
			unreachable[rec.IncomingPeer] = struct{}{}
		}
	}
}

// redeliver sends rec's paths again unless they went out too recently or
// have expired. The paths are the cached ones or, if this run has none,
// freshly minted under the same expiry rule, so every delivery of one HTLC
// carries paths that work until the same time.
//
// It reports false only when sending to the peer failed.
func (d *Deliverer) redeliver(ctx context.Context, rec plugin.HeldHTLC,
	why string) bool {

	log := d.cfg.Logger
	if rec.IncomingPeer == (route.Vertex{}) || d.cfg.Sender == nil {
		d.count(RedeliverNoPeer)
		log.Warnf("No peer to redeliver release paths for %v to",
			rec.Key)
		return true
	}
	now := d.cfg.Clock.Now()
	d.mu.Lock()
	last, seen := d.lastSent[rec.Key]
	d.mu.Unlock()
	// A reconnect is never too soon: whatever went out before did so on
	// a connection that is gone. Reconnects are bounded by the peer's
	// handshakes and channel re-establishment.
	if seen && why != whyReconnect &&
		now.Sub(last) < d.cfg.MinRedeliveryInterval {
		d.count(RedeliverTooSoon)
		return true
	}
	pd, err := d.delivery(rec, true)
	if err != nil {
		d.count(RedeliverFailed)
		log.Errorf("Minting release paths for %v: %v", rec.Key, err)
		return true
	}
	if !pd.ExpiresAt.After(now) {
		d.count(RedeliverExpired)
		log.Warnf("Release paths of %v expired at %v; not "+
			"redelivering them", rec.Key, pd.ExpiresAt)
		return true
	}
	if err := d.send(ctx, rec.IncomingPeer, pd); err != nil {
		d.count(RedeliverSendFailed)
		log.Debugf("Redelivering release paths for %v to %x (%s): %v",
			rec.Key, rec.IncomingPeer[:], why, err)
		return false
	}
	d.count(RedeliverSent)
	log.Infof("Redelivered %d release paths for %v to %x (%s)",
		len(pd.Paths), rec.Key, rec.IncomingPeer[:], why)
	return true
}

// send sends pd to peer and notes when it went out, for the redelivery
// interval; a failed send is not noted, so the next trigger tries again.
func (d *Deliverer) send(ctx context.Context, peer route.Vertex,
	pd *PathDelivery) error {

	data, err := pd.Encode()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.SendTimeout)
	defer cancel()
	err = d.cfg.Sender.SendCustomMessage(ctx, peer, PathDeliveryMsgType,
		data)
	if err != nil {
		return err
	}
	d.mu.Lock()
	if _, ok := d.live[pd.Key]; ok {
		d.lastSent[pd.Key] = d.cfg.Clock.Now()
	}
	d.mu.Unlock()
	return nil
}

func (d *Deliverer) count(outcome string) {
	d.mu.Lock()
	d.redeliveries[outcome]++
	d.mu.Unlock()
}

// RedeliveryCounts returns how redeliveries went, by outcome.
func (d *Deliverer) RedeliveryCounts() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.redeliveries)
}
