//go:build itest

package itest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/stretchr/testify/require"
)

// The mailbox tests run the offline flow: P's lnd is down when S pays, so
// S's held_htlc_available can only reach P later. L's holdd runs the lsp
// and mailbox roles; P's holdd registered with L's mailbox, so P's receive
// paths are [L's lnd -> L's holdd (mailbox) -> P's lnd -> P's holdd].

// startMailboxLSP restarts L's holdd with the mailbox role for one test,
// and restores the default roles after it.
func startMailboxLSP(t *testing.T, net *Network, args ...string) {
	t.Helper()
	require.NoError(t, net.RestartHoldd(t.Context(),
		append([]string{"--role=lsp,mailbox"}, args...)...))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			2*DefaultTimeout)
		defer cancel()
		require.NoError(t, net.RestartHoldd(ctx))
	})
}

// startMailboxRecipient starts P's holdd registered with L's mailbox and
// waits until the mailbox accepted it.
func startMailboxRecipient(t *testing.T, net *Network) *Holdd {
	t.Helper()
	p := startRecipient(t, net, "--recipient.mailbox="+net.L.PubKeyHex)
	waitMailboxRegistered(t, p, net)
	return p
}

func waitMailboxRegistered(t *testing.T, p *Holdd, net *Network) {
	t.Helper()
	require.Eventually(t, func() bool {
		info := p.info(t)
		return info.MailboxRegistered &&
			string(info.MailboxLsp) == string(net.L.PubKey)
	}, DefaultTimeout, 100*time.Millisecond)
}

// mailboxStats returns L holdd's mailbox numbers.
func mailboxStats(t *testing.T, net *Network) *holdrpc.MailboxStats {
	t.Helper()
	st := holddInfo(t, net).Mailbox
	require.NotNil(t, st, "L's holdd runs no mailbox")
	return st
}

// waitMailbox waits until L's mailbox stats satisfy ok.
func waitMailbox(t *testing.T, net *Network, what string,
	ok func(*holdrpc.MailboxStats) bool) *holdrpc.MailboxStats {

	t.Helper()
	var st *holdrpc.MailboxStats
	err := waitFor(t.Context(), DefaultTimeout, "mailbox: "+what,
		func(context.Context) (bool, error) {
			st = mailboxStats(t, net)
			if ok(st) {
				return true, nil
			}
			return false, fmt.Errorf("%+v", st)
		})
	require.NoError(t, err)
	return st
}

// stopP takes P's holdd and lnd offline and waits until L sees P gone. It
// returns the function that starts P's lnd again; if the test does not call
// it, the cleanup does, so the next test finds the network as it was.
func stopP(t *testing.T, net *Network) func(context.Context) error {
	t.Helper()
	require.NoError(t, net.StopRecipientHoldd())
	require.NoError(t, net.P.Stop())
	back := false
	startP := func(ctx context.Context) error {
		back = true
		return net.P.Start(ctx)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			2*DefaultTimeout)
		defer cancel()
		if !back {
			if err := startP(ctx); err != nil {
				t.Errorf("restart P: %v", err)
				return
			}
		}
		if err := net.WaitChannelsActive(ctx); err != nil {
			t.Errorf("channels after P's restart: %v", err)
		}
	})
	require.Eventually(t, func() bool {
		has, err := net.L.HasPeer(t.Context(), net.P.PubKeyHex)
		return err == nil && !has
	}, DefaultTimeout, 100*time.Millisecond)
	return startP
}

