package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/lightningnetwork/lnd/cert"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// fakeHold answers holdrpc with fixed responses and records every request,
// so tests can check exactly what holdcli sent.
type fakeHold struct {
	holdrpc.UnimplementedHoldServer

	info   *holdrpc.GetInfoResponse
	htlcs  []*holdrpc.HeldHtlc
	policy *holdrpc.Policy
	events []*holdrpc.HoldEvent

	mu       sync.Mutex
	calls    []string
	listReqs []*holdrpc.ListHeldRequest
	getReqs  []*holdrpc.GetHeldRequest
	relReqs  []*holdrpc.ReleaseHeldRequest
	failReqs []*holdrpc.FailHeldRequest
	setReqs  []*holdrpc.SetPolicyRequest
}

func (f *fakeHold) record(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
}

func (f *fakeHold) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeHold) GetInfo(context.Context, *holdrpc.GetInfoRequest) (
	*holdrpc.GetInfoResponse, error) {

	f.record("GetInfo")
	return f.info, nil
}

func (f *fakeHold) ListHeld(_ context.Context,
	req *holdrpc.ListHeldRequest) (*holdrpc.ListHeldResponse, error) {

	f.record("ListHeld")
	f.mu.Lock()
	f.listReqs = append(f.listReqs, req)
	f.mu.Unlock()
	return &holdrpc.ListHeldResponse{Htlcs: f.htlcs}, nil
}

func (f *fakeHold) GetHeld(_ context.Context, req *holdrpc.GetHeldRequest) (
	*holdrpc.HeldHtlc, error) {

	f.record("GetHeld")
	f.mu.Lock()
	f.getReqs = append(f.getReqs, req)
	f.mu.Unlock()
	return f.htlcs[0], nil
}

func (f *fakeHold) ReleaseHeld(_ context.Context,
	req *holdrpc.ReleaseHeldRequest) (*holdrpc.ReleaseHeldResponse,
	error) {

	f.record("ReleaseHeld")
	f.mu.Lock()
	f.relReqs = append(f.relReqs, req)
	f.mu.Unlock()
	return &holdrpc.ReleaseHeldResponse{Outcome: "matched",
		Htlc: &holdrpc.HeldHtlc{State: "released"}}, nil
}

func (f *fakeHold) FailHeld(_ context.Context, req *holdrpc.FailHeldRequest) (
	*holdrpc.FailHeldResponse, error) {

	f.record("FailHeld")
	f.mu.Lock()
	f.failReqs = append(f.failReqs, req)
	f.mu.Unlock()
	return &holdrpc.FailHeldResponse{
		Htlc: &holdrpc.HeldHtlc{State: "failed"}}, nil
}

func (f *fakeHold) GetPolicy(context.Context, *holdrpc.GetPolicyRequest) (
	*holdrpc.Policy, error) {

	f.record("GetPolicy")
	return f.policy, nil
}

// SetPolicy echoes the requested policy back, as holdd does once it
// accepted it.
func (f *fakeHold) SetPolicy(_ context.Context,
	req *holdrpc.SetPolicyRequest) (*holdrpc.Policy, error) {

	f.record("SetPolicy")
	f.mu.Lock()
	f.setReqs = append(f.setReqs, req)
	f.mu.Unlock()
	if req.Reset_ {
		return f.policy, nil
	}
	return req.Policy, nil
}

// SubscribeHoldEvents sends the fixed events and ends the stream.
func (f *fakeHold) SubscribeHoldEvents(_ *holdrpc.SubscribeHoldEventsRequest,
	stream holdrpc.Hold_SubscribeHoldEventsServer) error {

	f.record("SubscribeHoldEvents")
	for _, ev := range f.events {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

// harness is a real holdrpc gRPC server with TLS and macaroon enforcement
// in front of a fakeHold, laid out on disk the way holdd lays out its
// holddir, so holdcli finds cert and macaroon by its defaults.
type harness struct {
	t       *testing.T
	fake    *fakeHold
	addr    string
	holdDir string
	macDir  string
	clock   *clock.TestClock
}

const testNetwork = "regtest"

func newHarness(t *testing.T, fake *fakeHold) *harness {
	t.Helper()
	return newHarnessFor(t, fake)
}

// holdServer is a fake holdd: a *fakeHold, or one that embeds it and
// answers more methods.
type holdServer interface {
	holdrpc.HoldServer
	base() *fakeHold
}

func (f *fakeHold) base() *fakeHold { return f }

// newHarnessFor serves any fake holdd.
func newHarnessFor(t *testing.T, server holdServer) *harness {
	t.Helper()
	fake := server.base()

	holdDir := t.TempDir()
	certPath := filepath.Join(holdDir, defaultTLSCertFilename)
	keyPath := filepath.Join(holdDir, "tls.key")
	certBytes, keyBytes, err := cert.GenCertPair("holdd test", nil, nil,
		false, time.Hour)
	require.NoError(t, err)
	require.NoError(t, cert.WriteCertPair(certPath, keyPath, certBytes,
		keyBytes))
	creds, err := credentials.NewServerTLSFromFile(certPath, keyPath)
	require.NoError(t, err)

	rootKey := make([]byte, 32)
	_, err = rand.Read(rootKey)
	require.NoError(t, err)
	svc, err := holdrpc.NewMacaroonService(rootKey)
	require.NoError(t, err)
	macDir := filepath.Join(holdDir, "data", testNetwork)
	require.NoError(t, os.MkdirAll(macDir, 0o700))
	require.NoError(t, holdrpc.BakeDefaultMacaroons(context.Background(),
		svc, macDir))
	unary, stream := holdrpc.MacaroonInterceptors(svc)

	srv := grpc.NewServer(grpc.Creds(creds),
		grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))
	holdrpc.RegisterHoldServer(srv, server)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	return &harness{
		t:       t,
		fake:    fake,
		addr:    lis.Addr().String(),
		holdDir: holdDir,
		macDir:  macDir,
		clock:   clock.NewTestClock(time.Unix(1_700_000_000, 0)),
	}
}

// run runs holdcli in-process against the harness's server with args
// after the connection flags, and returns what it printed.
func (h *harness) run(args ...string) (string, error) {
	full := append([]string{"holdcli", "--rpcserver", h.addr,
		"--holddir", h.holdDir, "--network", testNetwork}, args...)
	var out bytes.Buffer
	err := newApp(context.Background(), &out, h.clock).Run(full)
	return out.String(), err
}
