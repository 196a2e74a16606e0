//go:build itest

package itest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/peerlink"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/tlv"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The reliability tests break things on purpose: they kill holdd, restart
// lnd, mine blocks past fail-back heights, feed holdd hostile onion
// messages and bursts, and check that afterwards the payment, lnd and
// holdd's store agree exactly. docs/reliability.md maps each fault to the
// test that covers it.

// lndFwdNotExists is lnd's error for a resolution of a circuit key its
// interceptable switch does not hold (htlcswitch.ErrFwdNotExists); lnd
// ends the interceptor stream with it and logs it as an RPC error.
const lndFwdNotExists = "forward does not exist"

// lndPeerNotConnected is what lnd logs when it cannot forward an onion
// message to the next node (server.ErrPeerNotConnected).
const lndPeerNotConnected = "peer is not connected"

// logCursor reads a process log from the offset it was created at, so that
// a test sees only what happened since.
type logCursor struct {
	path string
	off  int64
}

// markLog returns a cursor at the current end of the log at path.
func markLog(t *testing.T, path string) logCursor {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return logCursor{path: path, off: fi.Size()}
}

// lines returns the log lines written since the mark that contain every one
// of parts.
func (c logCursor) lines(t *testing.T, parts ...string) []string {
	t.Helper()
	f, err := os.Open(c.path)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Seek(c.off, io.SeekStart)
	require.NoError(t, err)

	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		match := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				match = false
				break
			}
		}
		if match {
			out = append(out, line)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// count is len(lines(parts...)).
func (c logCursor) count(t *testing.T, parts ...string) int {
	t.Helper()
	return len(c.lines(t, parts...))
}

// waitCount waits until the log has want lines with parts since the
// mark.
func (c logCursor) waitCount(t *testing.T, want int, parts ...string) {
	t.Helper()
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("%d log lines with %q in %s", want, parts,
			filepath.Base(c.path)),
		func(context.Context) (bool, error) {
			got := c.count(t, parts...)
			if got == want {
				return true, nil
			}
			if got > want {
				return false, stop(fmt.Errorf("%d lines", got))
			}
			return false, fmt.Errorf("%d lines", got)
		})
	require.NoError(t, err)
}

func holddLogPath(net *Network) string {
	return filepath.Join(net.LogDir, "holdd.log")
}

// nodeRunning reports whether an lnd node's process is up.
func nodeRunning(n *LndNode) bool {
	if n.proc == nil {
		return false
	}
	gone, _ := n.proc.exited()
	return !gone
}

// keepRunning makes sure, after the test, that holdd and the given lnd
// nodes run again with the harness's default flags, whatever the test
// stopped on purpose or left stopped by failing half way.
func keepRunning(t *testing.T, net *Network, nodes ...*LndNode) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			3*DefaultTimeout)
		defer cancel()
		for _, n := range nodes {
			if nodeRunning(n) {
				continue
			}
			if err := n.Start(ctx); err != nil {
				t.Errorf("cleanup: start lnd %s: %v", n.Name, err)
			}
		}
		if len(nodes) > 0 {
			if err := net.WaitChannelsActive(ctx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if !net.HolddRunning() {
			if err := net.StartHoldd(ctx); err != nil {
				t.Errorf("cleanup: start holdd: %v", err)
				return
			}
		}
		restoreHoldd(t, net)
		if err := net.WaitHolddReady(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		failAllActive(ctx, t, net)
	})
}

// failAllActive fails back every HTLC holdd still holds, so that a test
// that failed half way leaves the network clean for the next one.
func failAllActive(ctx context.Context, t *testing.T, net *Network) {
	client, err := net.HolddClient()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	resp, err := client.ListHeld(ctx, &holdrpc.ListHeldRequest{
		States: activeHeldStates,
	})
	if err != nil {
		t.Errorf("cleanup: list held: %v", err)
		return
	}
	for _, h := range resp.Htlcs {
		t.Logf("cleanup: failing HTLC %d:%d left %s", h.Incoming.ChanId,
			h.Incoming.HtlcId, h.State)
		_, err := client.FailHeld(ctx, &holdrpc.FailHeldRequest{
			Incoming: h.Incoming, Reason: "itest cleanup",
		})
		if err != nil {
			t.Errorf("cleanup: fail HTLC %d:%d: %v",
				h.Incoming.ChanId, h.Incoming.HtlcId, err)
		}
	}
}

// flagged is a payment with hold_htlc from one node to an invoice of
// another.
type flagged struct {
	payment *Payment
	invoice *lnrpc.AddInvoiceResponse
	amtSat  int64
}

// payFlagged adds an invoice of amtSat on to (with final CLTV delta cltv,
// 0 for lnd's default) and pays it from from with hold_htlc. The invoice
// carries route hints for to's private channels (S has only one, with L).
func payFlagged(t *testing.T, from, to *LndNode, amtSat int64,
	cltv uint64) *flagged {

	t.Helper()
	ctx := t.Context()
	inv, err := to.Lightning.AddInvoice(ctx, &lnrpc.Invoice{
		Value: amtSat, Memo: t.Name(), CltvExpiry: cltv, Private: true,
	})
	require.NoError(t, err)
	pay, err := from.SendPayment(ctx, inv.PaymentRequest, PayOpts{
		FirstHopCustomRecords: HoldHTLCRecords(),
	})
	require.NoError(t, err)
	t.Cleanup(pay.Close)
	return &flagged{payment: pay, invoice: inv, amtSat: amtSat}
}

// holdOne pays P from S with hold_htlc, waits until holdd holds it, and
// fails it back after the test should the test leave it held.
func holdOne(t *testing.T, net *Network, amtSat int64,
	cltv uint64) *heldPayment {

	t.Helper()
	f := payFlagged(t, net.S, net.P, amtSat, cltv)
	h := waitHeld(t, net, f.invoice.RHash, "held")
	t.Cleanup(func() { failIfStillHeld(t, net, h.Incoming) })
	return &heldPayment{payment: f.payment, invoice: f.invoice, htlc: h,
		amtSat: amtSat}
}

// pathsOf returns the decoded release paths holdd minted for h.
func pathsOf(t *testing.T, net *Network,
	h *holdrpc.HeldHtlc) []*onionmsg.BlindedPath {

	t.Helper()
	resp := releasePaths(t, net, h)
	require.NotEmpty(t, resp.Paths)
	paths := make([]*onionmsg.BlindedPath, len(resp.Paths))
	for i, raw := range resp.Paths {
		paths[i] = decodePath(t, raw)
	}
	return paths
}

// getHeld reads one record from holdd's store.
func getHeld(t *testing.T, net *Network,
	key *holdrpc.CircuitKey) *holdrpc.HeldHtlc {

	t.Helper()
	client, err := net.HolddClient()
	require.NoError(t, err)
	rec, err := client.GetHeld(t.Context(),
		&holdrpc.GetHeldRequest{Incoming: key})
	require.NoError(t, err)
	return rec
}

// recordsByHash lists every record in holdd's store (any state) by payment
// hash.
func recordsByHash(t *testing.T,
	net *Network) map[string][]*holdrpc.HeldHtlc {

	t.Helper()
	client, err := net.HolddClient()
	require.NoError(t, err)
	resp, err := client.ListHeld(t.Context(), &holdrpc.ListHeldRequest{})
	require.NoError(t, err)
	out := make(map[string][]*holdrpc.HeldHtlc)
	for _, h := range resp.Htlcs {
		out[string(h.PaymentHash)] = append(out[string(h.PaymentHash)],
			h)
	}
	return out
}

// requireSameHold checks that got is the hold recorded in want: same HTLC,
// same terms, same held_at, still held and untouched.
func requireSameHold(t *testing.T, want, got *holdrpc.HeldHtlc) {
	t.Helper()
	require.Equal(t, want.Incoming.ChanId, got.Incoming.ChanId)
	require.Equal(t, want.Incoming.HtlcId, got.Incoming.HtlcId)
	require.Equal(t, want.PaymentHash, got.PaymentHash)
	require.Equal(t, want.IncomingAmtMsat, got.IncomingAmtMsat)
	require.Equal(t, want.OutgoingAmtMsat, got.OutgoingAmtMsat)
	require.Equal(t, want.IncomingExpiry, got.IncomingExpiry)
	require.Equal(t, want.OutgoingExpiry, got.OutgoingExpiry)
	require.Equal(t, want.OutgoingChanId, got.OutgoingChanId)
	require.Equal(t, want.AutoFailHeight, got.AutoFailHeight)
	require.Equal(t, want.FailbackHeight, got.FailbackHeight)
	require.Equal(t, want.IncomingPeer, got.IncomingPeer)
	require.Equal(t, want.HeldAtUnixNs, got.HeldAtUnixNs)
	require.Equal(t, "held", got.State)
	require.Zero(t, got.ReleasedAtUnixNs)
	require.Zero(t, got.ResolvedAtUnixNs)
	require.Empty(t, got.FailReason)
	require.Empty(t, got.ReleaseSource)
}