// TestMailboxOfflineFlow: P's lnd is offline when S pays. The HTLC is held
// at L, S's held_htlc_available waits in L's mailbox, S goes offline, P
// comes back, the mailbox delivers, P's holdd releases. lnd cannot forward
// an HTLC whose sender's link is down, so L keeps it released until S is
// back; then it resumes, P is paid, and S sees SUCCEEDED.
func TestMailboxOfflineFlow(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	startMailboxLSP(t, net)
	p := startMailboxRecipient(t, net)
	// [L's lnd -> L's holdd -> P's lnd -> P's holdd].
	paths := mintReceivePaths(t, net, p, 2, net.L.PubKey, 4)
	for _, path := range paths {
		require.Equal(t, net.L.PubKey, path.MailboxLsp)
	}
	before := mailboxStats(t, net)

	const amtSat = 15_000
	inv, err := net.P.AddInvoice(ctx, amtSat, t.Name())
	require.NoError(t, err)
	startP := stopP(t, net)

	pay := startPayAsync(t, net, inv.PaymentRequest, paths)
	held := waitHeld(t, net, inv.RHash, "held")
	require.Len(t, pay.waitStage(t, "held_htlc_available_sent", 2), 2)
	// S reaches L directly now: L is both S's LSP and the paths'
	// introduction node.
	for _, m := range pay.stages("held_htlc_available_sent") {
		require.Equal(t, net.L.PubKeyHex, m["intro"])
		require.Equal(t, false, m["via_lsp"])
	}
	st := waitMailbox(t, net, "two messages kept for P",
		func(s *holdrpc.MailboxStats) bool {
			return s.Stored == before.Stored+2 && s.StoredMessages == 2
		})
	require.Zero(t, st.Delivered-before.Delivered)

	// The mailbox lists P with its two messages, and nothing about the
	// payment: it only ever saw blinded onions.
	var list holdrpc.ListMailboxResponse
	newHoldcli(t, net).decode(t, &list, "listmailbox")
	require.Len(t, list.Recipients, 1)
	require.Equal(t, net.P.PubKey, list.Recipients[0].Peer)
	require.Equal(t, int64(2), list.Recipients[0].StoredMessages)
	require.False(t, list.Recipients[0].Ready)

	// S goes offline: from here nothing depends on the sender.
	require.NoError(t, net.S.Stop())
	<-pay.done
	sBack := false
	t.Cleanup(func() {
		if sBack {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(),
			2*DefaultTimeout)
		defer cancel()
		if err := net.S.Start(ctx); err != nil {
			t.Errorf("restart S: %v", err)
		}
	})
	require.Equal(t, "held", waitHeld(t, net, inv.RHash, "held").State)

	// P comes back: its lnd, then its holdd, which registers again; the
	// mailbox delivers, P's holdd answers, L resumes.
	require.NoError(t, startP(ctx))
	p, err = net.StartRecipientHoldd(ctx,
		"--recipient.mailbox="+net.L.PubKeyHex)
	require.NoError(t, err)
	waitMailboxRegistered(t, p, net)

	waitMailbox(t, net, "both messages delivered",
		func(s *holdrpc.MailboxStats) bool {
			return s.Delivered == before.Delivered+2 &&
				s.StoredMessages == 0
		})
	require.Eventually(t, func() bool {
		return p.info(t).HeldHtlcAvailable["replied"] == 2
	}, DefaultTimeout, 50*time.Millisecond)

	// L has the release, but lnd v0.21 fails a forward whose incoming
	// link is down (it cannot check that link's dust exposure), so holdd
	// keeps the HTLC released until S is back rather than lose it.
	rec := waitHeld(t, net, inv.RHash, "released")
	require.Equal(t, held.Incoming, rec.Incoming)
	ch, err := net.L.ChannelByID(ctx, held.Incoming.ChanId)
	require.NoError(t, err)
	require.False(t, ch.Active)
	require.Len(t, ch.PendingHtlcs, 1)
	open, err := net.P.Lightning.LookupInvoice(ctx,
		&lnrpc.PaymentHash{RHash: inv.RHash})
	require.NoError(t, err)
	require.Equal(t, lnrpc.Invoice_OPEN, open.State)

	// S comes back: L resumes at once, P is paid, S sees SUCCEEDED.
	require.NoError(t, net.S.Start(ctx))
	sBack = true
	rec = waitHeld(t, net, inv.RHash, "resumed")
	require.Equal(t, "onion", rec.ReleaseSource)
	settled := waitSettled(t, net, inv.RHash)
	require.Equal(t, int64(amtSat*1000), settled.AmtPaidMsat)
	require.NoError(t, net.WaitChannelsActive(ctx))
	require.NoError(t, waitFor(ctx, DefaultTimeout, "S's payment SUCCEEDED",
		func(ctx context.Context) (bool, error) {
			resp, err := net.S.Lightning.ListPayments(ctx,
				&lnrpc.ListPaymentsRequest{IncludeIncomplete: true})
			if err != nil {
				return false, err
			}
			for _, pm := range resp.Payments {
				if pm.PaymentHash != fmt.Sprintf("%x", inv.RHash) {
					continue
				}
				if pm.Status == lnrpc.Payment_SUCCEEDED {
					require.Equal(t, int64(amtSat*1000),
						pm.ValueMsat)
					return true, nil
				}
				return false, fmt.Errorf("status %s", pm.Status)
			}
			return false, fmt.Errorf("no payment")
		}))
}

// TestMailboxRecipientNeverReturns: P stays offline. The HTLC fails back
// at L's fail-back height, before lnd's auto-fail, and the mailbox drops
// the stored messages when they expire.
func TestMailboxRecipientNeverReturns(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	startMailboxLSP(t, net, "--mailbox.maxage=20s")
	p := startMailboxRecipient(t, net)
	paths := mintReceivePaths(t, net, p, 2, net.L.PubKey, 4)
	before := mailboxStats(t, net)

	inv, err := net.P.AddInvoice(ctx, 11_000, t.Name())
	require.NoError(t, err)
	stopP(t, net)

	pay := startPayAsync(t, net, inv.PaymentRequest, paths)
	h := waitHeld(t, net, inv.RHash, "held")
	pay.waitStage(t, "held_htlc_available_sent", 2)
	waitMailbox(t, net, "two messages kept for P",
		func(s *holdrpc.MailboxStats) bool {
			return s.StoredMessages == 2
		})

	// The messages expire while the HTLC is still held.
	st := waitMailbox(t, net, "both messages expired",
		func(s *holdrpc.MailboxStats) bool {
			return s.StoredMessages == 0 &&
				s.Dropped["expired"] == before.Dropped["expired"]+2
		})
	require.Equal(t, before.Delivered, st.Delivered)
	require.Equal(t, "held", waitHeld(t, net, inv.RHash, "held").State)

	// Then the HTLC fails back cleanly at its fail-back height.
	height, err := net.BlockHeight()
	require.NoError(t, err)
	height, err = net.MineBlocks(ctx, uint32(h.FailbackHeight-height))
	require.NoError(t, err)
	require.Equal(t, h.FailbackHeight, height)
	require.Less(t, height, h.AutoFailHeight)
	rec := waitHeld(t, net, inv.RHash, "failed")
	require.Equal(t, "expiry", rec.FailReason)
	require.Error(t, pay.wait(t, DefaultTimeout))
	require.Len(t, pay.stages("failed"), 1, pay.output())

	// P is still offline: only S's channel can be active.
	requireChannelsIdle(t, net, net.ChanSL)
}
