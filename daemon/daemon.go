package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/mailbox"
	"github.com/holdd/holdd/metrics"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/sirupsen/logrus"
)

// Version is holdd's version, set at build time with -ldflags
// "-X github.com/holdd/holdd/daemon.Version=...".
var Version = "0.1.0-dev"

const (
	nodeKeySecret = "peer_node_key"
	pathIDSecret  = "release_path_id_hmac"
)

// Daemon is a built holdd: every subsystem exists, none runs yet.
type Daemon struct {
	log logrus.FieldLogger

	// subsystems are started in this order and stopped in reverse.
	subsystems []lifecycle

	// closers release what building opened (the log file, the store,
	// the connection to lnd), in reverse order, once every subsystem
	// has stopped.
	closers []func()
}

// Run builds holdd from cfg, runs it until ctx ends or a subsystem fails,
// and stops it. A failed build or start, and a subsystem's fatal error,
// are returned.
func Run(ctx context.Context, cfg *Config) error {
	d, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// Run starts the subsystems in order, runs them until ctx ends or one
// fails, stops them in reverse and releases what New opened. It returns
// the error a start failed with or the first fatal error, naming the
// subsystem; nil after a shutdown through ctx.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.close()

	return runSubsystems(ctx, d.subsystems, d.log)
}

