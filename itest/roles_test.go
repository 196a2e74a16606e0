//go:build itest

package itest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/stretchr/testify/require"
)

// The role tests run the whole async flow with no hand-built message:
// S pays with `holdcli payasync` against its own lnd, L's holdd (lsp role)
// holds and delivers release paths to S, S sends held_htlc_available over
// P's receive paths, P's holdd (recipient role) answers release_held_htlc
// along S's reply path, and L's holdd resumes the HTLC.

// startRecipient starts holdd in the recipient role on P for one test.
func startRecipient(t *testing.T, net *Network, args ...string) *Holdd {
	t.Helper()
	h, err := net.StartRecipientHoldd(t.Context(), args...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, net.StopRecipientHoldd()) })
	return h
}

// cliFor returns a holdcli pointed at holdd h.
func cliFor(t *testing.T, net *Network, h *Holdd) *holdcli {
	t.Helper()
	bin, err := buildHoldcli(t.Context(), net)
	require.NoError(t, err)
	return &holdcli{bin: bin, rpcAddr: h.RPCAddr, holdDir: h.Dir}
}

// addReceivePaths mints receive paths on P's holdd through holdcli and
// returns them as holdcli prints them. They must be
// [P's lnd: next = P's holdd] -> [P's holdd: path_id], or [P's lnd: path_id]
// when P's lnd is older than 0.21 and P's holdd reads P's final hop.
func addReceivePaths(t *testing.T, net *Network, h *Holdd,
	count int) []*holdrpc.ReceivePath {

	t.Helper()
	hops := uint32(2)
	if net.RecipientTransport() == TransportCustomMsg {
		hops = 1
	}
	return mintReceivePaths(t, net, h, count, net.P.PubKey, hops)
}

// mintReceivePaths mints receive paths and checks their introduction node
// and length.
func mintReceivePaths(t *testing.T, net *Network, h *Holdd, count int,
	intro []byte, hops uint32) []*holdrpc.ReceivePath {

	t.Helper()
	var resp holdrpc.ReceivePathsResponse
	cliFor(t, net, h).decode(t, &resp, "addreceivepaths",
		fmt.Sprintf("--count=%d", count))
	require.Len(t, resp.Paths, count)
	for _, p := range resp.Paths {
		require.Equal(t, intro, p.IntroductionNode)
		require.Equal(t, hops, p.Hops)
	}
	return resp.Paths
}

// progressLine is one JSON line of holdcli payasync.
type progressLine map[string]any

func (p progressLine) stage() string {
	s, _ := p["stage"].(string)
	return s
}

// asyncPayment is a running `holdcli payasync`.
type asyncPayment struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu     sync.Mutex
	lines  []progressLine
	stdout bytes.Buffer
	stderr bytes.Buffer
}

// startPayAsync runs holdcli payasync against S's lnd for payReq over the
// recipient paths.
func startPayAsync(t *testing.T, net *Network, payReq string,
	paths []*holdrpc.ReceivePath, extra ...string) *asyncPayment {

	t.Helper()
	bin, err := buildHoldcli(t.Context(), net)
	require.NoError(t, err)
	args := []string{
		"--network=regtest", "payasync",
		"--lnd.rpcserver=" + net.S.RPCAddr,
		"--lnd.tlscertpath=" + net.S.TLSCertPath,
		"--lnd.macaroonpath=" + net.S.AdminMacPath,
		"--pay_req=" + payReq,
	}
	for _, p := range paths {
		args = append(args, "--recipient_path="+hex.EncodeToString(p.Path))
	}
	args = append(args, extra...)

	ap := &asyncPayment{done: make(chan struct{})}
	ap.cmd = exec.CommandContext(t.Context(), bin, args...)
	ap.cmd.Stderr = &ap.stderr
	out, err := ap.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, ap.cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			ap.mu.Lock()
			ap.stdout.Write(sc.Bytes())
			ap.stdout.WriteByte('\n')
			var line progressLine
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				ap.lines = append(ap.lines, line)
			}
			ap.mu.Unlock()
		}
		ap.err = ap.cmd.Wait()
		close(ap.done)
	}()
	t.Cleanup(func() {
		_ = ap.cmd.Process.Kill()
		<-ap.done
		if t.Failed() {
			fmt.Printf("itest: payasync stdout:\n%s\nstderr:\n%s\n",
				ap.output(), ap.stderr.String())
		}
	})
	return ap
}

