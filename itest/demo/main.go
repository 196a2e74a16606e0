//go:build itest

// Command demo runs one async payment end to end on a private regtest
// network (btcd, lnd S -> L -> P; holdd on L in the lsp and mailbox roles,
// holdd on P in the recipient role) and prints its timeline: the recipient
// is offline when the sender pays, L holds the HTLC, the sender receives
// the release paths and sends held_htlc_available, L's mailbox keeps it,
// the recipient comes online, its holdd releases the HTLC, and the payment
// settles.
//
// It runs with `make demo`, which first builds (or reuses) the pinned lnd
// and btcd. Every process it starts is stopped when it ends, on Ctrl-C too.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/asyncsend"
	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/itest"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
)

const (
	// amountSat is what S pays P.
	amountSat = 50_000

	// offlineFor is how long the demo keeps P offline with the HTLC held
	// before bringing it back.
	offlineFor = 3 * time.Second

	// stepTimeout bounds every wait for the network.
	stepTimeout = itest.DefaultTimeout

	// setupTimeout bounds the network setup.
	setupTimeout = 10 * time.Minute

	// stillEvery is how often a long setup stage says it is still going.
	stillEvery = 10 * time.Second

	// exitInterrupted is the shell's status for a command ended by
	// SIGINT.
	exitInterrupted = 130
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stopSignals := signal.NotifyContext(context.Background(),
		os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	out := os.Stdout
	fmt.Fprintln(out, "holdd demo: an async payment on regtest, "+
		"S -> L (LSP + holdd) -> P")

	cfg := itest.DefaultConfig()
	cfg.HolddArgs = []string{"--role=lsp,mailbox"}
	for _, bin := range []string{cfg.LndBin, cfg.BtcdBin} {
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(os.Stderr, "demo: %s is missing; run `make "+
				"demo` (or `make deps`) to build the pinned lnd "+
				"and btcd\n", bin)
			return 1
		}
	}

	// NewNetwork makes its directory in os.TempDir(): a fresh TMPDIR
	// lets the demo watch that directory's logs appear, and remove
	// everything afterwards.
	parent, err := os.MkdirTemp("", "holdd-demo-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	if err := os.Setenv("TMPDIR", parent); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}

	setup := newStages(out)
	stopWatch := itest.WatchSetup(parent, setup.begin)
	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	net, err := itest.NewNetwork(setupCtx, cfg)
	cancelSetup()
	stopWatch()
	setup.end()

	// failed keeps the logs for a look; an interrupt is no failure.
	failed := false
	defer func() { shutdown(out, net, parent, failed) }()
	if err == nil {
		err = demo(ctx, out, net)
	}
	switch {
	case err == nil:
		return 0

	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "\ninterrupted")
		return exitInterrupted

	default:
		failed = true
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		if net != nil {
			net.DumpLogs(os.Stderr, 30)
		}
		return 1
	}
}

// shutdown stops every process (net may be nil if setup failed early);
// the data directory goes too unless something failed or HOLDD_DEMO_KEEP
// is set.
func shutdown(w io.Writer, net *itest.Network, parent string, failed bool) {
	// A second Ctrl-C during shutdown ends the demo at once: the
	// children die with it (the harness starts them with Pdeathsig).
	signal.Reset(os.Interrupt, syscall.SIGTERM)

	if net != nil {
		start := time.Now()
		fmt.Fprint(w, "\nstopping holdd, lnd S, L, P and btcd ... ")
		if err := net.Close(); err != nil {
			fmt.Fprintf(w, "with errors: %v\n", err)
			failed = true
		} else {
			fmt.Fprintf(w, "done in %.1fs\n",
				time.Since(start).Seconds())
		}
	}
	if failed || os.Getenv("HOLDD_DEMO_KEEP") != "" {
		fmt.Fprintf(w, "data and logs kept in %s\n", parent)
		return
	}
	if err := os.RemoveAll(parent); err != nil {
		fmt.Fprintf(w, "cannot remove %s: %v\n", parent, err)
	}
}

