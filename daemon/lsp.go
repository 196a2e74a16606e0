package daemon

import (
	"context"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/interceptor"
	"github.com/holdd/holdd/metrics"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
)

// lspRole is the lsp role: the hold engine on lnd's interceptor, and the
// delivery of release paths to senders.
type lspRole struct {
	engine       *plugin.Engine
	icpt         *interceptor.Interceptor
	decide       interceptor.Engine
	deliverer    *release.Deliverer
	senders      *release.DeliveryPeers
	requests     *release.PathRequests
	links        *engineLinks
	blocks       *rpcclient.BlockWatcher
	events       *plugin.Broadcaster
	policies     policyStore
	configPolicy plugin.Policy
	db           *store.Store
	log          logrus.FieldLogger

	// stops undoes Start, in reverse order.
	stops []func()
}

// newLSPRole builds the lsp role; nothing runs until Start. finalHop is
// where release paths end (nil: at lnd). obs, when set, is fed hold
// durations and decision latencies for the metrics.
//
// The engine answers lnd through the interceptor and the interceptor asks
// the engine: the interceptor is built first, the engine takes it as its
// Resolver, and Start hands the engine to the interceptor.
func newLSPRole(ctx context.Context, cfg *Config, lnd *rpcclient.Client,
	db *store.Store, auth *release.Authenticator, finalHop *btcec.PublicKey,
	clk clock.Clock, logs *loggers, obs *metrics.Observations) (*lspRole,
	error) {

	log := logs.sub(subHOLD)
	role := &lspRole{policies: policyStore{db: db}, db: db, log: log}

	minter, err := release.NewMinter(auth, lnd.IdentityKey, finalHop)
	if err != nil {
		return nil, err
	}
	role.configPolicy, err = cfg.policy()
	if err != nil {
		return nil, err
	}
	policy := role.configPolicy
	saved, err := role.policies.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load persisted policy: %w", err)
	}
	if saved != nil {
		log.Warnf("Using the policy set through the API, not "+
			"holdd.conf's (holdcli setpolicy --reset drops it): %+v",
			*saved)
		policy = *saved
	}
	role.events = plugin.NewBroadcaster()
	peers := rpcclient.NewChannelPeers(lnd.Lightning)
	role.deliverer = release.NewDeliverer(release.DelivererConfig{
		Minter:    minter,
		Sender:    rpcclient.NewCustomMessenger(lnd),
		PathCount: cfg.Release.PathCount,
		PathTTL:   cfg.Release.PathExpiry,
		Held:      db,
		Peers:     peers,
		Clock:     clk,
		Logger:    logs.sub(subDLVR),
	})

	// Senders that read path deliveries: persisted ones and the
	// operator's list. Their hello and requests come as 48007.
	unproven, err := plugin.ParseUnprovenSenderMode(cfg.Hold.UnprovenSender)
	if err != nil {
		return nil, err
	}
	allow := make([]route.Vertex, 0, len(cfg.Hold.DeliveryPeers))
	for _, k := range cfg.Hold.DeliveryPeers {
		key, err := parseNodeKey(k)
		if err != nil {
			return nil, err
		}
		allow = append(allow, key)
	}
	role.senders = release.NewDeliveryPeers(db, clk, allow)
	n, err := role.senders.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load delivery peers: %w", err)
	}
	log.Infof("%d peer(s) read path deliveries, %d more listed in "+
		"hold.deliverypeer; hold_htlc HTLCs of other peers: %s", n,
		len(allow), unproven)
	role.requests, err = release.NewPathRequests(release.PathRequestsConfig{
		Lnd:       lnd.Lightning,
		Deliverer: role.deliverer,
		Peers:     role.senders,
		Clock:     clk,
		Logger:    logs.sub(subDLVR),
	})
	if err != nil {
		return nil, err
	}

	role.icpt, err = interceptor.New(interceptor.Config{
		Router: lnd.Router,
		Clock:  clk,
		Logger: logs.sub(subINTC),
		// Closed channels' keys are withdrawn before lnd offers
		// them again on chain.
		ChannelEvents: lnd.Lightning,
	})
	if err != nil {
		return nil, err
	}
	// A released HTLC is resumed once its incoming link is active (the
	// engine decides that), and a sender coming back gets the paths of
	// its held HTLCs again.
	role.links = &engineLinks{
		activity: rpcclient.NewChannelActivity(lnd.Lightning, peers,
			logs.sub(subHOLD)),
		onActive: role.deliverer.RedeliverChannel,
	}
	admission, err := cfg.admission()
	if err != nil {
		return nil, err
	}
	var metricsObserver plugin.Observer = plugin.Observers{}
	if obs != nil {
		metricsObserver = obs
	}
	role.blocks = rpcclient.NewBlockWatcher(lnd.Lightning, lnd.Chain,
		logs.sub(subBLKS))
	role.engine, err = plugin.New(plugin.Config{
		Policy:   policy,
		Store:    db,
		Resolver: role.icpt,
		Peers:    peers,
		Links:    role.links,
		Blocks:   role.blocks,
		Clock:    clk,
		Observer: plugin.Observers{role.deliverer, role.events,
			metricsObserver},
		Logger:         logs.sub(subENGN),
		MaxPathLife:    cfg.Release.PathExpiry,
		Admission:      admission,
		Senders:        role.senders,
		UnprovenSender: unproven,
	})
	if err != nil {
		return nil, err
	}
	role.decide = role.engine
	if obs != nil {
		role.decide = metrics.TimedEngine{
			Engine: role.engine, Metrics: obs,
		}
	}
	return role, nil
}

func (r *lspRole) Name() string { return "lsp role" }

// Start starts path delivery, the engine, the interceptor and the watch on
// incoming channels, in that order; on failure it stops what it started.
func (r *lspRole) Start(ctx context.Context, _ func(error)) (err error) {
	defer func() {
		if err != nil {
			_ = r.Stop()
		}
	}()

	deliverCtx, stopDeliver := context.WithCancel(ctx)
	r.deliverer.Start(deliverCtx)
	r.stops = append(r.stops, func() {
		stopDeliver()
		r.deliverer.Wait()
	})

	requests := fn.NewGoroutineManager()
	r.stops = append(r.stops, requests.Stop)
	if !requests.Go(ctx, r.requests.Run) {
		return ctx.Err()
	}

	engineCtx, stopEngineCtx := context.WithCancel(ctx)
	r.stops = append(r.stops, stopEngineCtx)
	if err := r.engine.Start(engineCtx); err != nil {
		return fmt.Errorf("start engine: %w", err)
	}
	r.stops = append(r.stops, func() {
		// Stop cancels the engine's subscriptions; their
		// goroutines end with it.
		_ = r.engine.Stop()
		r.links.wait()
		r.blocks.Wait()
	})

	if err := r.icpt.Start(r.decide); err != nil {
		return err
	}
	r.stops = append(r.stops, func() { _ = r.icpt.Stop() })

	// The delivery made when a hold began may never have gone out (a
	// crash right after the hold was stored, the sender offline): send
	// the paths of every HTLC still held again.
	r.deliverer.RedeliverAll()
	return nil
}

// Stop stops what Start started, in reverse order.
func (r *lspRole) Stop() error {
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
	r.stops = nil
	return nil
}
