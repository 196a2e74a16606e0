package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/eventfeed"
	"github.com/holdd/holdd/interceptor"
	"github.com/holdd/holdd/metrics"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/recipient"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/sirupsen/logrus"
)

// lspRole is the running lsp role: the hold engine on lnd's interceptor,
// and the delivery of release paths to senders.
type lspRole struct {
	engine       *plugin.Engine
	icpt         *interceptor.Interceptor
	deliverer    *release.Deliverer
	senders      *release.DeliveryPeers
	requests     *release.PathRequests
	events       *plugin.Broadcaster
	policies     policyStore
	configPolicy plugin.Policy
	stops        []func()
}

// stop stops what started, in reverse order.
func (r *lspRole) stop() {
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
}

// startLSPRole starts the hold engine and attaches it to lnd's
// interceptor. finalHop is where release paths end (nil: at lnd).
func startLSPRole(ctx context.Context, cfg *config, lnd *rpcclient.Client,
	db *store.Store, auth *release.Authenticator, finalHop *btcec.PublicKey,
	clk clock.Clock, logs *loggers, metricsObserver plugin.Observer,
	reg *metrics.Metrics, interceptorUp *atomic.Bool) (*lspRole, error) {

	log := logs.sub(subHOLD)
	role := &lspRole{policies: policyStore{db: db}}
	ok := false
	defer func() {
		if !ok {
			role.stop()
		}
	}()

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
	deliverCtx, stopDeliver := context.WithCancel(ctx)
	role.deliverer.Start(deliverCtx)
	role.stops = append(role.stops, func() {
		stopDeliver()
		role.deliverer.Wait()
	})

	// Senders that read path deliveries: persisted ones and the
	// operator's list. Their hello and requests come as 48007.
	unproven, err := plugin.ParseUnprovenSenderMode(cfg.Hold.UnprovenSender)
	if err != nil {
		return nil, err
	}
	allow := make([][33]byte, 0, len(cfg.Hold.DeliveryPeers))
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
	reqCtx, stopReqs := context.WithCancel(ctx)
	reqsDone := make(chan struct{})
	go func() {
		defer close(reqsDone)
		role.requests.Run(reqCtx)
	}()
	role.stops = append(role.stops, func() {
		stopReqs()
		<-reqsDone
	})

	// The interceptor and the engine need each other: the engine answers
	// through the interceptor, the interceptor asks the engine.
	links := rpcclient.NewChannelActivity(lnd.Lightning, peers,
		logs.sub(subHOLD))
	resolver := &lateResolver{links: links}
	admission, err := cfg.admission()
	if err != nil {
		return nil, err
	}
	role.engine, err = plugin.New(plugin.Config{
		Policy:   policy,
		Store:    db,
		Resolver: resolver,
		Peers:    peers,
		Blocks: rpcclient.NewBlockWatcher(lnd.Lightning, lnd.Chain,
			logs.sub(subBLKS)),
		Clock: clk,
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
	engineCtx, stopEngineCtx := context.WithCancel(ctx)
	role.stops = append(role.stops, stopEngineCtx)
	if err := role.engine.Start(engineCtx); err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	role.stops = append(role.stops, func() { _ = role.engine.Stop() })

	var decide interceptor.Engine = role.engine
	if reg != nil {
		decide = metrics.TimedEngine{Engine: role.engine, Metrics: reg}
	}
	role.icpt, err = interceptor.New(interceptor.Config{
		Router: lnd.Router,
		Engine: decide,
		Clock:  clk,
		Logger: logs.sub(subINTC),
		OnConnectionChange: func(up bool) {
			interceptorUp.Store(up)
		},
		// Closed channels' keys are withdrawn before lnd offers
		// them again on chain.
		ChannelEvents: lnd.Lightning,
	})
	if err != nil {
		return nil, err
	}
	resolver.set(role.icpt)
	if err := role.icpt.Start(); err != nil {
		return nil, err
	}
	role.stops = append(role.stops, func() { _ = role.icpt.Stop() })
	// The delivery made when a hold began may never have gone out (a
	// crash right after the hold was stored, the sender offline): send
	// the paths of every HTLC still held again.
	role.deliverer.RedeliverAll()
	// Stopped first (stops run in reverse), before the engine it calls.
	watchCtx, stopWatch := context.WithCancel(engineCtx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watchIncoming(watchCtx, links, db, role.engine,
			role.deliverer, logs.sub(subHOLD))
	}()
	role.stops = append(role.stops, func() {
		stopWatch()
		<-watchDone
	})
	ok = true
	return role, nil
}

// releasedRetryInterval re-tries released HTLCs in case a channel event
// was missed.
const releasedRetryInterval = 30 * time.Second

// watchIncoming resumes released HTLCs when channels become active: a
// release that arrived while the sender was offline waits for it. A sender
// coming back also gets the paths of its held HTLCs again.
func watchIncoming(ctx context.Context, links *rpcclient.ChannelActivity,
	db *store.Store, engine *plugin.Engine, deliverer *release.Deliverer,
	log logrus.FieldLogger) {

	wake := make(chan struct{}, 1)
	go links.WatchActive(ctx, func(chanID uint64) {
		deliverer.RedeliverChannel(ctx, chanID)
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(releasedRetryInterval):
		}
		released, err := db.ListHTLCs(ctx, plugin.ListFilter{
			States: []plugin.HoldState{plugin.StateReleased},
		})
		if err != nil {
			if ctx.Err() == nil {
				log.Errorf("List released HTLCs: %v", err)
			}
			continue
		}
		for _, h := range released {
			if err := engine.ResumeReleased(ctx, h.Key); err != nil &&
				!errors.Is(err, plugin.ErrUnknownHTLC) {

				log.Errorf("Resume released %v: %v", h.Key, err)
			}
		}
	}
}

// newRecipientRole builds the recipient role. finalHop is where receive
// paths end (nil: at lnd).
func newRecipientRole(cfg *config, lnd *rpcclient.Client, db *store.Store,
	auth *release.Authenticator, finalHop *btcec.PublicKey,
	sender *onionsend.Sender, clk clock.Clock,
	logs *loggers) (*recipient.Responder, *eventfeed.Feed[recipient.Event],
	error) {

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
		return nil, nil, err
	}
	return responder, feed, nil
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