// close releases what building opened.
func (d *Daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// New builds every subsystem cfg asks for, without starting any: it sets
// up logging, opens the store, connects to lnd and checks lnd's settings.
// Subsystems that read each other (the metrics and GetInfo read the
// engine, the interceptor, the transport's state) are handed each other
// here, so nothing is filled in once running.
func New(ctx context.Context, cfg *Config) (_ *Daemon, err error) {
	d := &Daemon{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()

	if err := os.MkdirAll(cfg.dataDir(), 0o700); err != nil {
		return nil, err
	}
	logs, err := setupLogging(cfg)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, logs.close)
	log := logs.sub(subHOLD)
	d.log = log
	log.Infof("holdd version %s starting on %s", Version, cfg.Network)

	db, err := store.Open(ctx, filepath.Join(cfg.dataDir(), "holdd.db"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	d.closers = append(d.closers, func() { _ = db.Close() })

	lnd, err := rpcclient.Dial(ctx, rpcclient.Config{
		Host:         cfg.Lnd.Host,
		TLSCertPath:  cfg.Lnd.TLSCertPath,
		MacaroonPath: cfg.Lnd.MacaroonPath,
		Network:      cfg.Network,

		Keepalive:        cfg.Lnd.Keepalive,
		KeepaliveTimeout: cfg.Lnd.KeepaliveTimeout,
	})
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { _ = lnd.Close() })
	log.Infof("Connected to lnd %s (%x) at %s", lnd.VersionString,
		lnd.IdentityKey.SerializeCompressed(), cfg.Lnd.Host)

	transport, err := checkLnd(ctx, cfg, lnd, log)
	if err != nil {
		return nil, err
	}

	nodeKey, err := loadNodeKey(ctx, db)
	if err != nil {
		return nil, err
	}
	secret, err := db.Secret(ctx, pathIDSecret, randomSecret)
	if err != nil {
		return nil, fmt.Errorf("path_id secret: %w", err)
	}
	auth, err := release.NewAuthenticator(secret)
	if err != nil {
		return nil, err
	}
	// With the peer link, paths end at holdd's own key; with the
	// custom-message API they end at lnd, whose final hop holdd reads.
	finalHop := nodeKey.PubKey()
	if transport == transportCustomMsg {
		finalHop = nil
	} else {
		log.Infof("holdd node key %x: release and receive paths end "+
			"here", nodeKey.PubKey().SerializeCompressed())
	}

	clk := clock.NewDefaultClock()
	// The histograms exist before the engine that feeds them; the
	// registry that also reads the engine is built once it exists.
	var obs *metrics.Observations
	if cfg.Prometheus.Listen != "" {
		obs = metrics.NewObservations()
	}

	// The transport's state exists before the transport: the mailbox
	// registrar, GetInfo and the metrics read it.
	link := &linkStatus{}

	rpcConfig := holdrpc.ServerConfig{
		Version:    Version,
		Network:    cfg.Network,
		Transport:  transport,
		Roles:      cfg.Roles,
		LndVersion: lnd.VersionString,
		LndPubKey:  lnd.IdentityKey.SerializeCompressed(),
		NodeKey:    nodeKey.PubKey().SerializeCompressed(),
		Store:      db,
		Aliases:    rpcclient.NewNodeAliases(lnd.Lightning),
		Logger:     logs.sub(subRPCS),
	}
	var roles []lifecycle

	// The release intake exists in every role: it reads whatever onion
	// messages reach holdd and hands each to the role it is for.
	var (
		releaser release.Releaser
		lsp      *lspRole
	)
	if cfg.hasRole(roleLSP) {
		lsp, err = newLSPRole(ctx, cfg, lnd, db, auth, finalHop, clk,
			logs, obs)
		if err != nil {
			return nil, err
		}
		roles = append(roles, lsp)
		releaser = lsp.engine
		rpcConfig.Engine = lsp.engine
		rpcConfig.Paths = lsp.deliverer
		rpcConfig.Events = lsp.events
		rpcConfig.Policies = lsp.policies
		rpcConfig.ConfigPolicy = lsp.configPolicy
	}
	intake := release.NewIntake(newPeeler(transport, lnd, nodeKey), auth,
		releaser, clk, logs.sub(subRLSE))

	sender, err := onionsend.New(onionsend.Config{
		Lightning: lnd.Lightning,
		Self:      lnd.IdentityKey,
		Native:    !lnd.Version.Less(nativeOnionMessages),
	})
	if err != nil {
		return nil, err
	}

	onLinkUp := func() {}
	var rcpt *recipientRole
	if cfg.hasRole(roleRecipient) {
		rcpt, err = newRecipientRole(cfg, lnd, db, auth, finalHop,
			sender, link, clk, logs)
		if err != nil {
			return nil, err
		}
		roles = append(roles, rcpt)
		intake.SetAnswerer(rcpt.responder)
		rcpt.offers, err = newAsyncOfferClient(cfg, lnd, db, secret,
			finalHop, sender, rcpt.responder, clk, logs)
		if err != nil {
			return nil, err
		}
		if rcpt.offers != nil {
			offers := rcpt.offers.Handler()
			intake.AddFinalHopHandler(offers.Match, offers)
			rpcConfig.Offers = rcpt.offers
		}
		rpcConfig.Receiver = rcpt.responder
		rpcConfig.ReceiveEvents = rcpt.feed
		onLinkUp = rcpt.linkUp
	}

	var mbox *mailboxRole
	if cfg.hasRole(roleMailbox) {
		if transport != transportPeer {
			return nil, fmt.Errorf("%w: %w", errConfig,
				errMailboxNeedsPeerLink)
		}
		mbox, err = newMailboxRole(cfg, lnd, db, nodeKey.PubKey(),
			sender, clk, logs)
		if err != nil {
			return nil, err
		}
		roles = append(roles, mbox)
		intake.SetForwarder(mbox.queue)
		rpcConfig.Mailbox = mbox.mb
	}

	var srv *serverRole
	if cfg.hasRole(roleServer) {
		if transport != transportPeer {
			return nil, fmt.Errorf("%w: %w", errConfig,
				errServerNeedsPeerLink)
		}
		srv, err = newServerRole(ctx, cfg, lnd, db, finalHop, sender,
			clk, logs)
		if err != nil {
			return nil, err
		}
		roles = append(roles, srv)
		intake.AddFinalHopHandler(matchServerPath, srv)
		rpcConfig.InvoiceServer = srv.srv
	}

	tr, err := newTransport(transport, lnd, nodeKey, intake, clk, logs,
		cfg, link, onLinkUp)
	if err != nil {
		return nil, err
	}

	st := &status{link: link, intake: intake}
	if lsp != nil {
		st.icpt = lsp.icpt
	}
	rpcConfig.Status = st
	rpcSrv, err := newRPCServer(ctx, cfg, db, rpcConfig, log)
	if err != nil {
		return nil, err
	}

	// Start order: metrics first, so that a bad prometheus.listen fails
	// before anything else runs; the roles before the transport that
	// feeds them; the RPC server once there is something to serve.
	if cfg.Prometheus.Listen != "" {
		reg := metrics.NewWithObservations(metricsSources(transport,
			link, intake, lsp, rcpt, mbox, srv), obs)
		d.subsystems = append(d.subsystems, newMetricsServer(
			cfg.Prometheus.Listen, reg, log))
	}
	d.subsystems = append(d.subsystems, roles...)
	d.subsystems = append(d.subsystems, tr, rpcSrv)
	if cfg.Retention > 0 && lsp != nil {
		d.subsystems = append(d.subsystems, newPruner(db, cfg.Retention,
			clk, log))
	}
	return d, nil
}

// checkLnd reads lnd's config, checks what the roles need of it, and picks
// the release transport.
func checkLnd(ctx context.Context, cfg *Config, lnd *rpcclient.Client,
	log logrus.FieldLogger) (string, error) {

	lndConfig := readLndConfig(ctx, lnd, log)
	lsp := cfg.hasRole(roleLSP)
	log.Infof("Roles: %s", strings.Join(cfg.Roles, ", "))
	if lsp {
		err := checkRequireInterceptor(lndConfig, log)
		if err != nil && !cfg.UnsafeAllowNoRequireInterceptor {
			return "", err
		}
		if err != nil {
			log.Errorf("%v; continuing because of "+
				"unsafe-allow-no-requireinterceptor", err)
		}
	}
	transport, why, err := chooseTransport(cfg.Transport, lnd.Version,
		lndConfig)
	if err != nil {
		return "", err
	}
	log.Infof("Onion-message transport: %s (%s)", transport, why)
	if transport == transportPeer {
		if w := peerLinkReachWarning(cfg); w != "" {
			log.Warn(w)
		}
	}
	if lsp {
		for _, line := range lndSettingWarnings(transport, lndConfig) {
			log.Warnf("lnd.conf lacks %s", line)
		}
	}
	return transport, nil
}

// metricsSources are what the metrics read at scrape time: the subsystems
// themselves, each nil when its role is off.
func metricsSources(transport string, link *linkStatus,
	intake *release.Intake, lsp *lspRole, rcpt *recipientRole,
	mbox *mailboxRole, srv *serverRole) metrics.Sources {

	src := metrics.Sources{
		Engine:             idleEngine{},
		Intake:             intake.Counts,
		Transport:          transport,
		TransportConnected: link.Connected,
		// Without the lsp role there is no interceptor: never up.
		InterceptorConnected: func() bool { return false },
		InterceptorReconnects: func() uint64 {
			return 0
		},
	}
	if lsp != nil {
		src.Engine = lsp.engine
		src.InterceptorConnected = lsp.icpt.Connected
		src.InterceptorReconnects = lsp.icpt.Reconnects
		src.PathRequests = lsp.requests.Counts
		src.Redeliveries = lsp.deliverer.RedeliveryCounts
	}
	if rcpt != nil {
		src.Recipient = rcpt.responder.Counts
	}
	if srv != nil {
		src.InvoiceServer = srv.Counts
	}
	if mbox != nil {
		src.Mailbox = func() *mailbox.Stats {
			s := mbox.mb.Stats()
			return &s
		}
	}
	return src
}

// idleEngine is the metrics' engine without the lsp role: nothing held,
// nothing decided, releases only as the intake counts them.
type idleEngine struct{}

func (idleEngine) Stats() plugin.Stats {
	return plugin.Stats{Releases: map[string]uint64{}}
}