func (ap *asyncPayment) output() string {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return ap.stdout.String()
}

// stages returns the progress lines so far with stage.
func (ap *asyncPayment) stages(stage string) []progressLine {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	var out []progressLine
	for _, l := range ap.lines {
		if l.stage() == stage {
			out = append(out, l)
		}
	}
	return out
}

// wait waits for payasync to exit and returns its exit error.
func (ap *asyncPayment) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-ap.done:
		return ap.err
	case <-time.After(timeout):
		t.Fatalf("payasync still running after %v; output:\n%s", timeout,
			ap.output())
		return nil
	}
}

// waitStage waits until payasync reported stage at least n times.
func (ap *asyncPayment) waitStage(t *testing.T, stage string,
	n int) []progressLine {

	t.Helper()
	var got []progressLine
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("payasync to report %d x %s", n, stage),
		func(context.Context) (bool, error) {
			got = ap.stages(stage)
			if len(got) >= n {
				return true, nil
			}
			select {
			case <-ap.done:
				return false, stop(fmt.Errorf("payasync exited: "+
					"%v", ap.err))
			default:
			}
			return false, fmt.Errorf("%d so far", len(got))
		})
	require.NoError(t, err, ap.output())
	return got
}

// holdEvents collects L holdd's hold events from now on.
type holdEvents struct {
	mu     sync.Mutex
	events []*holdrpc.HoldEvent
}

func subscribeHoldEvents(t *testing.T, client holdrpc.HoldClient) *holdEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stream, err := client.SubscribeHoldEvents(ctx,
		&holdrpc.SubscribeHoldEventsRequest{})
	require.NoError(t, err)
	h := &holdEvents{}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
		}
	}()
	return h
}

// kindsFor returns the kinds of the events for payment hash, in order.
func (h *holdEvents) kindsFor(hash []byte) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var kinds []string
	for _, ev := range h.events {
		if bytes.Equal(ev.Htlc.PaymentHash, hash) {
			kinds = append(kinds, ev.Kind)
		}
	}
	return kinds
}

// receiveEvents collects a recipient holdd's events from now on.
type receiveEvents struct {
	mu     sync.Mutex
	events []*holdrpc.ReceiveEvent
}

func subscribeReceiveEvents(t *testing.T, h *Holdd) *receiveEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stream, err := h.Client.SubscribeReceiveEvents(ctx,
		&holdrpc.SubscribeReceiveEventsRequest{})
	require.NoError(t, err)
	r := &receiveEvents{}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *receiveEvents) outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		out = append(out, ev.Outcome)
	}
	return out
}

// waitSettled waits until P's invoice is settled and returns it.
func waitSettled(t *testing.T, net *Network, hash []byte) *lnrpc.Invoice {
	t.Helper()
	var inv *lnrpc.Invoice
	err := waitFor(t.Context(), DefaultTimeout, "P's invoice settled",
		func(ctx context.Context) (bool, error) {
			var err error
			inv, err = net.P.Lightning.LookupInvoice(ctx,
				&lnrpc.PaymentHash{RHash: hash})
			if err != nil {
				return false, err
			}
			if inv.State != lnrpc.Invoice_SETTLED {
				return false, fmt.Errorf("invoice %s", inv.State)
			}
			return true, nil
		})
	require.NoError(t, err)
	return inv
}

// logContains reports whether the log file name in the network's log
// directory contains s.
func logContains(t *testing.T, net *Network, name, s string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(net.LogDir, name))
	require.NoError(t, err)
	return strings.Contains(string(b), s)
}

