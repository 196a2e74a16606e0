package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/interceptor"
	"github.com/holdd/holdd/mailbox"
	"github.com/holdd/holdd/metrics"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/recipient"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/cert"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/macaroons"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

const (
	nodeKeySecret = "peer_node_key"
	pathIDSecret  = "release_path_id_hmac"

	macaroonRootKeySecret = "macaroon_root_key"
	tlsCertFilename       = "tls.cert"
	tlsKeyFilename        = "tls.key"

	// tlsCertValidity matches lnd's auto-generated certificates.
	tlsCertValidity = 14 * 30 * 24 * time.Hour
)

// run starts every subsystem, waits for ctx to end, then stops them in
// reverse order.
func run(ctx context.Context, cfg *config) error {
	if err := os.MkdirAll(cfg.dataDir(), 0o700); err != nil {
		return err
	}
	logs, err := setupLogging(cfg)
	if err != nil {
		return err
	}
	defer logs.close()
	log := logs.sub(subHOLD)
	log.Infof("holdd version %s starting on %s", Version, cfg.Network)

	db, err := store.Open(ctx, filepath.Join(cfg.dataDir(), "holdd.db"))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer db.Close()

	lnd, err := rpcclient.Dial(ctx, rpcclient.Config{
		Host:         cfg.Lnd.Host,
		TLSCertPath:  cfg.Lnd.TLSCertPath,
		MacaroonPath: cfg.Lnd.MacaroonPath,
		Network:      cfg.Network,

		Keepalive:        cfg.Lnd.Keepalive,
		KeepaliveTimeout: cfg.Lnd.KeepaliveTimeout,
	})
	if err != nil {
		return err
	}
	defer lnd.Close()
	log.Infof("Connected to lnd %s (%x) at %s", lnd.VersionString,
		lnd.IdentityKey.SerializeCompressed(), cfg.Lnd.Host)
	lndConfig := readLndConfig(ctx, lnd, log)
	lsp := cfg.hasRole(roleLSP)
	log.Infof("Roles: %s", strings.Join(cfg.Roles, ", "))
	if lsp {
		err := checkRequireInterceptor(lndConfig, log)
		if err != nil && !cfg.UnsafeAllowNoRequireInterceptor {
			return err
		}
		if err != nil {
			log.Errorf("%v; continuing because of "+
				"unsafe-allow-no-requireinterceptor", err)
		}
	}
	transport, why, err := chooseTransport(cfg.Transport, lnd.Version,
		lndConfig)
	if err != nil {
		return err
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

	nodeKey, err := loadNodeKey(ctx, db)
	if err != nil {
		return err
	}
	secret, err := db.Secret(ctx, pathIDSecret, randomSecret)
	if err != nil {
		return fmt.Errorf("path_id secret: %w", err)
	}
	auth, err := release.NewAuthenticator(secret)
	if err != nil {
		return err
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

	// The metrics read their sources at scrape time; the sources are
	// filled in below as the subsystems start.
	var (
		interceptorUp   atomic.Bool
		linkState       atomic.Value
		icptRef         atomic.Pointer[interceptor.Interceptor]
		intakeRef       atomic.Pointer[release.Intake]
		engineRef       atomic.Pointer[plugin.Engine]
		lspRef          atomic.Pointer[lspRole]
		responderRef    atomic.Pointer[recipient.Responder]
		mailboxRef      atomic.Pointer[mailbox.Mailbox]
		metricsObserver plugin.Observer = plugin.Observers{}
		reg             *metrics.Metrics
	)
	linkState.Store("disconnected")
	if cfg.Prometheus.Listen != "" {
		reg = metrics.New(metrics.Sources{
			Engine:               engineStats{&engineRef},
			Intake:               intakeCounts{&intakeRef}.Counts,
			InterceptorConnected: interceptorUp.Load,
			InterceptorReconnects: func() uint64 {
				if i := icptRef.Load(); i != nil {
					return i.Reconnects()
				}
				return 0
			},
			Transport: transport,
			TransportState: func() string {
				return linkState.Load().(string)
			},
			Recipient: func() map[string]uint64 {
				if r := responderRef.Load(); r != nil {
					return r.Counts()
				}
				return nil
			},
			PathRequests: func() map[string]uint64 {
				if r := lspRef.Load(); r != nil {
					return r.requests.Counts()
				}
				return nil
			},
			Redeliveries: func() map[string]uint64 {
				if r := lspRef.Load(); r != nil {
					return r.deliverer.RedeliveryCounts()
				}
				return nil
			},
			Mailbox: func() *mailbox.Stats {
				if m := mailboxRef.Load(); m != nil {
					s := m.Stats()
					return &s
				}
				return nil
			},
		})
		metricsObserver = reg
		addr, err := reg.Serve(ctx, cfg.Prometheus.Listen)
		if err != nil {
			return fmt.Errorf("prometheus.listen %s: %w",
				cfg.Prometheus.Listen, err)
		}
		log.Infof("Prometheus metrics on http://%s/metrics", addr)
	}
	clk := clock.NewDefaultClock()

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
		Status: &status{
			interceptorUp: &interceptorUp,
			linkState:     &linkState,
			intake:        intakeCounts{&intakeRef},
		},
	}

	// The release intake exists in every role: it reads whatever onion
	// messages reach holdd and hands each to the role it is for.
	var releaser release.Releaser
	if lsp {
		role, err := startLSPRole(ctx, cfg, lnd, db, auth, finalHop,
			clk, logs, metricsObserver, reg, &interceptorUp)
		if err != nil {
			return err
		}
		defer role.stop()
		engineRef.Store(role.engine)
		lspRef.Store(role)
		icptRef.Store(role.icpt)
		releaser = role.engine
		rpcConfig.Engine = role.engine
		rpcConfig.Paths = role.deliverer
		rpcConfig.Events = role.events
		rpcConfig.Policies = role.policies
		rpcConfig.ConfigPolicy = role.configPolicy
	}
	intake := release.NewIntake(newPeeler(transport, lnd, nodeKey), auth,
		releaser, clk, logs.sub(subRLSE))
	intakeRef.Store(intake)

	sender, err := onionsend.New(onionsend.Config{
		Lightning: lnd.Lightning,
		Self:      lnd.IdentityKey,
		Native:    !lnd.Version.Less(nativeOnionMessages),
	})
	if err != nil {
		return err
	}

	var registrar *mailboxRegistrar
	if cfg.hasRole(roleRecipient) {
		responder, feed, err := newRecipientRole(cfg, lnd, db, auth,
			finalHop, sender, clk, logs)
		if err != nil {
			return err
		}
		// Replies go out on the responder's workers, off the
		// transport's read loop; stopped after the transport (defers
		// run last-in first-out).
		responder.Start()
		defer responder.Stop()
		intake.SetAnswerer(responder)
		responderRef.Store(responder)
		rpcConfig.Receiver = responder
		rpcConfig.ReceiveEvents = feed
		if cfg.Recipient.Mailbox != "" {
			registrar, err = newMailboxRegistrar(lnd,
				cfg.Recipient.Mailbox, responder,
				func() bool {
					return linkState.Load().(string) ==
						"connected"
				}, clk, logs.sub(subMBXC))
			if err != nil {
				return err
			}
		}
	}

	// The mailbox stops after the transport that feeds it (defers run
	// in reverse).
	if cfg.hasRole(roleMailbox) {
		if transport != transportPeer {
			return fmt.Errorf("%w: %w", errConfig,
				errMailboxNeedsPeerLink)
		}
		mb, err := startMailboxRole(cfg, lnd, db, nodeKey.PubKey(),
			sender, clk, logs.sub(subMBOX))
		if err != nil {
			return err
		}
		if err := mb.Start(ctx); err != nil {
			return fmt.Errorf("start mailbox: %w", err)
		}
		defer func() { _ = mb.Stop() }()
		// The peer link's read loop hands messages over and goes on;
		// a slow store write or send never delays its pongs or a
		// release behind it.
		queue := mailbox.NewAsyncForwarder(mb, 0)
		queue.Start()
		defer queue.Stop()
		intake.SetForwarder(queue)
		mailboxRef.Store(mb)
		rpcConfig.Mailbox = mb
		log.Infof("Mailbox on: keeping messages for registered "+
			"recipients (mailbox key %x)",
			nodeKey.PubKey().SerializeCompressed())
	}

	onLinkUp := func() {}
	if registrar != nil {
		onLinkUp = registrar.Trigger
		go registrar.run(ctx)
	}
	stopTransport, err := startTransport(transport, lnd, nodeKey, intake,
		clk, logs, cfg, &linkState, onLinkUp)
	if err != nil {
		return err
	}
	defer stopTransport()

	macRootKey, err := db.Secret(ctx, macaroonRootKeySecret, randomSecret)
	if err != nil {
		return fmt.Errorf("macaroon root key: %w", err)
	}
	macService, err := holdrpc.NewMacaroonService(macRootKey)
	if err != nil {
		return err
	}
	if err := holdrpc.BakeDefaultMacaroons(ctx, macService,
		cfg.dataDir()); err != nil {
		return fmt.Errorf("bake macaroons: %w", err)
	}

	grpcServer, lis, err := startRPCServer(cfg, macService, rpcConfig)
	if err != nil {
		return err
	}
	go func() {
		if err := grpcServer.Serve(lis); err != nil {
			log.Errorf("RPC server: %v", err)
		}
	}()
	defer stopRPCServer(grpcServer, log)
	log.Infof("RPC server listening on %s", lis.Addr())

	if cfg.Retention > 0 && lsp {
		go pruneResolved(ctx, db, cfg.Retention, log)
	}

	<-ctx.Done()
	log.Info("Shutting down")
	return nil
}

// lateResolver lets the engine be built before the interceptor it answers
// through. It holds back a resume while the HTLC's incoming channel is
// inactive: lnd v0.21 fails a resumed forward whose incoming link is gone
// (it cannot check that link's dust exposure), so the HTLC stays released
// until the sender is back (see watchIncoming).
type lateResolver struct {
	r     atomic.Pointer[interceptor.Interceptor]
	links interface {
		Active(ctx context.Context, chanID uint64) (bool, error)
	}
}

func (l *lateResolver) set(i *interceptor.Interceptor) { l.r.Store(i) }

func (l *lateResolver) Resume(ctx context.Context, key plugin.CircuitKey) error {
	i := l.r.Load()
	if i == nil {
		return plugin.ErrNotOffered
	}
	if l.IncomingInactive(ctx, key) {
		return plugin.ErrIncomingInactive
	}
	return i.Resume(ctx, key)
}

// IncomingInactive implements plugin.IncomingChecker. Only a definite
// "inactive" holds a resume back; when lnd cannot tell, lnd decides.
func (l *lateResolver) IncomingInactive(ctx context.Context,
	key plugin.CircuitKey) bool {

	if l.links == nil {
		return false
	}
	active, err := l.links.Active(ctx, key.ChanID)
	return err == nil && !active
}

func (l *lateResolver) Fail(ctx context.Context, key plugin.CircuitKey) error {
	if i := l.r.Load(); i != nil {
		return i.Fail(ctx, key)
	}
	return plugin.ErrNotOffered
}

// rpcStopGrace is how long shutdown waits for RPCs in flight; open event
// subscriptions never end by themselves, so they are cut after it.
const rpcStopGrace = 5 * time.Second

func stopRPCServer(srv *grpc.Server, log logrus.FieldLogger) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(rpcStopGrace):
		log.Infof("Closing RPC streams still open after %v", rpcStopGrace)
		srv.Stop()
		<-done
	}
}

