package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/holdd/holdd/internal/keyedlimit"
	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// Outcomes of release_paths_request messages, the keys of
// PathRequests.Counts.
const (
	// ReqHello: a hello, answered with release_paths_ack.
	ReqHello = "hello"

	// ReqMatched: it named held HTLCs of the peer; their paths were
	// queued for redelivery.
	ReqMatched = "matched"

	// ReqUnknown: it named no HTLC the peer has held here (unknown, or
	// another peer's); no answer, nothing stored.
	ReqUnknown = "unknown"

	// ReqMalformed: it did not decode; no answer.
	ReqMalformed = "malformed"

	// ReqRateLimited: the peer sent too many; ignored without an answer.
	ReqRateLimited = "rate_limited"

	// ReqNoChannel: a hello from a peer with no channel to lnd, which
	// cannot send us an HTLC; no answer, nothing stored.
	ReqNoChannel = "no_channel"

	// ReqFailed: the store or lnd failed; no answer, the peer retries.
	ReqFailed = "failed"
)

const (
	// DefaultRequestBurst and DefaultRequestInterval are the per-peer
	// token bucket: a burst of requests, then one per interval.
	DefaultRequestBurst    = 10
	DefaultRequestInterval = 2 * time.Second

	// maxRequestPeers bounds the token buckets kept; full (idle) ones
	// are dropped first, then the one idle longest.
	maxRequestPeers = 4096
)

// DeliveryPeerStore persists the peers that read path deliveries.
type DeliveryPeerStore interface {
	PutDeliveryPeer(ctx context.Context, peer route.Vertex,
		now time.Time) (DeliveryPeer, error)
	ListDeliveryPeers(ctx context.Context) ([]DeliveryPeer, error)
}

// DeliveryPeers knows which peers read holdd's path deliveries: those that
// sent a release_paths_request (persisted) and those the operator lists.
// ReadsDeliveries answers from memory, so the hold decision costs no I/O.
type DeliveryPeers struct {
	store DeliveryPeerStore
	clock clock.Clock

	mu     sync.RWMutex
	proven map[route.Vertex]struct{}
	allow  map[route.Vertex]struct{}
}

// NewDeliveryPeers creates a DeliveryPeers; allow are peers treated as
// proven without a request.
func NewDeliveryPeers(st DeliveryPeerStore, clk clock.Clock,
	allow []route.Vertex) *DeliveryPeers {

	if clk == nil {
		clk = clock.NewDefaultClock()
	}
	d := &DeliveryPeers{
		store:  st,
		clock:  clk,
		proven: make(map[route.Vertex]struct{}),
		allow:  make(map[route.Vertex]struct{}, len(allow)),
	}
	for _, p := range allow {
		d.allow[p] = struct{}{}
	}
	return d
}

// Load reads the persisted peers.
func (d *DeliveryPeers) Load(ctx context.Context) (int, error) {
	peers, err := d.store.ListDeliveryPeers(ctx)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range peers {
		d.proven[p.Peer] = struct{}{}
	}
	return len(peers), nil
}

// Prove records, persisted first, that peer reads deliveries. It reports
// whether the peer was new.
func (d *DeliveryPeers) Prove(ctx context.Context, peer route.Vertex) (bool,
	error) {

	if _, err := d.store.PutDeliveryPeer(ctx, peer,
		d.clock.Now()); err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, known := d.proven[peer]
	d.proven[peer] = struct{}{}
	return !known, nil
}

// ReadsDeliveries reports whether peer has shown it reads holdd's path
// deliveries, or the operator listed it.
func (d *DeliveryPeers) ReadsDeliveries(peer route.Vertex) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if _, ok := d.allow[peer]; ok {
		return true
	}
	_, ok := d.proven[peer]
	return ok
}

// CustomMessages is the part of lnd's Lightning service PathRequests uses.
type CustomMessages interface {
	SubscribeCustomMessages(ctx context.Context,
		in *lnrpc.SubscribeCustomMessagesRequest,
		opts ...grpc.CallOption) (
		lnrpc.Lightning_SubscribeCustomMessagesClient, error)
	SendCustomMessage(ctx context.Context,
		in *lnrpc.SendCustomMessageRequest, opts ...grpc.CallOption) (
		*lnrpc.SendCustomMessageResponse, error)
	ListChannels(ctx context.Context, in *lnrpc.ListChannelsRequest,
		opts ...grpc.CallOption) (*lnrpc.ListChannelsResponse, error)
}

// Redeliverer finds and queues a peer's held HTLCs; *Deliverer is one.
type Redeliverer interface {
	HeldFor(ctx context.Context, peer route.Vertex,
		req *PathsRequest) ([]plugin.HeldHTLC, error)
	Redeliver(recs []plugin.HeldHTLC, why string) bool
}

// PathRequestsConfig configures PathRequests.
type PathRequestsConfig struct {
	Lnd       CustomMessages
	Deliverer Redeliverer
	Peers     *DeliveryPeers

	// Burst and Interval are the per-peer token bucket (defaults
	// DefaultRequestBurst, DefaultRequestInterval).
	Burst    int
	Interval time.Duration

	// ResubscribeDelay is the wait before subscribing again after the
	// stream broke (default 2 s).
	ResubscribeDelay time.Duration

	Clock  clock.Clock
	Logger logrus.FieldLogger
}