// requireResumed waits for the payment to succeed and checks the outcome
// everywhere: S's payment, P's invoice and holdd's record.
func requireResumed(t *testing.T, net *Network, h *heldPayment,
	source string) *holdrpc.HeldHtlc {

	t.Helper()
	return requireResumedTo(t, net, net.P, h, source)
}

// requireResumedTo is requireResumed for a payment to payee's invoice.
func requireResumedTo(t *testing.T, net *Network, payee *LndNode,
	h *heldPayment, source string) *holdrpc.HeldHtlc {

	t.Helper()
	final, err := h.payment.WaitStatus(t.Context(), DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	require.Equal(t, h.amtSat, final.ValueSat)
	inv := requireInvoiceOf(t, payee, h.invoice.RHash,
		lnrpc.Invoice_SETTLED)
	require.Equal(t, h.amtSat*1000, inv.AmtPaidMsat)

	rec := waitHeld(t, net, h.invoice.RHash, "resumed")
	require.Equal(t, source, rec.ReleaseSource)
	require.Empty(t, rec.FailReason)
	require.NotZero(t, rec.ReleasedAtUnixNs)
	require.NotZero(t, rec.ResolvedAtUnixNs)
	require.Equal(t, h.htlc.HeldAtUnixNs, rec.HeldAtUnixNs)
	return rec
}

// requireInvoiceOf checks the state of an invoice of node.
func requireInvoiceOf(t *testing.T, node *LndNode, hash []byte,
	want lnrpc.Invoice_InvoiceState) *lnrpc.Invoice {

	t.Helper()
	inv, err := node.Lightning.LookupInvoice(t.Context(),
		&lnrpc.PaymentHash{RHash: hash})
	require.NoError(t, err)
	require.Equal(t, want, inv.State)
	return inv
}

// requireFailedAtL checks that a payment failed with L's
// TEMPORARY_CHANNEL_FAILURE (as holdd and lnd's interceptor fail it).
func requireFailedAtL(t *testing.T, final *lnrpc.Payment) {
	t.Helper()
	require.Equal(t, lnrpc.Payment_FAILED, final.Status)
	require.NotEmpty(t, final.Htlcs)
	for _, attempt := range final.Htlcs {
		require.Equal(t, lnrpc.HTLCAttempt_FAILED, attempt.Status)
		require.NotNil(t, attempt.Failure)
		require.Equal(t, lnrpc.Failure_TEMPORARY_CHANNEL_FAILURE,
			attempt.Failure.Code)
		require.Equal(t, uint32(1), attempt.Failure.FailureSourceIndex)
	}
}

// manualRelease releases an HTLC through holdd's API.
func manualRelease(t *testing.T, net *Network,
	key *holdrpc.CircuitKey) *holdrpc.ReleaseHeldResponse {

	t.Helper()
	client, err := net.HolddClient()
	require.NoError(t, err)
	resp, err := client.ReleaseHeld(t.Context(), &holdrpc.ReleaseHeldRequest{
		Incoming: key, Reason: "itest: " + t.Name(),
	})
	require.NoError(t, err)
	return resp
}

// countsDelta is after - before for every key of either map, without the
// zero entries.
func countsDelta(before, after map[string]uint64) map[string]uint64 {
	d := make(map[string]uint64)
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	for k, v := range before {
		if _, ok := after[k]; !ok && v != 0 {
			// A counter went away: report it as a huge delta
			// rather than hide it.
			d[k] = ^uint64(0)
		}
	}
	return d
}

// waitReleaseDelta waits until holdd's release counters moved by exactly
// want since before, with no other outcome moving.
func waitReleaseDelta(t *testing.T, net *Network, before,
	want map[string]uint64) {

	t.Helper()
	var got map[string]uint64
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("release counters to move by %v", want),
		func(ctx context.Context) (bool, error) {
			got = countsDelta(before, holddInfo(t, net).Releases)
			if maps.Equal(got, want) {
				return true, nil
			}
			return false, fmt.Errorf("moved by %v", got)
		})
	require.NoError(t, err)
}

// pendingAtL returns the hashes of the HTLCs L carries on S->L, sorted, in
// hex.
func pendingAtL(ctx context.Context, net *Network) ([]string, error) {
	ch, err := net.L.ChannelByID(ctx, net.ChanSL)
	if err != nil {
		return nil, err
	}
	var got []string
	for _, h := range ch.PendingHtlcs {
		if !h.Incoming {
			return nil, stop(fmt.Errorf("outgoing HTLC %x on S->L "+
				"at L", h.HashLock))
		}
		got = append(got, fmt.Sprintf("%x", h.HashLock))
	}
	slices.Sort(got)
	return got, nil
}

// waitPendingAtL waits until L carries exactly the HTLCs with hashes on
// S->L: HTLCs that were just settled or failed take a commitment round to
// leave.
func waitPendingAtL(t *testing.T, net *Network, hashes ...[]byte) {
	t.Helper()
	want := []string{}
	for _, h := range hashes {
		want = append(want, fmt.Sprintf("%x", h))
	}
	slices.Sort(want)
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("L to carry exactly %v from S", want),
		func(ctx context.Context) (bool, error) {
			got, err := pendingAtL(ctx, net)
			if err != nil {
				return false, err
			}
			if got == nil {
				got = []string{}
			}
			if slices.Equal(got, want) {
				return true, nil
			}
			return false, fmt.Errorf("carries %v", got)
		})
	require.NoError(t, err)
}

// TestReliabilityHolddKilled kills holdd with SIGKILL while three HTLCs are
// held. lnd (requireinterceptor) keeps them; a release sent while holdd is
// down is dropped by lnd, and a flagged HTLC arriving meanwhile is failed
// by lnd, never held unprotected. After the restart every HTLC is held
// exactly as before and each one is released: over a path delivered
// before the crash, over the second path of the HTLC whose first release
// was lost, and by hand.
func TestReliabilityHolddKilled(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	keepRunning(t, net)

	held := []*heldPayment{
		holdOne(t, net, 21_000, 0),
		holdOne(t, net, 22_000, 0),
		holdOne(t, net, 23_000, 0),
	}
	a, b, c := held[0], held[1], held[2]
	paths := make([][]*onionmsg.BlindedPath, len(held))
	for i, h := range held {
		paths[i] = pathsOf(t, net, h.htlc)
		require.Len(t, paths[i], 2)
	}
	stored := recordsByHash(t, net)
	transport := holddInfo(t, net).Transport

	holddKey := fmt.Sprintf("%x", holddInfo(t, net).NodeKey)
	require.NoError(t, net.KillHoldd())
	require.False(t, net.HolddRunning())
	if transport == TransportPeer {
		// Until lnd has torn holdd's peer down, it drops forwards with
		// "peer exiting"; afterwards with "peer is not connected".
		err := waitFor(ctx, DefaultTimeout, "L to drop holdd's peer",
			func(ctx context.Context) (bool, error) {
				ok, err := net.L.HasPeer(ctx, holddKey)
				return !ok, err
			})
		require.NoError(t, err)
	}
	lLog := markLog(t, net.L.logPath)

	// A's first release, while holdd is down: lnd peels its hop and
	// finds holdd's peer link gone (on the custom-message transport,
	// nobody subscribes). The message is lost; nothing queues it.
	sendOverPath(t, net.P, paths[0][0], releaseMsg)
	if transport == TransportPeer {
		lLog.waitCount(t, 1, "Failed to forward onion message",
			lndPeerNotConnected)
	}

	// A new flagged HTLC while holdd is down: lnd fails it at once
	// rather than hold it with nobody watching its expiry.
	d := payFlagged(t, net.S, net.P, 24_000, 0)
	final, err := d.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_FAILED)
	require.NoError(t, err)
	requireFailedAtL(t, final)

	// The held three stay in flight and pending at L.
	require.NoError(t, a.payment.RequireInFlightFor(ctx, 2*time.Second))
	for _, h := range held {
		require.Equal(t, lnrpc.Payment_IN_FLIGHT, h.payment.Status())
	}
	waitPendingAtL(t, net, a.invoice.RHash, b.invoice.RHash,
		c.invoice.RHash)

	require.NoError(t, net.StartHoldd(ctx))

	// Every HTLC is held exactly as before the crash, A too: its lost
	// release was not queued anywhere to arrive now. D left no record.
	after := recordsByHash(t, net)
	for _, h := range held {
		hash := string(h.invoice.RHash)
		require.Len(t, after[hash], 1)
		require.Len(t, stored[hash], 1)
		requireSameHold(t, stored[hash][0], after[hash][0])
	}
	require.Empty(t, after[string(d.invoice.RHash)])
	info := holddInfo(t, net)
	require.Equal(t, uint32(3), info.HeldCount)
	require.Empty(t, countsDelta(nil, info.Releases))
	require.NoError(t, a.payment.RequireInFlightFor(ctx, time.Second))
	require.Equal(t, "held", getHeld(t, net, a.htlc.Incoming).State)

	// A: the sender's second message, over A's second path.
	sendOverPath(t, net.P, paths[0][1], releaseMsg)
	requireResumed(t, net, a, "onion")

	// B: a path delivered before the crash.
	sendOverPath(t, net.P, paths[1][0], releaseMsg)
	requireResumed(t, net, b, "onion")

	// C: by hand.
	rel := manualRelease(t, net, c.htlc.Incoming)
	require.Equal(t, "matched", rel.Outcome)
	requireResumed(t, net, c, "manual")

	waitReleaseDelta(t, net, nil, map[string]uint64{"matched": 3})
	requireInvoiceState(t, net, d.invoice.RHash, lnrpc.Invoice_OPEN)
	waitPendingAtL(t, net)
}