// intakeCounts reads the release intake's counters once it exists.
type intakeCounts struct {
	p *atomic.Pointer[release.Intake]
}

func (c intakeCounts) Counts() map[string]uint64 {
	if in := c.p.Load(); in != nil {
		return in.Counts()
	}
	return nil
}

// engineStats reads the engine once it exists.
type engineStats struct {
	e *atomic.Pointer[plugin.Engine]
}

func (s engineStats) Stats() plugin.Stats {
	if e := s.e.Load(); e != nil {
		return e.Stats()
	}
	return plugin.Stats{}
}

type status struct {
	interceptorUp *atomic.Bool
	linkState     *atomic.Value
	intake        interface{ Counts() map[string]uint64 }
}

func (s *status) InterceptorConnected() bool { return s.interceptorUp.Load() }

func (s *status) PeerLinkState() string { return s.linkState.Load().(string) }

func (s *status) ReleaseCounts() map[string]uint64 { return s.intake.Counts() }

// loadNodeKey returns holdd's peer-link node key, created on first start.
func loadNodeKey(ctx context.Context, db *store.Store) (*btcec.PrivateKey,
	error) {

	raw, err := db.Secret(ctx, nodeKeySecret, func() ([]byte, error) {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			return nil, err
		}
		return k.Serialize(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	if len(raw) != btcec.PrivKeyBytesLen {
		return nil, fmt.Errorf("stored node key has %d bytes", len(raw))
	}
	key, _ := btcec.PrivKeyFromBytes(raw)
	return key, nil
}

func randomSecret() ([]byte, error) {
	b := make([]byte, release.SecretLen)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, err
	}
	return b, nil
}

// errNoRequireInterceptor is returned when lnd reports that it runs without
// requireinterceptor: then a dropped interceptor stream makes lnd resume
// every held HTLC.
var errNoRequireInterceptor = errors.New("lnd runs without " +
	"requireinterceptor: if holdd's interceptor stream drops, lnd " +
	"releases every held HTLC; add requireinterceptor=true to lnd.conf")

// readLndConfig returns lnd's flattened config, or nil when the macaroon
// does not allow GetDebugInfo.
func readLndConfig(ctx context.Context, lnd *rpcclient.Client,
	log logrus.FieldLogger) map[string]string {

	resp, err := lnd.Lightning.GetDebugInfo(ctx,
		&lnrpc.GetDebugInfoRequest{})
	if err != nil {
		log.Warnf("Cannot read lnd's config (GetDebugInfo: %v); holdd "+
			"cannot check requireinterceptor and the onion-message "+
			"settings", err)
		return nil
	}
	return resp.Config
}

// checkRequireInterceptor refuses an lnd that reports requireinterceptor
// off and warns when it cannot tell.
func checkRequireInterceptor(lndConfig map[string]string,
	log logrus.FieldLogger) error {

	if lndConfig == nil {
		log.Warnf("Make sure lnd runs with requireinterceptor=true")
		return nil
	}
	for k, v := range lndConfig {
		if strings.EqualFold(lastPart(k), "requireinterceptor") {
			if v != "true" {
				return errNoRequireInterceptor
			}
			log.Infof("lnd runs with requireinterceptor")
			return nil
		}
	}
	log.Warnf("lnd did not report requireinterceptor; make sure lnd " +
		"runs with requireinterceptor=true")
	return nil
}

func lastPart(k string) string {
	if i := strings.LastIndexAny(k, ".:"); i >= 0 {
		return k[i+1:]
	}
	return k
}

// startRPCServer serves holdrpc over TLS with a self-signed certificate
// that holdd creates on first start.
func startRPCServer(cfg *config, macService *macaroons.Service,
	scfg holdrpc.ServerConfig) (*grpc.Server, net.Listener, error) {

	certPath := filepath.Join(cfg.HoldDir, tlsCertFilename)
	keyPath := filepath.Join(cfg.HoldDir, tlsKeyFilename)
	if err := ensureTLSCert(cfg, certPath, keyPath); err != nil {
		return nil, nil, err
	}
	creds, err := credentials.NewServerTLSFromFile(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load TLS cert: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.RPCListen)
	if err != nil {
		return nil, nil, fmt.Errorf("rpclisten %s: %w", cfg.RPCListen,
			err)
	}
	unary, stream := holdrpc.MacaroonInterceptors(macService)
	// Recovery first, so that a panic anywhere after it answers
	// codes.Internal instead of ending holdd.
	recUnary, recStream := holdrpc.RecoveryInterceptors(scfg.Logger)
	srv := grpc.NewServer(grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(recUnary, unary),
		grpc.ChainStreamInterceptor(recStream, stream))
	holdrpc.RegisterHoldServer(srv, holdrpc.NewServer(scfg))
	return srv, lis, nil
}

// ensureTLSCert creates holdd's self-signed certificate, and re-creates it
// when tlsextraip or tlsextradomain no longer match it, as lnd does.
func ensureTLSCert(cfg *config, certPath, keyPath string) error {
	_, err := os.Stat(certPath)
	switch {
	case err == nil:
		_, parsed, err := cert.LoadCert(certPath, keyPath)
		if err != nil {
			return fmt.Errorf("load TLS cert: %w", err)
		}
		outdated, err := cert.IsOutdated(parsed, cfg.TLSExtraIPs,
			cfg.TLSExtraDomains, false)
		if err != nil {
			return err
		}
		if !outdated {
			return nil
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	certBytes, keyBytes, err := cert.GenCertPair("holdd",
		cfg.TLSExtraIPs, cfg.TLSExtraDomains, false, tlsCertValidity)
	if err != nil {
		return fmt.Errorf("generate TLS cert: %w", err)
	}
	if err := cert.WriteCertPair(certPath, keyPath, certBytes,
		keyBytes); err != nil {
		return fmt.Errorf("write TLS cert: %w", err)
	}
	return nil
}

// pruneResolved deletes resolved HTLC records older than retention, at
// start and then hourly, so the database does not grow without bound.
// Active records are never pruned.
func pruneResolved(ctx context.Context, db *store.Store,
	retention time.Duration, log logrus.FieldLogger) {

	for {
		n, err := db.PruneResolved(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Errorf("Prune resolved HTLCs: %v", err)
		case n > 0:
			log.Infof("Pruned %d HTLC records resolved more than %v "+
				"ago", n, retention)
		}
		select {
		case <-time.After(time.Hour):
		case <-ctx.Done():
			return
		}
	}
}