// PathRequests answers release_paths_request from senders: a hello with
// release_paths_ack, a request naming the peer's own held HTLC with its
// path delivery. The peer is the one lnd authenticated; a request naming
// another peer's HTLC, or none held, gets no answer.
type PathRequests struct {
	cfg PathRequestsConfig

	limit *keyedlimit.Limiter[route.Vertex]

	mu     sync.Mutex
	counts map[string]uint64
}

// NewPathRequests creates a PathRequests.
func NewPathRequests(cfg PathRequestsConfig) (*PathRequests, error) {
	switch {
	case cfg.Lnd == nil:
		return nil, errors.New("release: path requests need lnd")
	case cfg.Deliverer == nil:
		return nil, errors.New("release: path requests need a deliverer")
	case cfg.Peers == nil:
		return nil, errors.New("release: path requests need the " +
			"delivery peers")
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultRequestBurst
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRequestInterval
	}
	if cfg.ResubscribeDelay <= 0 {
		cfg.ResubscribeDelay = 2 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	return &PathRequests{
		cfg: cfg,
		limit: keyedlimit.New[route.Vertex](cfg.Burst, cfg.Interval,
			maxRequestPeers),
		counts: make(map[string]uint64),
	}, nil
}

// Run reads lnd's custom messages until ctx ends, subscribing again after
// a break.
func (r *PathRequests) Run(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.serve(ctx)
		if ctx.Err() != nil {
			return
		}
		r.cfg.Logger.Warnf("Custom message stream for path requests "+
			"ended: %v; resubscribing in %v", err,
			r.cfg.ResubscribeDelay)
		select {
		case <-ctx.Done():
			return
		case <-r.cfg.Clock.TickAfter(r.cfg.ResubscribeDelay):
		}
	}
}

func (r *PathRequests) serve(ctx context.Context) error {
	stream, err := r.cfg.Lnd.SubscribeCustomMessages(ctx,
		&lnrpc.SubscribeCustomMessagesRequest{})
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("stream ended")
			}
			return err
		}
		// lnd streams every custom message; the others are not ours.
		if msg.GetType() != PathsRequestMsgType ||
			len(msg.GetPeer()) != 33 {

			continue
		}
		r.Handle(ctx, route.Vertex(msg.GetPeer()), msg.GetData())
	}
}

// Handle answers one release_paths_request from peer and returns its
// outcome. Only a hello or a request that names the peer's own held HTLC
// changes anything: both record the peer as reading deliveries.
func (r *PathRequests) Handle(ctx context.Context, peer route.Vertex,
	data []byte) string {

	log := r.cfg.Logger
	if !r.limit.Allow(peer, r.cfg.Clock.Now()) {
		return r.count(ReqRateLimited)
	}
	req, err := DecodePathsRequest(data)
	if err != nil {
		log.Debugf("Ignoring release_paths_request from %v: %v", peer,
			err)
		return r.count(ReqMalformed)
	}

	if req.Hello() {
		ok, err := r.hasChannel(ctx, peer)
		switch {
		case err != nil:
			log.Errorf("Hello from %v: channel check: %v", peer, err)
			return r.count(ReqFailed)
		case !ok:
			log.Debugf("Ignoring hello from %v: no channel", peer)
			return r.count(ReqNoChannel)
		}
		if !r.prove(ctx, peer) {
			return r.count(ReqFailed)
		}
		// Counted before the answer goes out, so that a peer holding
		// the answer finds the counter already moved.
		r.count(ReqHello)
		_, err = r.cfg.Lnd.SendCustomMessage(ctx,
			&lnrpc.SendCustomMessageRequest{
				Peer: peer[:], Type: PathsAckMsgType,
				Data: PathsAck,
			})
		if err != nil {
			log.Warnf("Answering the hello of %v: %v", peer, err)
		}
		return ReqHello
	}

	recs, err := r.cfg.Deliverer.HeldFor(ctx, peer, req)
	if err != nil {
		log.Errorf("Path request from %v: %v", peer, err)
		return r.count(ReqFailed)
	}
	if len(recs) == 0 {
		log.Debugf("Path request from %v names no HTLC it has held "+
			"here", peer)
		return r.count(ReqUnknown)
	}
	if !r.prove(ctx, peer) {
		return r.count(ReqFailed)
	}
	r.cfg.Deliverer.Redeliver(recs, "request")
	return r.count(ReqMatched)
}

// prove persists that peer reads deliveries.
func (r *PathRequests) prove(ctx context.Context, peer route.Vertex) bool {
	added, err := r.cfg.Peers.Prove(ctx, peer)
	if err != nil {
		r.cfg.Logger.Errorf("Recording %v as reading path deliveries: "+
			"%v", peer, err)
		return false
	}
	if added {
		r.cfg.Logger.Infof("Peer %v reads path deliveries: its "+
			"hold_htlc HTLCs are held from now on", peer)
	}
	return true
}

// hasChannel reports whether lnd has a channel with peer: only such a
// peer can send us an HTLC, which keeps the table of proven peers bounded
// by lnd's channels.
func (r *PathRequests) hasChannel(ctx context.Context, peer route.Vertex) (bool,
	error) {

	resp, err := r.cfg.Lnd.ListChannels(ctx,
		&lnrpc.ListChannelsRequest{Peer: peer[:]})
	if err != nil {
		return false, err
	}
	return len(resp.GetChannels()) > 0, nil
}

func (r *PathRequests) count(outcome string) string {
	r.mu.Lock()
	r.counts[outcome]++
	r.mu.Unlock()
	return outcome
}

// Counts returns the requests handled, by outcome.
func (r *PathRequests) Counts() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}