// backoffWaits parses the reconnect delays holdd's interceptor logged.
func backoffWaits(t *testing.T, lines []string) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, l := range lines {
		i := strings.Index(l, "reconnecting in ")
		require.GreaterOrEqual(t, i, 0, l)
		rest := l[i+len("reconnecting in "):]
		end := strings.IndexByte(rest, '"')
		require.Greater(t, end, 0, l)
		d, err := time.ParseDuration(rest[:end])
		require.NoError(t, err, l)
		out = append(out, d)
	}
	return out
}

// requireBackoff checks the interceptor's documented reconnect policy on
// the delays it logged in one outage: each delay is drawn from [b/2, b),
// b starts at some 500ms * 2^k and doubles up to 30s.
func requireBackoff(t *testing.T, waits []time.Duration) {
	t.Helper()
	const (
		minBackoff = 500 * time.Millisecond
		maxBackoff = 30 * time.Second
	)
	require.NotEmpty(t, waits)
	b := minBackoff
	for !(waits[0] >= b/2 && waits[0] < b) {
		require.Less(t, b, maxBackoff, "first delay %v fits no "+
			"backoff step", waits[0])
		b = min(2*b, maxBackoff)
	}
	for i, w := range waits {
		require.GreaterOrEqual(t, w, b/2, "delay %d of %v", i, waits)
		require.Less(t, w, b, "delay %d of %v", i, waits)
		b = min(2*b, maxBackoff)
	}
}

// waitChannelActive waits until node sees channel scid active.
func waitChannelActive(t *testing.T, node *LndNode, scid uint64) {
	t.Helper()
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("lnd %s: channel %d active", node.Name, scid),
		func(ctx context.Context) (bool, error) {
			ch, err := node.ChannelByID(ctx, scid)
			if err != nil {
				return false, err
			}
			return ch.Active, nil
		})
	require.NoError(t, err)
}

// waitDecisions waits until holdd counted at least want decisions of kind.
func waitDecisions(t *testing.T, net *Network, kind string, want uint64) {
	t.Helper()
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("holdd to count %d decisions %q", want, kind),
		func(ctx context.Context) (bool, error) {
			got := holddInfo(t, net).Decisions[kind]
			if got >= want {
				return true, nil
			}
			return false, fmt.Errorf("count %d", got)
		})
	require.NoError(t, err)
}

// TestReliabilityLndRestart restarts L under two held HTLCs, twice, with
// no restart of holdd.
//
// First with S connected: holdd's interceptor stream drops and comes back
// with its backoff, the peer link and the block stream reconnect, lnd
// replays both HTLCs and holdd matches them to their stored records (no
// duplicate, same held_at); a release over a path minted before the
// restart then works.
//
// Then with S stopped, so that lnd cannot replay B until S is back: B's
// release arrives while lnd does not offer it. holdd records it (released),
// counts a second one as a duplicate, and resumes B when lnd replays it.
//
// Throughout, holdd never resolves a key lnd did not offer: lnd's
// "forward does not exist" never appears in L's log.
func TestReliabilityLndRestart(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	keepRunning(t, net, net.S, net.L, net.P)

	a := holdOne(t, net, 31_000, 0)
	b := holdOne(t, net, 32_000, 0)
	pathsA := pathsOf(t, net, a.htlc)
	pathsB := pathsOf(t, net, b.htlc)
	stored := recordsByHash(t, net)
	before := holddInfo(t, net)
	require.Equal(t, uint32(2), before.HeldCount, "the network was not "+
		"clean")
	lLog := markLog(t, net.L.logPath)
	hLog := markLog(t, holddLogPath(net))

	// Part 1: L restarts with S connected.
	require.NoError(t, net.L.Restart(ctx))
	require.NoError(t, net.WaitHolddReady(ctx))
	require.NoError(t, net.WaitChannelsActive(ctx))
	// lnd replays each HTLC once (should it offer one again, holdd
	// answers the same way: what matters is the records below).
	waitDecisions(t, net, "hold_replayed",
		before.Decisions["hold_replayed"]+2)

	after := recordsByHash(t, net)
	for _, h := range []*heldPayment{a, b} {
		hash := string(h.invoice.RHash)
		require.Len(t, after[hash], 1, "records of %x", hash)
		requireSameHold(t, stored[hash][0], after[hash][0])
	}
	info := holddInfo(t, net)
	require.Equal(t, uint32(2), info.HeldCount)
	require.Equal(t, before.Decisions["hold"], info.Decisions["hold"])

	// The interceptor came back on its own, after at least one failed
	// attempt while lnd was down, with its backoff.
	streams := hLog.lines(t, "Interceptor stream", "open")
	require.NotEmpty(t, streams)
	requireBackoff(t, backoffWaits(t, hLog.lines(t,
		"Interceptor stream down", "reconnecting in")))

	// The block stream is back: holdd follows a new block.
	_, err := net.MineBlocks(ctx, 1)
	require.NoError(t, err)

	sendOverPath(t, net.P, pathsA[0], releaseMsg)
	requireResumed(t, net, a, "onion")

	// Part 2: L restarts while S is down, so B is not replayed until S
	// returns.
	require.NoError(t, net.S.Stop())
	require.NoError(t, net.L.Restart(ctx))
	require.NoError(t, net.WaitHolddReady(ctx))
	waitChannelActive(t, net.P, net.ChanLP)
	waitChannelActive(t, net.L, net.ChanLP)
	replayed := holddInfo(t, net).Decisions["hold_replayed"]

	counts := holddInfo(t, net).Releases
	sendOverPath(t, net.P, pathsB[0], releaseMsg)
	waitHeld(t, net, b.invoice.RHash, "released")
	rec := getHeld(t, net, b.htlc.Incoming)
	require.Equal(t, "onion", rec.ReleaseSource)
	require.NotZero(t, rec.ReleasedAtUnixNs)
	require.Zero(t, rec.ResolvedAtUnixNs)
	require.Equal(t, b.htlc.HeldAtUnixNs, rec.HeldAtUnixNs)

	// A second release of B before lnd offers it again is a duplicate;
	// so is a manual one.
	sendOverPath(t, net.P, pathsB[1], releaseMsg)
	waitReleaseDelta(t, net, counts,
		map[string]uint64{"matched": 1, "duplicate": 1})
	rel := manualRelease(t, net, b.htlc.Incoming)
	require.Equal(t, "duplicate", rel.Outcome)
	require.Equal(t, "released", rel.Htlc.State)
	waitReleaseDelta(t, net, counts,
		map[string]uint64{"matched": 1, "duplicate": 2})

	// S comes back, lnd replays B and holdd resumes it.
	require.NoError(t, net.S.Start(ctx))
	require.NoError(t, net.WaitChannelsActive(ctx))
	requireResumed(t, net, b, "onion")
	final := holddInfo(t, net)
	// lnd replays B while S's link comes up. Either holdd resumes the
	// replay at once, or it sees the link not yet active, holds the
	// replay, and resumes B when lnd reports the channel active: one of
	// the two, exactly once.
	heldAgain := final.Decisions["hold_replayed"] - replayed
	resumedOnReplay := final.Decisions["resume_replayed"] -
		before.Decisions["resume_replayed"]
	require.Equal(t, uint64(1), heldAgain+resumedOnReplay,
		"held again %d, resumed on replay %d", heldAgain,
		resumedOnReplay)
	require.Equal(t, uint32(0), final.HeldCount)

	require.Empty(t, lLog.lines(t, lndFwdNotExists))
	require.Empty(t, hLog.lines(t, lndFwdNotExists))
	waitPendingAtL(t, net)
}