// TestAsyncRoles runs S -> L -> P with the three roles and checks every
// step where an operator would see it: payasync's progress, L's hold
// events, P's receive events, and both holdds' logs.
func TestAsyncRoles(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	p := startRecipient(t, net)
	// On lnd 0.21 P's holdd reads messages over its peer link; on older
	// lnd through the custom-message API, answering with message 513.
	require.Equal(t, net.RecipientTransport(), p.info(t).Transport)
	require.Equal(t, []string{"recipient"}, p.info(t).Roles)
	paths := addReceivePaths(t, net, p, 2)
	lEvents := subscribeHoldEvents(t, net.Holdd.Client)
	pEvents := subscribeReceiveEvents(t, p)
	before := holddInfo(t, net).Releases

	const amtSat = 21_000
	inv, err := net.P.AddInvoice(ctx, amtSat, t.Name())
	require.NoError(t, err)
	pay := startPayAsync(t, net, inv.PaymentRequest, paths)

	pay.waitStage(t, "held", 1)
	require.NoError(t, pay.wait(t, DefaultTimeout), pay.output())
	sent := pay.stages("held_htlc_available_sent")
	require.Len(t, sent, 2, pay.output())
	for _, m := range sent {
		// S has no channel with P: the message enters at L, which
		// S prepends as an extra hop before P's path.
		require.Equal(t, net.P.PubKeyHex, m["intro"])
		require.Equal(t, net.L.PubKeyHex, m["peer"])
		require.Equal(t, true, m["via_lsp"])
	}
	require.Len(t, pay.stages("succeeded"), 1)
	require.Empty(t, pay.stages("failed"))

	settled := waitSettled(t, net, inv.RHash)
	require.Equal(t, int64(amtSat), settled.AmtPaidSat)
	require.Len(t, settled.Htlcs, 1)

	// L held, was released, resumed: in that order, once each.
	require.Eventually(t, func() bool {
		k := lEvents.kindsFor(inv.RHash)
		return len(k) >= 3
	}, DefaultTimeout, 50*time.Millisecond)
	require.Equal(t, []string{"held", "released", "resumed"},
		lEvents.kindsFor(inv.RHash))
	rec := waitHeld(t, net, inv.RHash, "resumed")
	require.Equal(t, "onion", rec.ReleaseSource)

	// P answered both messages; L matched one and counted the other as
	// a duplicate.
	require.Eventually(t, func() bool {
		return len(pEvents.outcomes()) == 2
	}, DefaultTimeout, 50*time.Millisecond)
	require.Equal(t, []string{"replied", "replied"}, pEvents.outcomes())
	waitReleaseCount(t, net, "matched", before["matched"]+1)
	waitReleaseCount(t, net, "duplicate", before["duplicate"]+1)

	require.True(t, logContains(t, net, "holdd.log",
		fmt.Sprintf("Delivered 2 release paths for %d:%d",
			rec.Incoming.ChanId, rec.Incoming.HtlcId)))
	require.True(t, logContains(t, net, "holdd-recipient.log",
		"sending release_held_htlc"))
	require.True(t, logContains(t, net, "holdd-recipient.log",
		"release_held_htlc sent to peer "+net.L.PubKeyHex))
	require.True(t, logContains(t, net, "holdd.log",
		fmt.Sprintf("release_held_htlc for %d:%d: matched",
			rec.Incoming.ChanId, rec.Incoming.HtlcId)))
}

