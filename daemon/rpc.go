package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/interceptor"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/cert"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

const (
	macaroonRootKeySecret = "macaroon_root_key"
	tlsCertFilename       = "tls.cert"
	tlsKeyFilename        = "tls.key"

	// tlsCertValidity matches lnd's auto-generated certificates.
	tlsCertValidity = 14 * 30 * 24 * time.Hour

	// rpcStopGrace is how long shutdown waits for RPCs in flight; open
	// event subscriptions never end by themselves, so they are cut
	// after it.
	rpcStopGrace = 5 * time.Second
)

// rpcServer serves holdrpc over TLS with a self-signed certificate that
// holdd creates on first start, and the macaroons it bakes.
type rpcServer struct {
	listen string
	srv    *grpc.Server
	log    logrus.FieldLogger

	goroutines *fn.GoroutineManager
}

// newRPCServer bakes the macaroons, makes sure the TLS certificate exists
// and builds the gRPC server; Start listens.
func newRPCServer(ctx context.Context, cfg *Config, db *store.Store,
	scfg holdrpc.ServerConfig, log logrus.FieldLogger) (*rpcServer,
	error) {

	macRootKey, err := db.Secret(ctx, macaroonRootKeySecret, randomSecret)
	if err != nil {
		return nil, fmt.Errorf("macaroon root key: %w", err)
	}
	macService, err := holdrpc.NewMacaroonService(macRootKey)
	if err != nil {
		return nil, err
	}
	if err := holdrpc.BakeDefaultMacaroons(ctx, macService,
		cfg.dataDir()); err != nil {

		return nil, fmt.Errorf("bake macaroons: %w", err)
	}

	certPath := filepath.Join(cfg.HoldDir, tlsCertFilename)
	keyPath := filepath.Join(cfg.HoldDir, tlsKeyFilename)
	if err := ensureTLSCert(cfg, certPath, keyPath); err != nil {
		return nil, err
	}
	creds, err := credentials.NewServerTLSFromFile(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("load TLS cert: %w", err)
	}
	unary, stream := holdrpc.MacaroonInterceptors(macService)
	// Recovery first, so that a panic anywhere after it answers
	// codes.Internal instead of ending holdd.
	recUnary, recStream := holdrpc.RecoveryInterceptors(scfg.Logger)
	srv := grpc.NewServer(grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(recUnary, unary),
		grpc.ChainStreamInterceptor(recStream, stream))
	holdrpc.RegisterHoldServer(srv, holdrpc.NewServer(scfg))

	return &rpcServer{
		listen:     cfg.RPCListen,
		srv:        srv,
		log:        log,
		goroutines: fn.NewGoroutineManager(),
	}, nil
}

func (r *rpcServer) Name() string { return "rpc server" }

// Start listens on rpclisten and serves; a Serve that fails is fatal.
func (r *rpcServer) Start(ctx context.Context, fatal func(error)) error {
	lis, err := net.Listen("tcp", r.listen)
	if err != nil {
		return fmt.Errorf("rpclisten %s: %w", r.listen, err)
	}
	ok := r.goroutines.Go(ctx, func(context.Context) {
		if err := r.srv.Serve(lis); err != nil {
			fatal(fmt.Errorf("serve on %s: %w", lis.Addr(), err))
		}
	})
	if !ok {
		_ = lis.Close()
		return ctx.Err()
	}
	r.log.Infof("RPC server listening on %s", lis.Addr())
	return nil
}

// Stop waits rpcStopGrace for the RPCs in flight, then cuts the rest.
func (r *rpcServer) Stop() error {
	done := make(chan struct{})
	go func() {
		r.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(rpcStopGrace):
		r.log.Infof("Closing RPC streams still open after %v",
			rpcStopGrace)
		r.srv.Stop()
		<-done
	}
	r.goroutines.Stop()
	return nil
}

// ensureTLSCert creates holdd's self-signed certificate, and re-creates it
// when tlsextraip or tlsextradomain no longer match it, as lnd does.
func ensureTLSCert(cfg *Config, certPath, keyPath string) error {
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

// status is GetInfo's view of holdd's connections, read from subsystems
// built before any started. icpt is nil without the lsp role.
type status struct {
	icpt   *interceptor.Interceptor
	link   *linkStatus
	intake *release.Intake
}

func (s *status) InterceptorConnected() bool {
	return s.icpt != nil && s.icpt.Connected()
}

// PeerLinkState names the release transport's state for GetInfo.
func (s *status) PeerLinkState() string { return s.link.State().String() }

func (s *status) ReleaseCounts() map[string]uint64 { return s.intake.Counts() }