// TestReliabilityDuplicateReleases sends the same release three times over
// each of an HTLC's two paths: it resumes once and every other message is
// counted as a duplicate.
func TestReliabilityDuplicateReleases(t *testing.T) {
	net := Net(t)
	ctx := t.Context()

	h := holdOne(t, net, 41_000, 0)
	paths := pathsOf(t, net, h.htlc)
	require.Len(t, paths, 2)
	before := holddInfo(t, net).Releases

	for range 3 {
		for _, p := range paths {
			sendOverPath(t, net.P, p, releaseMsg)
		}
	}
	requireResumed(t, net, h, "onion")
	waitReleaseDelta(t, net, before,
		map[string]uint64{"matched": 1, "duplicate": 5})

	// A manual release of a resumed HTLC is refused and counts nothing.
	client, err := net.HolddClient()
	require.NoError(t, err)
	_, err = client.ReleaseHeld(ctx, &holdrpc.ReleaseHeldRequest{
		Incoming: h.htlc.Incoming, Reason: "again",
	})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), err)
	waitReleaseDelta(t, net, before,
		map[string]uint64{"matched": 1, "duplicate": 5})
	require.Equal(t, "resumed", getHeld(t, net, h.htlc.Incoming).State)
}

// requireChannelsIdle checks that L's channels scids are active with no
// HTLC on them, and that L closed none and has none closing.
func requireChannelsIdle(t *testing.T, net *Network, scids ...uint64) {
	t.Helper()
	for _, scid := range scids {
		ch, err := net.L.ChannelByID(t.Context(), scid)
		require.NoError(t, err)
		require.True(t, ch.Active, ch.RemotePubkey)
		require.Empty(t, ch.PendingHtlcs)
	}
	requireNoForceClose(t, net)
}

// requireNoForceClose checks that L closed no channel and has none closing.
func requireNoForceClose(t *testing.T, net *Network) {
	t.Helper()
	ctx := t.Context()
	pending, err := net.L.Lightning.PendingChannels(ctx,
		&lnrpc.PendingChannelsRequest{})
	require.NoError(t, err)
	require.Empty(t, pending.PendingForceClosingChannels)
	require.Empty(t, pending.WaitingCloseChannels)
	require.Empty(t, pending.PendingOpenChannels)
	closed, err := net.L.Lightning.ClosedChannels(ctx,
		&lnrpc.ClosedChannelsRequest{})
	require.NoError(t, err)
	require.Empty(t, closed.Channels)
}

// waitNoneOverdue waits until holdd, at height, holds no HTLC at or past its
// fail-back height. The engine stores the height before it fails back what
// is due, so a reader can see the new height a moment before the fail-back
// is written; that moment is all the wait allows for.
func waitNoneOverdue(t *testing.T, net *Network, height int32) {
	t.Helper()
	err := waitFor(t.Context(), 10*time.Second,
		fmt.Sprintf("holdd to hold nothing due at height %d", height),
		func(ctx context.Context) (bool, error) {
			client, err := net.HolddClient()
			if err != nil {
				return false, err
			}
			resp, err := client.ListHeld(ctx, &holdrpc.ListHeldRequest{
				States: activeHeldStates,
			})
			if err != nil {
				return false, err
			}
			for _, h := range resp.Htlcs {
				if h.FailbackHeight <= height {
					return false, fmt.Errorf("%d:%d is %s "+
						"with fail-back height %d",
						h.Incoming.ChanId,
						h.Incoming.HtlcId, h.State,
						h.FailbackHeight)
				}
			}
			return true, nil
		})
	require.NoError(t, err)
}

// TestReliabilityExpiry mines 100 blocks in batches of at most 10 under
// three held HTLCs whose fail-back heights fall inside them, and holdd is
// killed across the middle one's. After every batch no HTLC is held at or
// past its fail-back height; each is failed back (reason expiry) in the
// batch that reaches it, below lnd's auto_fail_height, so lnd never has to
// fail it itself; the HTLC killed across is failed back as soon as holdd
// starts. No channel ever moves towards a force close.
func TestReliabilityExpiry(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	keepRunning(t, net)

	start, err := net.BlockHeight()
	require.NoError(t, err)
	const span = 100
	held := []*heldPayment{
		holdOne(t, net, 51_000, 24),
		holdOne(t, net, 52_000, 30),
		holdOne(t, net, 53_000, 36),
	}
	for i, h := range held {
		r := h.htlc
		require.Equal(t, r.AutoFailHeight-defaultFailbackMargin,
			r.FailbackHeight)
		require.Less(t, r.AutoFailHeight, int32(r.IncomingExpiry))
		require.Greater(t, r.FailbackHeight, start)
		require.Less(t, r.FailbackHeight, start+span,
			"HTLC %d fails back after the blocks this test mines", i)
		if i > 0 {
			require.Greater(t, r.FailbackHeight,
				held[i-1].htlc.FailbackHeight)
		}
	}
	// holdd is down while the chain passes this one's fail-back height.
	down := held[1]

	height := start
	for height < start+span {
		prev := height
		batch := min(10, start+span-height)
		crossesDown := height < down.htlc.FailbackHeight &&
			down.htlc.FailbackHeight <= height+batch
		if crossesDown {
			require.NoError(t, net.KillHoldd())
		}
		height, err = net.MineBlocks(ctx, uint32(batch))
		require.NoError(t, err)
		if crossesDown {
			require.NoError(t, net.StartHoldd(ctx))
		}
		waitNoneOverdue(t, net, height)

		var stillHeld [][]byte
		for _, h := range held {
			r := h.htlc
			if r.FailbackHeight > height {
				require.Equal(t, "held",
					getHeld(t, net, r.Incoming).State)
				require.Equal(t, lnrpc.Payment_IN_FLIGHT,
					h.payment.Status())
				stillHeld = append(stillHeld, h.invoice.RHash)
				continue
			}
			// Failed back by holdd; if in this batch, the batch
			// ended below lnd's own auto-fail height, so lnd
			// cannot have done it.
			if r.FailbackHeight > prev {
				require.Less(t, height, r.AutoFailHeight)
			}
			rec := waitHeld(t, net, h.invoice.RHash, "failed")
			require.Equal(t, "expiry", rec.FailReason)
			final, err := h.payment.WaitStatus(ctx, DefaultTimeout,
				lnrpc.Payment_FAILED)
			require.NoError(t, err)
			requireFailedAtL(t, final)
		}
		waitPendingAtL(t, net, stillHeld...)
		requireNoForceClose(t, net)
	}

	for _, h := range held {
		requireInvoiceState(t, net, h.invoice.RHash, lnrpc.Invoice_OPEN)
	}
	for _, scid := range []uint64{net.ChanSL, net.ChanLP} {
		ch, err := net.L.ChannelByID(ctx, scid)
		require.NoError(t, err)
		require.True(t, ch.Active)
		require.Empty(t, ch.PendingHtlcs)
	}
}

// resetMissionControl makes nodes route as if no payment had failed: a
// failure at L makes a sender avoid L for a while.
func resetMissionControl(t *testing.T, nodes ...*LndNode) {
	t.Helper()
	for _, n := range nodes {
		_, err := n.Router.ResetMissionControl(t.Context(),
			&routerrpc.ResetMissionControlRequest{})
		require.NoError(t, err)
	}
}

