//go:build itest

package itest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/stretchr/testify/require"
)

// logTailLines is how much of each process log a failure prints.
const logTailLines = 60

// setupTimeout bounds NewNetwork.
const setupTimeout = 15 * time.Minute

// testNet is the network every test shares.
var testNet *Network

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) (code int) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return m.Run()
	}

	cfg := DefaultConfig()

	// A development aid: bring up btcd and lnd only. Payments through L
	// then fail, as L requires an interceptor.
	cfg.SkipHoldd = os.Getenv("HOLDD_ITEST_SKIP_HOLDD") == "1"

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	net, err := NewNetwork(ctx, cfg)
	cancel()
	if net != nil {
		defer func() {
			if err := net.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "itest: teardown: %v\n",
					err)
			}
			if code == 0 && os.Getenv("HOLDD_ITEST_KEEP") == "" {
				_ = net.RemoveData()
				return
			}
			fmt.Printf("itest: data and logs kept in %s\n",
				net.BaseDir)
		}()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "itest: network setup failed: %v\n", err)
		if net != nil {
			net.DumpLogs(os.Stdout, logTailLines)
		}
		return 1
	}

	testNet = net
	code = m.Run()
	if code != 0 && !net.LogsDumped() {
		net.DumpLogs(os.Stdout, logTailLines)
	}
	return code
}

// Net returns the shared network. After the test it checks that the test
// left the network clean (no pending HTLCs, no payment in flight, nothing
// held) and, if the test failed, prints the tail of every process log. A
// panic ends the binary first: every child then dies by Pdeathsig and the
// logs stay in the directory printed at start. Tests share one network, so
// they must not call t.Parallel.
func Net(t *testing.T) *Network {
	t.Helper()
	require.NotNil(t, testNet, "network not set up")

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(
			context.Background(), 2*DefaultTimeout,
		)
		defer cancel()
		if err := testNet.WaitClean(ctx); err != nil {
			t.Errorf("test left the network dirty: %v", err)
		}
		// A failed-back HTLC makes the sender's mission control avoid
		// L for a while; the next test must route as if fresh.
		for _, node := range testNet.Nodes() {
			_, err := node.Router.ResetMissionControl(ctx,
				&routerrpc.ResetMissionControlRequest{})
			if err != nil {
				t.Errorf("reset mission control of %s: %v",
					node.Name, err)
			}
		}
		if t.Failed() {
			fmt.Printf("itest: %s failed; logs in %s\n", t.Name(),
				testNet.LogDir)
			testNet.DumpLogs(os.Stdout, logTailLines)
		}
	})
	return testNet
}