// TestAsyncRolesReleasedOnce sends two held_htlc_available messages, over
// two receive paths with two release paths as reply paths. P answers both,
// so L gets two release_held_htlc for one HTLC: it must resume the HTLC
// exactly once, and P must be paid exactly the invoice, once.
func TestAsyncRolesReleasedOnce(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	p := startRecipient(t, net)
	paths := addReceivePaths(t, net, p, 2)
	lEvents := subscribeHoldEvents(t, net.Holdd.Client)
	before := holddInfo(t, net).Releases

	const amtSat = 17_000
	inv, err := net.P.AddInvoice(ctx, amtSat, t.Name())
	require.NoError(t, err)
	pay := startPayAsync(t, net, inv.PaymentRequest, paths,
		"--messages=2")
	require.NoError(t, pay.wait(t, DefaultTimeout), pay.output())

	// Two messages, over different receive paths, each carrying a
	// different release path.
	sent := pay.stages("held_htlc_available_sent")
	require.Len(t, sent, 2, pay.output())
	require.NotEqual(t, sent[0]["recipient_path"], sent[1]["recipient_path"])
	require.NotEqual(t, sent[0]["release_path"], sent[1]["release_path"])

	// Both reached P's holdd and both were answered.
	require.Eventually(t, func() bool {
		return p.info(t).HeldHtlcAvailable["replied"] == 2
	}, DefaultTimeout, 50*time.Millisecond)

	// L: one match, one duplicate, nothing else new.
	waitReleaseCount(t, net, "matched", before["matched"]+1)
	waitReleaseCount(t, net, "duplicate", before["duplicate"]+1)
	after := holddInfo(t, net).Releases
	for outcome, n := range after {
		switch outcome {
		case "matched", "duplicate":
		default:
			require.Equal(t, before[outcome], n, outcome)
		}
	}
	require.Equal(t, []string{"held", "released", "resumed"},
		lEvents.kindsFor(inv.RHash))

	// P was paid once, exactly the invoice; S paid once.
	settled := waitSettled(t, net, inv.RHash)
	require.Equal(t, int64(amtSat*1000), settled.AmtPaidMsat)
	require.Len(t, settled.Htlcs, 1)
	payments, err := net.S.Lightning.ListPayments(ctx,
		&lnrpc.ListPaymentsRequest{IncludeIncomplete: true})
	require.NoError(t, err)
	var ours []*lnrpc.Payment
	for _, pm := range payments.Payments {
		if pm.PaymentHash == hex.EncodeToString(inv.RHash) {
			ours = append(ours, pm)
		}
	}
	require.Len(t, ours, 1)
	require.Equal(t, lnrpc.Payment_SUCCEEDED, ours[0].Status)
	require.Equal(t, int64(amtSat*1000), ours[0].ValueMsat)
	require.Len(t, ours[0].Htlcs, 1)
}

// TestAsyncRolesRecipientDown pays while P's holdd is down: S's
// held_htlc_available dies at P's lnd (no peer to forward to), nothing
// releases the HTLC, and L fails it back at its fail-back height, before
// lnd's own auto-fail, with no channel closed.
func TestAsyncRolesRecipientDown(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	p := startRecipient(t, net)
	paths := addReceivePaths(t, net, p, 2)
	require.NoError(t, net.StopRecipientHoldd())

	inv, err := net.P.AddInvoice(ctx, 12_000, t.Name())
	require.NoError(t, err)
	pay := startPayAsync(t, net, inv.PaymentRequest, paths)
	pay.waitStage(t, "held", 1)
	// S's lnd sent both messages; they are lost at P's lnd.
	require.Len(t, pay.waitStage(t, "held_htlc_available_sent", 2), 2)
	h := waitHeld(t, net, inv.RHash, "held")
	require.Less(t, h.FailbackHeight, h.AutoFailHeight)

	height, err := net.BlockHeight()
	require.NoError(t, err)
	height, err = net.MineBlocks(ctx, uint32(h.FailbackHeight-1-height))
	require.NoError(t, err)
	require.Equal(t, h.FailbackHeight-1, height)
	require.Equal(t, "held", waitHeld(t, net, inv.RHash, "held").State)
	select {
	case <-pay.done:
		t.Fatalf("payasync ended while the HTLC is held: %s",
			pay.output())
	default:
	}

	_, err = net.MineBlocks(ctx, 1)
	require.NoError(t, err)
	rec := waitHeld(t, net, inv.RHash, "failed")
	require.Equal(t, "expiry", rec.FailReason)

	// payasync reports the failure and exits non-zero.
	require.Error(t, pay.wait(t, DefaultTimeout))
	require.Len(t, pay.stages("failed"), 1, pay.output())
	require.Empty(t, pay.stages("succeeded"))

	inv2, err := net.P.Lightning.LookupInvoice(ctx,
		&lnrpc.PaymentHash{RHash: inv.RHash})
	require.NoError(t, err)
	require.Equal(t, lnrpc.Invoice_OPEN, inv2.State)
	requireChannelsIdle(t, net, net.ChanSL, net.ChanLP)

	// P's holdd, back up, has nothing to answer: the messages are gone.
	p = startRecipient(t, net)
	require.Zero(t, p.info(t).HeldHtlcAvailable["replied"])
}