// burstFlagged sends n flagged payments from one node to invoices of
// another, all at once.
func burstFlagged(t *testing.T, from, to *LndNode, n int,
	amtSat int64) []*flagged {

	t.Helper()
	invs := make([]*lnrpc.AddInvoiceResponse, n)
	for i := range invs {
		// Route hints, for a payee whose channel is private (S).
		inv, err := to.Lightning.AddInvoice(t.Context(), &lnrpc.Invoice{
			Value: amtSat + int64(i), Memo: t.Name(), Private: true,
		})
		require.NoError(t, err)
		invs[i] = inv
	}
	out := make([]*flagged, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, inv := range invs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pay, err := from.SendPayment(t.Context(),
				inv.PaymentRequest, PayOpts{
					FirstHopCustomRecords: HoldHTLCRecords(),
				})
			errs[i] = err
			if err == nil {
				out[i] = &flagged{payment: pay, invoice: inv,
					amtSat: amtSat + int64(i)}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err)
		t.Cleanup(out[i].payment.Close)
	}
	return out
}

// settleBurst waits until each payment of a burst is either held by holdd
// or failed, and returns them split. A failed one must have failed within
// failWithin of the burst's start.
func settleBurst(t *testing.T, net *Network, burst []*flagged,
	since time.Time, failWithin time.Duration) (held, failed []*flagged) {

	t.Helper()
	for _, f := range burst {
		var state string
		err := waitFor(t.Context(), DefaultTimeout,
			fmt.Sprintf("payment %x held or failed", f.invoice.RHash),
			func(ctx context.Context) (bool, error) {
				if f.payment.Status() == lnrpc.Payment_FAILED {
					state = "failed"
					return true, nil
				}
				client, err := net.HolddClient()
				if err != nil {
					return false, err
				}
				resp, err := client.ListHeld(ctx,
					&holdrpc.ListHeldRequest{
						States: activeHeldStates,
					})
				if err != nil {
					return false, err
				}
				for _, h := range resp.Htlcs {
					if bytes.Equal(h.PaymentHash,
						f.invoice.RHash) {

						state = "held"
						return true, nil
					}
				}
				return false, fmt.Errorf("payment %v",
					f.payment.Status())
			})
		require.NoError(t, err)
		if state == "held" {
			held = append(held, f)
			continue
		}
		final := f.payment.Latest()
		requireFailedAtL(t, final)
		last := final.Htlcs[len(final.Htlcs)-1]
		took := time.Unix(0, last.ResolveTimeNs).Sub(since)
		require.Less(t, took, failWithin, "payment %x failed after %v",
			f.invoice.RHash, took)
		failed = append(failed, f)
	}
	return held, failed
}

// attempts counts the HTLCs a set of failed payments sent: each one reached
// L and was failed there.
func attempts(fs []*flagged) uint64 {
	var n uint64
	for _, f := range fs {
		n += uint64(len(f.payment.Latest().Htlcs))
	}
	return n
}

// TestReliabilityCaps sets a per-peer cap of 2 and a global cap of 3 and
// sends bursts of flagged HTLCs from S and then P (allow-listed, as its
// channel is public): exactly the cap is held, every excess HTLC is failed
// at once (its payment fails within seconds, nothing is queued or stored),
// and a released slot is usable again.
func TestReliabilityCaps(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	keepRunning(t, net)
	require.NoError(t, net.RestartHoldd(ctx,
		"--hold.allowpeer="+net.P.PubKeyHex))
	t.Cleanup(func() { restoreHoldd(t, net) })
	client, err := net.HolddClient()
	require.NoError(t, err)

	orig, err := client.GetPolicy(ctx, &holdrpc.GetPolicyRequest{})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			DefaultTimeout)
		defer cancel()
		client, err := net.HolddClient()
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		_, err = client.SetPolicy(ctx,
			&holdrpc.SetPolicyRequest{Reset_: true})
		if err != nil {
			t.Errorf("cleanup: reset policy: %v", err)
		}
	})

	// P needs outbound on L->P to send flagged HTLCs to S.
	inv0, err := net.P.AddInvoice(ctx, 100_000, "caps: fund P")
	require.NoError(t, err)
	pay, err := net.S.SendPayment(ctx, inv0.PaymentRequest, PayOpts{})
	require.NoError(t, err)
	defer pay.Close()
	_, err = pay.WaitStatus(ctx, DefaultTimeout, lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)

	capped := &holdrpc.Policy{
		HoldTypes:                orig.HoldTypes,
		FailbackMargin:           orig.FailbackMargin,
		MaxHoldTimeSeconds:       orig.MaxHoldTimeSeconds,
		MaxHeldPerPeer:           2,
		MaxHeldTotal:             3,
		PendingReleaseTtlSeconds: orig.PendingReleaseTtlSeconds,
	}
	_, err = client.SetPolicy(ctx, &holdrpc.SetPolicyRequest{
		Policy: capped,
	})
	require.NoError(t, err)
	before := holddInfo(t, net).Decisions

	// S sends five at once: two are held, three hit S's cap.
	since := time.Now()
	fromS := burstFlagged(t, net.S, net.P, 5, 10_000)
	heldS, failedS := settleBurst(t, net, fromS, since, 15*time.Second)
	require.Len(t, heldS, 2)
	require.Len(t, failedS, 3)

	// P sends two: P's first fits its own cap and the last global slot,
	// the second is over the global cap.
	since = time.Now()
	fromP := burstFlagged(t, net.P, net.S, 2, 11_000)
	heldP, failedP := settleBurst(t, net, fromP, since, 15*time.Second)
	require.Len(t, heldP, 1)
	require.Len(t, failedP, 1)

	after := holddInfo(t, net)
	require.Equal(t, uint32(3), after.HeldCount)
	require.Equal(t, before["hold"]+3, after.Decisions["hold"])
	require.Equal(t, before["fail_cap_peer_count"]+attempts(failedS),
		after.Decisions["fail_cap_peer_count"])
	require.Equal(t, before["fail_cap_total_count"]+attempts(failedP),
		after.Decisions["fail_cap_total_count"])

	// A capped HTLC is failed before anything is written.
	records := recordsByHash(t, net)
	for _, f := range failedS {
		require.Empty(t, records[string(f.invoice.RHash)])
		requireInvoiceOf(t, net.P, f.invoice.RHash, lnrpc.Invoice_OPEN)
	}
	require.Empty(t, records[string(failedP[0].invoice.RHash)])
	requireInvoiceOf(t, net.S, failedP[0].invoice.RHash, lnrpc.Invoice_OPEN)
	for _, f := range heldS {
		r := records[string(f.invoice.RHash)]
		require.Len(t, r, 1)
		require.Equal(t, net.S.PubKey, r[0].IncomingPeer)
	}
	r := records[string(heldP[0].invoice.RHash)]
	require.Len(t, r, 1)
	require.Equal(t, net.P.PubKey, r[0].IncomingPeer)
	waitPendingAtL(t, net, heldS[0].invoice.RHash, heldS[1].invoice.RHash)

	// Releasing one of S's frees a slot for S.
	asHeld := func(f *flagged, h *holdrpc.HeldHtlc) *heldPayment {
		return &heldPayment{payment: f.payment, invoice: f.invoice,
			htlc: h, amtSat: f.amtSat}
	}
	first := asHeld(heldS[0], records[string(heldS[0].invoice.RHash)][0])
	require.Equal(t, "matched", manualRelease(t, net,
		first.htlc.Incoming).Outcome)
	requireResumed(t, net, first, "manual")
	resetMissionControl(t, net.S, net.P)
	again := holdOne(t, net, 12_000, 0)

	// Release everything still held.
	rest := []*heldPayment{
		asHeld(heldS[1], records[string(heldS[1].invoice.RHash)][0]),
		asHeld(heldP[0], r[0]),
		again,
	}
	for _, h := range rest {
		require.Equal(t, "matched", manualRelease(t, net,
			h.htlc.Incoming).Outcome)
	}
	requireResumed(t, net, rest[0], "manual")
	requireResumedTo(t, net, net.S, rest[1], "manual")
	requireResumed(t, net, rest[2], "manual")
	waitPendingAtL(t, net)
}

