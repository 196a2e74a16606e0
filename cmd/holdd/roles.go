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
	role.deliverer = release.NewDeliverer(release.DelivererConfig{
		Minter:    minter,
		Sender:    rpcclient.NewCustomMessenger(lnd),
		PathCount: cfg.Release.PathCount,
		PathTTL:   cfg.Release.PathExpiry,
		Logger:    logs.sub(subDLVR),
	})
	role.stops = append(role.stops, role.deliverer.Wait)

	// The interceptor and the engine need each other: the engine answers
	// through the interceptor, the interceptor asks the engine.
	peers := rpcclient.NewChannelPeers(lnd.Lightning)
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
		Logger:      logs.sub(subENGN),
		MaxPathLife: cfg.Release.PathExpiry,
		Admission:   admission,
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
	// Stopped first (stops run in reverse), before the engine it calls.
	watchCtx, stopWatch := context.WithCancel(engineCtx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watchIncoming(watchCtx, links, db, role.engine,
			logs.sub(subHOLD))
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
// release that arrived while the sender was offline waits for it.
func watchIncoming(ctx context.Context, links *rpcclient.ChannelActivity,
	db *store.Store, engine *plugin.Engine, log logrus.FieldLogger) {

	wake := make(chan struct{}, 1)
	go links.WatchActive(ctx, func() {
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
		released, err := db.ListHTLCs(ctx, store.ListFilter{
			States: []store.HoldState{store.StateReleased},
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
		release.ReleaseHeldHTLCType: recipient.ReleaseHeldHTLCValue,
	})
	return recipient.ReplyRoute{Peer: route.Peer, Via: route.Via}, err
}
