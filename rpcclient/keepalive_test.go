package rpcclient

import (
	"context"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/internal/tcpproxy"
	"github.com/lightningnetwork/lnd/cert"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lnrpc/signrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"gopkg.in/macaroon.v2"
)

// fakeLnd is lnd's gRPC surface as far as Dial's checks and the
// interceptor stream go, behind TLS and lnd's keepalive enforcement.
type fakeLnd struct {
	lnrpc.UnimplementedLightningServer

	pubKey string

	// streams learns each interceptor stream lnd-side as it opens.
	streams chan struct{}
}

func (f *fakeLnd) GetInfo(context.Context, *lnrpc.GetInfoRequest) (
	*lnrpc.GetInfoResponse, error) {

	return &lnrpc.GetInfoResponse{
		Version:        "0.21.3-beta commit=v0.21.3-beta",
		IdentityPubkey: f.pubKey,
		Chains: []*lnrpc.Chain{{
			Chain: "bitcoin", Network: "regtest",
		}},
	}, nil
}

func (f *fakeLnd) ConnectPeer(_ context.Context,
	in *lnrpc.ConnectPeerRequest) (*lnrpc.ConnectPeerResponse, error) {

	if in.Addr == nil {
		return nil, status.Error(codes.Unknown,
			"need: lnc pubkeyhash@hostname")
	}
	return &lnrpc.ConnectPeerResponse{}, nil
}

type fakeSigner struct {
	signrpc.UnimplementedSignerServer
}

type fakeRouter struct {
	routerrpc.UnimplementedRouterServer
	lnd *fakeLnd
}

func (fakeSigner) DeriveSharedKey(context.Context,
	*signrpc.SharedKeyRequest) (*signrpc.SharedKeyResponse, error) {

	return &signrpc.SharedKeyResponse{SharedKey: make([]byte, 32)}, nil
}

func (r fakeRouter) HtlcInterceptor(
	stream routerrpc.Router_HtlcInterceptorServer) error {

	r.lnd.streams <- struct{}{}
	<-stream.Context().Done()
	return nil
}

// startFakeLnd serves a fakeLnd on loopback with a fresh TLS cert and
// lnd's default keepalive settings (lnd.go: server pings after 1 min idle,
// 20 s timeout; clients may ping every 5 s, and only with a stream open).
// It returns the address and a Config with the cert and a macaroon.
func startFakeLnd(t *testing.T) (*fakeLnd, string, Config) {
	t.Helper()

	dir := t.TempDir()
	certPEM, keyPEM, err := cert.GenCertPair("fake lnd", nil, nil, false,
		time.Hour)
	require.NoError(t, err)
	certPath := filepath.Join(dir, "tls.cert")
	require.NoError(t, os.WriteFile(certPath, certPEM, 0o600))
	keyPath := filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(keyPath, keyPEM, 0o600))
	creds, err := credentials.NewServerTLSFromFile(certPath, keyPath)
	require.NoError(t, err)

	mac, err := macaroon.New(make([]byte, 32), []byte("id"), "lnd",
		macaroon.LatestVersion)
	require.NoError(t, err)
	macBytes, err := mac.MarshalBinary()
	require.NoError(t, err)
	macPath := filepath.Join(dir, "holdd.macaroon")
	require.NoError(t, os.WriteFile(macPath, macBytes, 0o600))

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	f := &fakeLnd{
		pubKey: hex.EncodeToString(
			key.PubKey().SerializeCompressed()),
		streams: make(chan struct{}, 8),
	}

	srv := grpc.NewServer(
		grpc.Creds(creds),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    time.Minute,
			Timeout: 20 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second,
			PermitWithoutStream: false,
		}),
	)
	lnrpc.RegisterLightningServer(srv, f)
	signrpc.RegisterSignerServer(srv, fakeSigner{})
	routerrpc.RegisterRouterServer(srv, fakeRouter{lnd: f})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	return f, ln.Addr().String(), Config{
		TLSCertPath:  certPath,
		MacaroonPath: macPath,
		Network:      "regtest",
	}
}

// TestKeepaliveEndsBlackholedStream: when the path to lnd dies silently
// (no FIN, no RST), the interceptor stream's Recv returns within the
// keepalive interval plus its timeout instead of waiting forever, and a
// new stream opens once the path works again.
func TestKeepaliveEndsBlackholedStream(t *testing.T) {
	t.Parallel()

	lnd, addr, cfg := startFakeLnd(t)
	proxy, err := tcpproxy.Start(addr)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)

	// grpc-go pings at most every 10 s, whatever is asked.
	cfg.Host = proxy.Addr()
	cfg.Keepalive = 10 * time.Second
	cfg.KeepaliveTimeout = time.Second
	c, err := Dial(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stream, err := c.Router.HtlcInterceptor(ctx)
	require.NoError(t, err)
	select {
	case <-lnd.streams:
	case <-time.After(10 * time.Second):
		t.Fatal("interceptor stream did not reach lnd")
	}

	recvErr := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		recvErr <- err
	}()

	proxy.Blackhole()

	// Bound: 10 s idle, 1 s for the ping's answer, and slack for a busy
	// machine. Without keepalive Recv never returns.
	select {
	case err := <-recvErr:
		require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	case <-time.After(40 * time.Second):
		t.Fatal("Recv still blocked on a black-holed connection")
	}

	proxy.Heal()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		s, err := c.Router.HtlcInterceptor(ctx)
		if err != nil {
			return false
		}
		select {
		case <-lnd.streams:
			_ = s.CloseSend()
			return true
		case <-ctx.Done():
			return false
		}
	}, 60*time.Second, 100*time.Millisecond)
}

// TestCheckConnectPeer: the permission probe passes on lnd's answer to an
// empty request and names the URI when the macaroon lacks it.
func TestCheckConnectPeer(t *testing.T) {
	t.Parallel()

	_, addr, cfg := startFakeLnd(t)
	cfg.Host = addr
	c, err := Dial(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.CheckConnectPeer(t.Context()))

	denied := &Client{Lightning: deniedLightning{}}
	err = denied.CheckConnectPeer(t.Context())
	require.ErrorIs(t, err, ErrPermission)
	require.ErrorContains(t, err, "/lnrpc.Lightning/ConnectPeer")
}

// deniedLightning answers ConnectPeer as lnd does for a macaroon without
// peers:write.
type deniedLightning struct {
	lnrpc.LightningClient
}

func (deniedLightning) ConnectPeer(context.Context,
	*lnrpc.ConnectPeerRequest, ...grpc.CallOption) (
	*lnrpc.ConnectPeerResponse, error) {

	return nil, status.Error(codes.Unknown, "permission denied")
}