// TestReliabilityCrashMidWrite kills holdd with SIGKILL in the middle of a
// burst of 20 concurrent flagged HTLCs, restarts it, and checks holdd's
// store against lnd: the HTLCs L still carries from S are exactly the ones
// holdd's store holds (same keys, hashes, amounts and expiries), every
// other payment failed without leaving any record, and every held one is
// then released and paid.
func TestReliabilityCrashMidWrite(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	keepRunning(t, net)
	require.Equal(t, uint32(0), holddInfo(t, net).HeldCount)

	const n = 20
	var burst []*flagged

	// Kill holdd the moment it reports the first hold: the other HTLCs
	// are then on their way, offered to the interceptor, or waiting for
	// the store.
	client, err := net.HolddClient()
	require.NoError(t, err)
	events, err := client.SubscribeHoldEvents(ctx,
		&holdrpc.SubscribeHoldEventsRequest{})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		for {
			ev, err := events.Recv()
			if err != nil {
				done <- err
				return
			}
			if ev.Kind == "held" {
				done <- net.KillHoldd()
				return
			}
		}
	}()
	burst = burstFlagged(t, net.S, net.P, n, 5_000)
	require.NoError(t, <-done)
	require.False(t, net.HolddRunning())
	require.NoError(t, net.StartHoldd(ctx))

	// Wait until every payment is held or failed, then compare the store
	// with lnd.
	held, failed := settleBurst(t, net, burst, time.Now(), time.Hour)
	require.Len(t, append(held, failed...), n)
	t.Logf("after the crash: %d held, %d failed while holdd was down",
		len(held), len(failed))

	var hashes [][]byte
	for _, f := range held {
		hashes = append(hashes, f.invoice.RHash)
	}
	waitPendingAtL(t, net, hashes...)
	ch, err := net.L.ChannelByID(ctx, net.ChanSL)
	require.NoError(t, err)
	client, err = net.HolddClient()
	require.NoError(t, err)
	active, err := client.ListHeld(ctx, &holdrpc.ListHeldRequest{
		States: activeHeldStates,
	})
	require.NoError(t, err)
	require.Len(t, active.Htlcs, len(ch.PendingHtlcs))
	byIndex := make(map[uint64]*lnrpc.HTLC)
	for _, h := range ch.PendingHtlcs {
		byIndex[h.HtlcIndex] = h
	}
	for _, rec := range active.Htlcs {
		require.Equal(t, "held", rec.State)
		require.Equal(t, net.ChanSL, rec.Incoming.ChanId)
		atL, ok := byIndex[rec.Incoming.HtlcId]
		require.True(t, ok, "store holds %d:%d, L does not",
			rec.Incoming.ChanId, rec.Incoming.HtlcId)
		require.Equal(t, atL.HashLock, rec.PaymentHash)
		require.Equal(t, uint64(atL.Amount), rec.IncomingAmtMsat/1000)
		require.Equal(t, atL.ExpirationHeight, rec.IncomingExpiry)
		delete(byIndex, rec.Incoming.HtlcId)
	}
	require.Empty(t, byIndex)

	records := recordsByHash(t, net)
	for _, f := range failed {
		require.Empty(t, records[string(f.invoice.RHash)])
		requireInvoiceState(t, net, f.invoice.RHash, lnrpc.Invoice_OPEN)
	}
	for _, f := range held {
		r := records[string(f.invoice.RHash)]
		require.Len(t, r, 1)
		// The amount to the msat, from the sender's side.
		route := sentRoute(t, f.payment)
		require.Equal(t, uint64(route.TotalAmtMsat), r[0].IncomingAmtMsat)
		require.Equal(t, route.TotalTimeLock, r[0].IncomingExpiry)
		require.Equal(t, "matched", manualRelease(t, net,
			r[0].Incoming).Outcome)
	}
	for _, f := range held {
		requireResumed(t, net, &heldPayment{payment: f.payment,
			invoice: f.invoice, amtSat: f.amtSat,
			htlc: records[string(f.invoice.RHash)][0]}, "manual")
	}
	waitPendingAtL(t, net)
}

// tlvStream encodes records as a TLV stream in type order.
func tlvStream(t *testing.T, records map[uint64][]byte) []byte {
	t.Helper()
	types := slices.Sorted(maps.Keys(records))
	values := make([][]byte, len(types))
	recs := make([]tlv.Record, len(types))
	for i, typ := range types {
		values[i] = records[typ]
		recs[i] = tlv.MakePrimitiveRecord(tlv.Type(typ), &values[i])
	}
	stream, err := tlv.NewStream(recs...)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, stream.Encode(&b))
	return b.Bytes()
}

// rawOnion builds an onion message over path whose hops carry exactly the
// given payloads, well-formed or not: what a hostile sender can put in the
// layer of a node it does not control. The packet uses the 32768-byte
// payload when the 1300-byte one is too small.
func rawOnion(t *testing.T, path *onionmsg.BlindedPath,
	payloads ...[]byte) *lnwire.OnionMessage {

	t.Helper()
	require.Len(t, payloads, len(path.Hops))
	var sp sphinx.PaymentPath
	for i, hop := range path.Hops {
		hp, err := sphinx.NewTLVHopPayload(payloads[i])
		require.NoError(t, err)
		sp[i] = sphinx.OnionHop{NodePub: *hop.BlindedNodePub,
			HopPayload: hp}
	}
	size := sphinx.MaxRoutingPayloadSize
	if sp.TotalPayloadSize() > size {
		size = sphinx.MaxOnionMessagePayloadSize
	}
	session, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	pkt, err := sphinx.NewOnionPacket(&sp, session, nil,
		sphinx.DeterministicPacketFiller, sphinx.WithMaxPayloadSize(size))
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, pkt.Encode(&b))
	return lnwire.NewOnionMessage(path.PathKey, b.Bytes())
}

// withFinal builds an onion over a real path with the final hop's payload
// replaced: the path's own encrypted data for every hop before it.
func withFinal(t *testing.T, path *onionmsg.BlindedPath,
	final []byte) *lnwire.OnionMessage {

	t.Helper()
	payloads := make([][]byte, len(path.Hops))
	for i, hop := range path.Hops[:len(path.Hops)-1] {
		payloads[i] = tlvStream(t, map[uint64][]byte{
			onionmsg.EncryptedDataType: hop.CipherText,
		})
	}
	payloads[len(payloads)-1] = final
	return rawOnion(t, path, payloads...)
}

// onion builds a well-formed onion message over path with final TLVs.
func onion(t *testing.T, path *onionmsg.BlindedPath,
	tlvs map[uint64][]byte) *lnwire.OnionMessage {

	t.Helper()
	session, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	msg, err := onionmsg.BuildOnionMessage(session, path, nil, tlvs)
	require.NoError(t, err)
	return msg
}

// blinded builds a blinded path over hops, padded like holdd's.
func blinded(t *testing.T, hops ...onionmsg.Hop) *onionmsg.BlindedPath {
	t.Helper()
	session, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	p, err := onionmsg.BuildBlindedPath(session, hops, true)
	require.NoError(t, err)
	return p
}

// forwardHop is a hop that sends the message on to next.
func forwardHop(node, next *btcec.PublicKey) onionmsg.Hop {
	return onionmsg.Hop{NodeID: node,
		Data: record.NewNonFinalBlindedRouteDataOnionMessage(
			fn.NewLeft[*btcec.PublicKey, lnwire.ShortChannelID](
				next), nil, nil)}
}

// finalHop is a path's last hop with a path_id.
func finalHop(node *btcec.PublicKey, pathID []byte) onionmsg.Hop {
	return onionmsg.Hop{NodeID: node,
		Data: record.NewFinalHopBlindedRouteData(nil, pathID)}
}

// flipped returns b with one bit of byte i inverted.
func flipped(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x10
	return out
}

// sendMsg sends a prebuilt onion message from node to L.
func sendMsg(t *testing.T, net *Network, from *LndNode,
	msg *lnwire.OnionMessage) {

	t.Helper()
	require.NoError(t, from.SendOnionMessage(t.Context(), net.L.PubKey,
		msg.PathKey.SerializeCompressed(), msg.OnionBlob))
}

// hostileMsg is one kind of bad onion message and the outcome holdd must
// count for it ("" when lnd drops it before holdd).
type hostileMsg struct {
	name    string
	msg     *lnwire.OnionMessage
	outcome string
}

// testPeer connects to L as a channel-less Lightning peer with its own key,
// using holdd's peer link: the burst's senders.
func testPeer(t *testing.T, net *Network) *peerlink.Link {
	t.Helper()
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	lndKey, err := btcec.ParsePubKey(net.L.PubKey)
	require.NoError(t, err)
	log := logrus.New()
	log.SetOutput(io.Discard)
	link, err := peerlink.New(peerlink.Config{
		NodeKey:    key,
		PeerPubKey: lndKey,
		PeerAddr:   net.L.P2PAddr,
		OnMessage:  func(context.Context, *lnwire.OnionMessage) {},
		Logger:     log,
	})
	require.NoError(t, err)
	require.NoError(t, link.Start())
	t.Cleanup(func() { _ = link.Stop() })
	return link
}