// stages prints the setup stages as they begin, and a reminder when one
// runs long.
type stages struct {
	w     io.Writer
	start time.Time

	mu    sync.Mutex
	since time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

func newStages(w io.Writer) *stages {
	now := time.Now()
	s := &stages{w: w, start: now, since: now, done: make(chan struct{})}
	s.wg.Add(1)
	go s.remind()
	return s
}

func (s *stages) begin(stage string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	now := time.Now()
	s.since = now
	fmt.Fprintf(s.w, "[setup %5.1fs] %s\n", now.Sub(s.start).Seconds(),
		stage)
}

func (s *stages) remind() {
	defer s.wg.Done()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	last := s.start
	for {
		select {
		case <-s.done:
			return
		case now := <-ticker.C:
			s.mu.Lock()
			quiet := now.Sub(s.since)
			if now.Sub(last) >= stillEvery && quiet >= stillEvery {
				fmt.Fprintf(s.w, "[setup %5.1fs]   ... still "+
					"working (%.0fs since the last step)\n",
					now.Sub(s.start).Seconds(),
					quiet.Seconds())
				last = now
			}
			s.mu.Unlock()
		}
	}
}

func (s *stages) end() {
	close(s.done)
	s.wg.Wait()
}

// timeline prints the payment's steps with the time since it started.
type timeline struct {
	w     io.Writer
	start time.Time
}

func (t *timeline) log(format string, args ...any) {
	fmt.Fprintf(t.w, "[%6.1fs] %s\n", time.Since(t.start).Seconds(),
		fmt.Sprintf(format, args...))
}

// holdEvents collects holdd's hold events for one payment hash.
type holdEvents struct {
	ch   chan *holdrpc.HoldEvent
	errc chan error
}

func subscribeHoldEvents(ctx context.Context, client holdrpc.HoldClient,
	hash []byte) (*holdEvents, error) {

	stream, err := client.SubscribeHoldEvents(ctx,
		&holdrpc.SubscribeHoldEventsRequest{})
	if err != nil {
		return nil, fmt.Errorf("holdd SubscribeHoldEvents: %w", err)
	}
	e := &holdEvents{
		ch:   make(chan *holdrpc.HoldEvent, 16),
		errc: make(chan error, 1),
	}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				e.errc <- err
				return
			}
			if !bytes.Equal(ev.Htlc.GetPaymentHash(), hash) {
				continue
			}
			select {
			case e.ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return e, nil
}

// next waits for the event of kind, skipping others.
func (e *holdEvents) next(ctx context.Context,
	kind string) (*holdrpc.HoldEvent, error) {

	timeout := time.After(stepTimeout)
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == kind {
				return ev, nil
			}
			if ev.Kind == "failed" {
				return nil, fmt.Errorf("holdd failed the HTLC "+
					"back (%s) while waiting for %q",
					ev.Htlc.GetFailReason(), kind)
			}
		case err := <-e.errc:
			return nil, fmt.Errorf("hold event stream: %w", err)
		case <-timeout:
			return nil, fmt.Errorf("no %q hold event after %v", kind,
				stepTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// scid formats a short channel id the way explorers do.
func scid(id uint64) string {
	s := lnwire.NewShortChanIDFromInt(id)
	return fmt.Sprintf("%dx%dx%d", s.BlockHeight, s.TxIndex, s.TxPosition)
}

// sats formats an amount with thousands separators.
func sats(v int64) string {
	s := fmt.Sprint(v)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// demo runs the async payment on a network that is up, with the three
// roles and no hand-built message: S pays through asyncsend (what holdcli
// payasync runs), L's holdd holds and keeps P's messages in its mailbox,
// P's holdd answers held_htlc_available when P is back.
func demo(ctx context.Context, w io.Writer, net *itest.Network) error {
	fmt.Fprintf(w, "\n")
	tl := &timeline{w: w, start: time.Now()}
	tl.log("network up (btcd + 3 lnd + holdd on L) in %.1fs",
		net.SetupDuration.Seconds())

	client, err := net.HolddClient()
	if err != nil {
		return err
	}
	info, err := client.GetInfo(ctx, &holdrpc.GetInfoRequest{})
	if err != nil {
		return fmt.Errorf("holdd GetInfo: %w", err)
	}
	tl.log("holdd %s on L: roles %s, interceptor connected=%v, %s "+
		"transport %s, height %d", info.Version,
		strings.Join(info.Roles, "+"), info.InterceptorConnected,
		info.Transport, info.PeerLinkState, info.BlockHeight)

	mailboxFlag := "--recipient.mailbox=" + net.L.PubKeyHex
	p, err := net.StartRecipientHoldd(ctx, mailboxFlag)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "P's holdd registered with L's mailbox",
		func() (bool, error) {
			info, err := p.Client.GetInfo(ctx, &holdrpc.GetInfoRequest{})
			return err == nil && info.MailboxRegistered, err
		}); err != nil {
		return err
	}
	tl.log("holdd on P (recipient role) registered with L's mailbox")
	paths, err := p.Client.AddReceivePaths(ctx,
		&holdrpc.AddReceivePathsRequest{Count: 2})
	if err != nil {
		return err
	}
	recipientPaths := make([]*onionmsg.BlindedPath, 0, len(paths.Paths))
	for _, rp := range paths.Paths {
		path, err := onionmsg.DecodeBlindedPath(bytes.NewReader(rp.Path))
		if err != nil {
			return err
		}
		recipientPaths = append(recipientPaths, path)
	}
	tl.log("P publishes %d receive paths [L -> L's holdd (mailbox) -> P "+
		"-> P's holdd], %d hops each", len(recipientPaths),
		paths.Paths[0].Hops)

	inv, err := net.P.AddInvoice(ctx, amountSat, "holdd demo")
	if err != nil {
		return err
	}
	tl.log("P creates an invoice for %s sat (hash %x...)",
		sats(amountSat), inv.RHash[:8])

	// The recipient of an async payment is offline when it is paid.
	if err := net.StopRecipientHoldd(); err != nil {
		return err
	}
	if err := net.P.Stop(); err != nil {
		return fmt.Errorf("stop lnd P: %w", err)
	}
	tl.log("recipient P goes offline (its lnd and holdd stopped)")

	events, err := subscribeHoldEvents(ctx, client, inv.RHash)
	if err != nil {
		return err
	}
	payer, err := asyncsend.New(asyncsend.Config{
		Messages: net.S.Lightning,
		Router:   net.S.Router,
		LSP:      net.S.Lightning,
		NewMessenger: asyncsend.OnionMessengers(onionsend.Config{
			Lightning: net.S.Lightning,
			Self:      mustKey(net.S.PubKey),
			Native:    true,
		}),
	})
	if err != nil {
		return err
	}
	type payResult struct {
		res *asyncsend.Result
		err error
	}
	done := make(chan payResult, 1)
	go func() {
		res, err := payer.Pay(ctx, &asyncsend.Request{
			PaymentRequest: inv.PaymentRequest,
			RecipientPaths: recipientPaths,
			TimeoutSeconds: 120,
			FeeLimitSat:    1_000,
		}, func(pr asyncsend.Progress) { narrate(tl, pr) })
		done <- payResult{res, err}
	}()
	tl.log("S pays P %s sat with hold_htlc (TLV %d on the HTLC to L)",
		sats(amountSat), itest.HoldHTLCType)

	held, err := events.next(ctx, "held")
	if err != nil {
		return err
	}
	heldAt := time.Now()
	h := held.Htlc
	tl.log("HTLC held at L (chan %s htlc %d), failback at height %d, "+
		"%d blocks away", scid(h.Incoming.ChanId), h.Incoming.HtlcId,
		h.FailbackHeight, h.FailbackHeight-int32(info.BlockHeight))

	if err := waitFor(ctx, "L's mailbox to keep S's messages for P",
		func() (bool, error) {
			info, err := client.GetInfo(ctx, &holdrpc.GetInfoRequest{})
			return err == nil && info.Mailbox != nil &&
				info.Mailbox.StoredMessages == 2, err
		}); err != nil {
		return err
	}
	tl.log("L's mailbox keeps both messages for P (it sees only " +
		"blinded onions)")
	time.Sleep(offlineFor)
	tl.log("payment still in flight after %v: L holds it, nothing "+
		"fails while P is away", offlineFor)

	if err := net.P.Start(ctx); err != nil {
		return fmt.Errorf("start lnd P: %w", err)
	}
	backAt := time.Now()
	tl.log("recipient P comes online (lnd P up)")
	if _, err := net.StartRecipientHoldd(ctx, mailboxFlag); err != nil {
		return err
	}
	tl.log("holdd on P reported ready %dms after P's lnd started: it "+
		"registered again, the mailbox delivered, P's holdd answered "+
		"release_held_htlc", time.Since(backAt).Milliseconds())

	released, err := events.next(ctx, "released")
	if err != nil {
		return err
	}
	if _, err := events.next(ctx, "resumed"); err != nil {
		return err
	}
	heldFor := time.Since(heldAt)
	tl.log("L resumes the HTLC (released by %s, held %.1fs)",
		released.Htlc.ReleaseSource, heldFor.Seconds())

	var pr payResult
	select {
	case pr = <-done:
	case <-time.After(stepTimeout):
		return errors.New("payment did not end")
	}
	if pr.err != nil {
		return pr.err
	}
	if !pr.res.Succeeded() {
		return fmt.Errorf("payment %v", pr.res.Status)
	}
	settled, err := net.P.Lightning.LookupInvoice(ctx,
		&lnrpc.PaymentHash{RHash: inv.RHash})
	if err != nil {
		return err
	}
	if settled.State != lnrpc.Invoice_SETTLED {
		return fmt.Errorf("P's invoice is %v", settled.State)
	}
	tl.log("P's invoice SETTLED: %s sat received", sats(settled.AmtPaidSat))
	tl.log("done: P was paid although offline when S paid; L held the "+
		"HTLC %.1fs; P back to payment settled in %dms",
		heldFor.Seconds(), time.Since(backAt).Milliseconds())
	return net.StopRecipientHoldd()
}

// narrate prints the sender's progress.
func narrate(tl *timeline, pr asyncsend.Progress) {
	switch pr.Stage {
	case asyncsend.StageHeld:
		tl.log("S receives %d release paths from L (custom message "+
			"%d)", pr.Held.Paths, release.PathDeliveryMsgType)
	case asyncsend.StageMessageSent:
		tl.log("S sends held_htlc_available over P's path %d, reply "+
			"path = release path %d", pr.Message.RecipientPath+1,
			pr.Message.ReleasePath+1)
	case asyncsend.StageMessageFailed:
		tl.log("S could not send held_htlc_available over path %d: %v",
			pr.Message.RecipientPath+1, pr.Message.Err)
	case asyncsend.StageSucceeded:
		tl.log("S sees the payment SUCCEEDED, preimage %x..., fee %s "+
			"msat", pr.Preimage[:8], sats(pr.FeeMsat))
	case asyncsend.StageFailed:
		tl.log("S sees the payment FAILED: %v", pr.FailureReason)
	}
}

// waitFor polls cond every 100ms until it holds or stepTimeout passes.
func waitFor(ctx context.Context, what string,
	cond func() (bool, error)) error {

	deadline := time.Now().Add(stepTimeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out waiting for %s (last error: %v)", what,
		last)
}

func mustKey(b []byte) *btcec.PublicKey {
	k, err := btcec.ParsePubKey(b)
	if err != nil {
		panic(err)
	}
	return k
}
