//go:build itest

package itest

import (
	"context"
	"testing"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/internal/tcpproxy"
	"github.com/stretchr/testify/require"
)

// keepaliveFlags make holdd ping lnd's gRPC after 10 s without traffic
// (grpc-go's floor) and give up on a ping after 2 s.
var keepaliveFlags = []string{"--lnd.keepalive=10s",
	"--lnd.keepalivetimeout=2s"}

// waitInterceptor waits until holdd reports the interceptor stream up or
// down.
func waitInterceptor(t *testing.T, net *Network, up bool,
	timeout time.Duration) {

	t.Helper()
	client, err := net.HolddClient()
	require.NoError(t, err)
	err = waitFor(t.Context(), timeout, "holdd's interceptor_connected",
		func(ctx context.Context) (bool, error) {
			info, err := client.GetInfo(ctx,
				&holdrpc.GetInfoRequest{})
			if err != nil {
				return false, err
			}
			return info.InterceptorConnected == up, nil
		})
	require.NoError(t, err)
}

// TestInterceptorBlackholed: holdd talks to L's gRPC through a proxy that
// at some point stops forwarding without closing anything, as a dead
// network path does. holdd's keepalive finds the connection dead and
// reports the interceptor down within the keepalive interval plus its
// timeout (a holdd without keepalive keeps reporting it connected while
// lnd fails every forward), and the interceptor comes back when the path
// heals: a held HTLC is then released. Before that, the stream stays up
// across several keepalive pings: lnd's enforcement (pings no more often
// than every 5 s) accepts them.
func TestInterceptorBlackholed(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	keepRunning(t, net)

	proxy, err := tcpproxy.Start(net.L.RPCAddr)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	args := append([]string{"--lnd.host=" + proxy.Addr()},
		keepaliveFlags...)
	require.NoError(t, net.RestartHoldd(ctx, args...))

	// Three idle keepalive intervals: lnd would have closed the
	// connection (ENHANCE_YOUR_CALM) after its third bad ping.
	hLog := markLog(t, holddLogPath(net))
	time.Sleep(35 * time.Second)
	require.Zero(t, hLog.count(t, "Interceptor stream down"))
	waitInterceptor(t, net, true, time.Second)

	proxy.Blackhole()
	start := time.Now()
	// 10 s idle + 2 s for the answer; the bound leaves room for a busy
	// machine, and is far below forever.
	waitInterceptor(t, net, false, 30*time.Second)
	t.Logf("interceptor reported down %v after the black hole",
		time.Since(start).Round(100*time.Millisecond))

	proxy.Heal()
	start = time.Now()
	waitInterceptor(t, net, true, DefaultTimeout)
	t.Logf("interceptor up %v after the path healed",
		time.Since(start).Round(100*time.Millisecond))
	require.NoError(t, net.WaitHolddReady(ctx))

	h := holdOne(t, net, 24_000, 0)
	paths := pathsOf(t, net, h.htlc)
	sendOverPath(t, net.P, paths[0], releaseMsg)
	requireResumed(t, net, h, "onion")
}