// burstStats is how a burst went.
type burstStats struct {
	sent    uint64
	counted uint64
	elapsed time.Duration
	err     error
}

// releaseTotal sums holdd's release counters.
func releaseTotal(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// TestReliabilityHostileInput sends holdd, through L and over the real
// network, every kind of bad release message a sender can make: forged,
// truncated, bit-flipped and oversized messages and path_ids, unknown even
// TLVs, paths that end at other nodes or continue past holdd, a path holdd
// itself minted that has expired (its HTLC failed back as path_expired
// when it did), and then a burst of 10,000 bogus releases
// from ten peers at the rate lnd's default onion-message limits admit. None
// releases anything, each is counted under its outcome (GetInfo and the
// Prometheus metrics agree), holdd stays up, and during the burst a plain
// payment goes through, a real release is applied and a new HTLC is held.
func TestReliabilityHostileInput(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	if net.Transport() != TransportPeer {
		t.Skipf("the hostile messages are built for the peer link's "+
			"two-hop paths; holdd runs the %s transport",
			net.Transport())
	}
	keepRunning(t, net)
	hLog := markLog(t, holddLogPath(net))

	// A path holdd mints under a one-minute expiry (the shortest it
	// allows), used again once it has expired.
	require.NoError(t, net.RestartHoldd(ctx, "--release.pathexpiry=1m"))
	x := holdOne(t, net, 61_000, 0)
	xPaths := releasePaths(t, net, x.htlc)
	require.LessOrEqual(t, xPaths.ExpiresAtUnix, time.Now().Add(
		61*time.Second).Unix())

	metricsAddr, err := freeAddr()
	require.NoError(t, err)
	require.NoError(t, net.RestartHoldd(ctx,
		"--prometheus.listen="+metricsAddr))

	// Nobody can release X once its paths expired, so holdd fails it
	// back then, although it runs without the short expiry by now: the
	// expiry is X's, fixed when it was held.
	time.Sleep(time.Until(time.Unix(xPaths.ExpiresAtUnix, 0)))
	xRec := waitHeld(t, net, x.invoice.RHash, "failed")
	require.Equal(t, "path_expired", xRec.FailReason)
	_, err = x.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_FAILED)
	require.NoError(t, err)
	// The failure at L must not keep S from routing through it.
	resetMissionControl(t, net.S)

	info := holddInfo(t, net)
	require.Empty(t, countsDelta(nil, info.Releases))
	holddKey, err := btcec.ParsePubKey(info.NodeKey)
	require.NoError(t, err)
	lndKey, err := btcec.ParsePubKey(net.L.PubKey)
	require.NoError(t, err)
	pKey, err := btcec.ParsePubKey(net.P.PubKey)
	require.NoError(t, err)
	stranger, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	a := holdOne(t, net, 62_000, 0)
	b := holdOne(t, net, 63_000, 0)
	pathA := pathsOf(t, net, a.htlc)
	pathB := pathsOf(t, net, b.htlc)
	ctA := pathA[0].Hops[1].CipherText

	// path_ids under a secret that is not holdd's, for A.
	forger, err := release.NewAuthenticator(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	var hashA [32]byte
	copy(hashA[:], a.invoice.RHash)
	forgedID := forger.Mint(release.Claim{
		Key: plugin.CircuitKey{ChanID: a.htlc.Incoming.ChanId,
			HtlcID: a.htlc.Incoming.HtlcId},
		PaymentHash: hashA, ExpiresAt: time.Now().Add(time.Hour),
	})
	toHoldd := func(pathID []byte) *onionmsg.BlindedPath {
		return blinded(t, forwardHop(lndKey, holddKey),
			finalHop(holddKey, pathID))
	}
	bigOdd := bytes.Repeat([]byte{0xab}, 20_000)

	// A valid release of A, bit-flipped in lnd's layer.
	valid := onion(t, pathA[0], releaseMsg)
	outerFlip := lnwire.NewOnionMessage(valid.PathKey,
		flipped(valid.OnionBlob, 200))

	cases := []hostileMsg{
		// Dropped by lnd: holdd never sees them.
		{"outer layer bit-flipped", outerFlip, ""},
		{"oversized blob", lnwire.NewOnionMessage(valid.PathKey,
			bytes.Repeat([]byte{1}, 40_000)), ""},
		{"truncated blob", lnwire.NewOnionMessage(valid.PathKey,
			valid.OnionBlob[:700]), ""},
		{"next node not connected", onion(t, blinded(t,
			forwardHop(lndKey, stranger.PubKey()),
			finalHop(stranger.PubKey(), forgedID)), releaseMsg), ""},

		// Reach holdd.
		{"forged path_id", onion(t, toHoldd(forgedID), releaseMsg),
			release.OutcomeForged},
		{"forged path_id in an oversized onion", onion(t,
			toHoldd(forgedID), map[uint64][]byte{
				onionmsg.ReleaseHeldHTLCType: {0}, 75: bigOdd,
			}), release.OutcomeForged},
		{"truncated path_id", onion(t, toHoldd(forgedID[:40]),
			releaseMsg), release.OutcomeMalformed},
		{"path_id one byte long", onion(t, toHoldd(append(
			append([]byte(nil), forgedID...), 0)), releaseMsg),
			release.OutcomeMalformed},
		{"path_id of another version", onion(t, toHoldd(flipped(
			forgedID, 0)), releaseMsg), release.OutcomeMalformed},
		{"encrypted data bit-flipped", withFinal(t, pathA[0],
			tlvStream(t, map[uint64][]byte{
				onionmsg.EncryptedDataType:   flipped(ctA, 9),
				onionmsg.ReleaseHeldHTLCType: {0},
			})), release.OutcomeUndecodable},
		{"encrypted data truncated", withFinal(t, pathA[0],
			tlvStream(t, map[uint64][]byte{
				onionmsg.EncryptedDataType:   ctA[:len(ctA)-1],
				onionmsg.ReleaseHeldHTLCType: {0},
			})), release.OutcomeUndecodable},
		{"payload TLV stream truncated", withFinal(t, pathA[0],
			append(tlvStream(t, map[uint64][]byte{
				onionmsg.EncryptedDataType: ctA,
			}), 0x4a, 0x05, 0x00)), release.OutcomeUndecodable},
		{"payload type bit-flipped", withFinal(t, pathA[0],
			flipped(tlvStream(t, map[uint64][]byte{
				onionmsg.EncryptedDataType:   ctA,
				onionmsg.ReleaseHeldHTLCType: {0},
			}), 0)), release.OutcomeUndecodable},
		{"unknown even TLV below 64", withFinal(t, pathA[0],
			tlvStream(t, map[uint64][]byte{
				onionmsg.EncryptedDataType:   ctA,
				6:                            {},
				onionmsg.ReleaseHeldHTLCType: {0},
			})), release.OutcomeUndecodable},
		{"release with an unknown even TLV", onion(t, pathA[0],
			map[uint64][]byte{
				onionmsg.ReleaseHeldHTLCType: {0}, 76: {0},
			}), release.OutcomeUnknownEven},
		{"oversized release value", onion(t, pathA[1],
			map[uint64][]byte{
				onionmsg.ReleaseHeldHTLCType: bigOdd[:1000],
			}), release.OutcomeBadValue},
		{"release value 01", onion(t, pathB[0], map[uint64][]byte{
			onionmsg.ReleaseHeldHTLCType: {1},
		}), release.OutcomeBadValue},
		{"held_htlc_available instead", onion(t, pathB[1],
			map[uint64][]byte{
				onionmsg.HeldHTLCAvailableType: {0},
			}), release.OutcomeNoRelease},
		{"path continues past holdd", onion(t, blinded(t,
			forwardHop(lndKey, holddKey), forwardHop(holddKey, pKey),
			finalHop(pKey, forgedID)), releaseMsg),
			release.OutcomeNotForUs},
		{"final hop for another node", onion(t, blinded(t,
			forwardHop(lndKey, holddKey),
			finalHop(stranger.PubKey(), forgedID)), releaseMsg),
			release.OutcomeUndecodable},
	}

	lLog := markLog(t, net.L.logPath)
	want := make(map[string]uint64)
	lDrops := 0
	for _, c := range cases {
		sendMsg(t, net, net.P, c.msg)
		if c.outcome == "" {
			lDrops++
			lLog.waitCount(t, lDrops, "OMSG: Failed to")
			continue
		}
		want[c.outcome]++
		waitReleaseDelta(t, net, info.Releases, want)
	}
	require.Len(t, lLog.lines(t, "Failed to forward onion message",
		lndPeerNotConnected), 1)

	for _, h := range []*heldPayment{a, b} {
		require.Equal(t, "held", getHeld(t, net, h.htlc.Incoming).State)
		require.Equal(t, lnrpc.Payment_IN_FLIGHT, h.payment.Status())
	}

	// The burst. Each template is one of the bogus kinds above that
	// reaches holdd; lnd does not replay-protect onion messages, so a
	// template can be sent many times.
	templates := []hostileMsg{
		{"forged", onion(t, toHoldd(forgedID), releaseMsg),
			release.OutcomeForged},
		{"forged 2", onion(t, toHoldd(forgedID), releaseMsg),
			release.OutcomeForged},
		{"truncated path_id", onion(t, toHoldd(forgedID[:40]),
			releaseMsg), release.OutcomeMalformed},
		{"flipped", withFinal(t, pathA[0], tlvStream(t,
			map[uint64][]byte{
				onionmsg.EncryptedDataType:   flipped(ctA, 3),
				onionmsg.ReleaseHeldHTLCType: {0},
			})), release.OutcomeUndecodable},
		{"unknown even", onion(t, pathA[1], map[uint64][]byte{
			onionmsg.ReleaseHeldHTLCType: {0}, 100: {},
		}), release.OutcomeUnknownEven},
		{"bad value", onion(t, pathB[0], map[uint64][]byte{
			onionmsg.ReleaseHeldHTLCType: {2},
		}), release.OutcomeBadValue},
		{"no release", onion(t, pathB[1], map[uint64][]byte{
			onionmsg.HeldHTLCAvailableType: {0},
		}), release.OutcomeNoRelease},
		{"not for us", onion(t, blinded(t,
			forwardHop(lndKey, holddKey), forwardHop(holddKey, pKey),
			finalHop(pKey, forgedID)), releaseMsg),
			release.OutcomeNotForUs},
	}
	big := hostileMsg{"forged oversized", onion(t, toHoldd(forgedID),
		map[uint64][]byte{onionmsg.ReleaseHeldHTLCType: {0}, 75: bigOdd}),
		release.OutcomeForged}

	const (
		total = 10_000
		peers = 10

		// perPeerRate keeps each peer under lnd's default per-peer
		// limit (512 kbit/s, ~45 messages of 1.4 kB a second) and
		// all of them under the global one (5120 kbit/s).
		perPeerRate = 35

		// window bounds how far the senders run ahead of what holdd
		// has counted, so that lnd's per-peer onion mailboxes (50,
		// random early drop from 40) never fill while holdd is
		// slower for a moment.
		window = 150

		// bigEvery puts a 32 kB onion among the small ones now and
		// then.
		bigEvery = 500
	)
	links := make([]*peerlink.Link, peers)
	for i := range links {
		links[i] = testPeer(t, net)
	}
	for _, l := range links {
		err := waitFor(ctx, DefaultTimeout, "test peer connected",
			func(context.Context) (bool, error) {
				return l.State() == peerlink.StateConnected, nil
			})
		require.NoError(t, err)
	}

	// Every template goes out total/len(templates) times, plus the big
	// ones; the expected counts follow from the schedule alone.
	schedule := make([]hostileMsg, 0, total)
	for i := range total {
		if i%bigEvery == bigEvery-1 {
			schedule = append(schedule, big)
			continue
		}
		schedule = append(schedule, templates[i%len(templates)])
	}
	wantBurst := make(map[string]uint64)
	for _, m := range schedule {
		wantBurst[m.outcome]++
	}

	client, err := net.HolddClient()
	require.NoError(t, err)
	before := holddInfo(t, net).Releases
	lBurst := markLog(t, net.L.logPath)
	holddPrefix := fmt.Sprintf("next_node_id=%x", info.NodeKey[:6])

	var (
		progress = make(chan uint64, 1)
		stats    burstStats
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		start := time.Now()
		base := releaseTotal(before)
		counted := func() (uint64, error) {
			info, err := client.GetInfo(ctx,
				&holdrpc.GetInfoRequest{})
			if err != nil {
				return 0, err
			}
			return releaseTotal(info.Releases) - base, nil
		}
		var sent, seen uint64
		tick := time.NewTicker(time.Second / perPeerRate)
		defer tick.Stop()
		lastMove := time.Now()
		for sent < total {
			<-tick.C
			// Stay within the window; the real release and the
			// payments of the main goroutine add a few counts
			// of their own, which only loosen it.
			for sent >= seen+window {
				n, err := counted()
				if err != nil {
					stats.err = err
					return
				}
				if n != seen {
					seen, lastMove = n, time.Now()
				} else if time.Since(lastMove) > 20*time.Second {
					stats.err = fmt.Errorf("holdd stopped "+
						"counting at %d of %d sent", seen,
						sent)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, l := range links {
				if sent == total {
					break
				}
				err := l.Send(ctx, schedule[sent].msg)
				if err != nil {
					stats.err = fmt.Errorf("send %d: %w", sent,
						err)
					return
				}
				sent++
			}
			select {
			case <-progress:
			default:
			}
			progress <- sent
		}
		stats.sent, stats.elapsed = sent, time.Since(start)
	}()
	waitSent := func(n uint64) {
		for {
			select {
			case s := <-progress:
				if s >= n {
					return
				}
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}

	// During the burst: a plain payment goes through, A's real release
	// is applied, and a new HTLC is held.
	waitSent(total / 5)
	plain, err := net.P.AddInvoice(ctx, 10_000, "during the burst")
	require.NoError(t, err)
	plainPay, err := net.S.SendPayment(ctx, plain.PaymentRequest, PayOpts{})
	require.NoError(t, err)
	defer plainPay.Close()
	_, err = plainPay.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	sendOverPath(t, net.P, pathA[1], releaseMsg)
	requireResumed(t, net, a, "onion")
	c := holdOne(t, net, 64_000, 0)
	select {
	case <-done:
		t.Logf("the burst ended before the payments were done")
	default:
	}

	<-done
	require.NoError(t, stats.err)
	require.Equal(t, uint64(total), stats.sent)
	wantBurst["matched"]++ // A's real release
	waitReleaseDelta(t, net, before, wantBurst)
	forwarded := lBurst.count(t, "Forwarding onion message", holddPrefix)
	t.Logf("burst: %d bogus releases sent by %d peers in %v (%.0f/s); "+
		"L forwarded %d to holdd, holdd counted %d", stats.sent, peers,
		stats.elapsed.Round(time.Millisecond),
		float64(stats.sent)/stats.elapsed.Seconds(), forwarded,
		releaseTotal(wantBurst))
	require.Equal(t, total+1, forwarded)
	require.Empty(t, lBurst.lines(t, "OMSG: Failed to"))

	// Nothing bogus released anything; B and C are still held, holdd
	// still runs and its interceptor never dropped.
	info = holddInfo(t, net)
	require.True(t, info.InterceptorConnected)
	require.Equal(t, "connected", info.PeerLinkState)
	for _, h := range []*heldPayment{b, c} {
		require.Equal(t, "held", getHeld(t, net, h.htlc.Incoming).State)
		require.Equal(t, lnrpc.Payment_IN_FLIGHT, h.payment.Status())
	}

	// X's path, minted by holdd itself, has expired.
	counts := holddInfo(t, net).Releases
	sendOverPath(t, net.P, decodePath(t, xPaths.Paths[0]), releaseMsg)
	waitReleaseDelta(t, net, counts,
		map[string]uint64{release.OutcomeExpired: 1})
	require.Equal(t, "failed", getHeld(t, net, x.htlc.Incoming).State)

	// Every outcome is exported as a metric with the same count.
	final := holddInfo(t, net).Releases
	samples, err := scrapeMetrics(ctx, metricsAddr)
	require.NoError(t, err)
	for outcome, n := range final {
		name := fmt.Sprintf("holdd_releases_total{outcome=%q}", outcome)
		require.Equal(t, float64(n), samples[name], name)
	}

	for _, h := range []*heldPayment{b, c} {
		require.Equal(t, "matched", manualRelease(t, net,
			h.htlc.Incoming).Outcome)
		requireResumed(t, net, h, "manual")
	}

	// One holdd process took all of it (two restarts were the test's).
	require.Len(t, hLog.lines(t, "exited:"), 2)
	require.Empty(t, hLog.lines(t, "panic"))
}
