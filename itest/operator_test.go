//go:build itest

package itest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/rpcclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/macaroons"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/macaroon.v2"
)

// The operator tests drive holdd the way an operator does: through the
// holdcli binary (and, where holdcli refuses before dialing, through
// holdrpc), never through holdd's internals. Expected values come from lnd
// (S's route, L's channel state) or from the test's own inputs.

// holdcli runs the holdcli binary against the shared network's holdd.
type holdcli struct {
	bin     string
	rpcAddr string
	holdDir string
}

var (
	holdcliOnce sync.Once
	holdcliBin  string
	holdcliErr  error
)

// buildHoldcli compiles ./cmd/holdcli once per test binary, into the
// network's directory so that it goes away with the network's data.
func buildHoldcli(ctx context.Context, net *Network) (string, error) {
	holdcliOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			holdcliErr = err
			return
		}
		out := filepath.Join(net.BaseDir, "bin", "holdcli")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out,
			"./cmd/holdcli")
		cmd.Dir = root
		if output, err := cmd.CombinedOutput(); err != nil {
			holdcliErr = fmt.Errorf("go build ./cmd/holdcli: %w\n%s",
				err, output)
			return
		}
		holdcliBin = out
	})
	return holdcliBin, holdcliErr
}

// newHoldcli returns a holdcli pointed at the running holdd with the
// connection flags an operator passes: --rpcserver, --holddir, --network.
func newHoldcli(t *testing.T, net *Network) *holdcli {
	t.Helper()
	bin, err := buildHoldcli(t.Context(), net)
	require.NoError(t, err)

	net.holddMtx.Lock()
	h := net.Holdd
	net.holddMtx.Unlock()
	require.NotNil(t, h, "holdd is not running")

	return &holdcli{bin: bin, rpcAddr: h.RPCAddr, holdDir: h.Dir}
}

// cliResult is one holdcli run.
type cliResult struct {
	stdout string
	stderr string

	// err is nil when holdcli exited with status 0.
	err error
}

// run runs holdcli with the connection flags, then the extra global flags
// (e.g. --macaroonpath), then args.
func (c *holdcli) run(ctx context.Context, global []string,
	args ...string) cliResult {

	full := []string{
		"--rpcserver=" + c.rpcAddr,
		"--holddir=" + c.holdDir,
		"--network=regtest",
	}
	full = append(full, global...)
	full = append(full, args...)

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, full...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	return cliResult{stdout: stdout.String(), stderr: stderr.String(),
		err: err}
}

// mustRun runs holdcli with the default (admin) macaroon and requires exit
// status 0.
func (c *holdcli) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	res := c.run(t.Context(), nil, args...)
	require.NoError(t, res.err, "holdcli %s: stderr %s",
		strings.Join(args, " "), res.stderr)
	return res.stdout
}

// strictJSON decodes holdcli's output of a single response: every field
// must be one the message has.
var strictJSON = protojson.UnmarshalOptions{UseHexForBytes: true}

// decode runs a command whose output is one holdrpc message.
func (c *holdcli) decode(t *testing.T, msg proto.Message, args ...string) {
	t.Helper()
	out := c.mustRun(t, args...)
	require.NoError(t, strictJSON.Unmarshal([]byte(out), msg), out)
}

// listedHTLC is one entry of holdcli listheld: the API's fields plus the
// ones holdcli derives.
type listedHTLC struct {
	htlc *holdrpc.HeldHtlc

	AmountSat        uint64 `json:"amount_sat"`
	Age              string `json:"age"`
	BlocksToFailback *int64 `json:"blocks_to_failback"`
	PeerAlias        string `json:"peer_alias"`
}

// parseListHeld decodes holdcli listheld's {"htlcs": [...]}.
func parseListHeld(out string) ([]listedHTLC, error) {
	var raw struct {
		Htlcs []json.RawMessage `json:"htlcs"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("listheld output %q: %w", out, err)
	}

	// The derived fields are not HeldHtlc fields: the proto decoder
	// skips them and encoding/json picks them up.
	lenient := protojson.UnmarshalOptions{
		UseHexForBytes: true, DiscardUnknown: true,
	}
	list := make([]listedHTLC, 0, len(raw.Htlcs))
	for _, rec := range raw.Htlcs {
		l := listedHTLC{htlc: &holdrpc.HeldHtlc{}}
		if err := lenient.Unmarshal(rec, l.htlc); err != nil {
			return nil, fmt.Errorf("listheld entry %s: %w", rec, err)
		}
		if err := json.Unmarshal(rec, &l); err != nil {
			return nil, fmt.Errorf("listheld entry %s: %w", rec, err)
		}
		list = append(list, l)
	}
	return list, nil
}

// listHeld runs holdcli listheld with the admin macaroon and filter flags.
func (c *holdcli) listHeld(t *testing.T, flags ...string) []listedHTLC {
	t.Helper()
	list, err := parseListHeld(c.mustRun(t,
		append([]string{"listheld"}, flags...)...))
	require.NoError(t, err)
	return list
}

// withHash returns the entries for payment hash.
func withHash(list []listedHTLC, hash []byte) []listedHTLC {
	var out []listedHTLC
	for _, l := range list {
		if bytes.Equal(l.htlc.PaymentHash, hash) {
			out = append(out, l)
		}
	}
	return out
}

// keyArg is the chan_id:htlc_id argument holdcli takes.
func keyArg(h *holdrpc.HeldHtlc) string {
	return fmt.Sprintf("%d:%d", h.Incoming.ChanId, h.Incoming.HtlcId)
}

// waitCLIState polls holdcli listheld until the HTLC with hash is listed in
// state, and returns that entry.
func (c *holdcli) waitCLIState(t *testing.T, hash []byte,
	state string) listedHTLC {

	t.Helper()
	var found listedHTLC
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("holdcli listheld to show %x as %s", hash, state),
		func(ctx context.Context) (bool, error) {
			res := c.run(ctx, nil, "listheld")
			if res.err != nil {
				return false, fmt.Errorf("%w: %s", res.err,
					res.stderr)
			}
			list, err := parseListHeld(res.stdout)
			if err != nil {
				return false, stop(err)
			}
			match := withHash(list, hash)
			switch {
			case len(match) == 0:
				return false, errors.New("not listed")
			case len(match) > 1:
				return false, stop(fmt.Errorf("listed %d "+
					"times", len(match)))
			}
			found = match[0]
			if found.htlc.State != state {
				return false, fmt.Errorf("state %s",
					found.htlc.State)
			}
			return true, nil
		})
	require.NoError(t, err)
	return found
}

// cliHeld is an async payment S -> P held at L, as holdcli first listed it.
type cliHeld struct {
	payment *Payment
	invoice *lnrpc.AddInvoiceResponse
	listed  listedHTLC
}

// holdViaCLI pays a fresh invoice of P from S with hold_htlc and waits until
// holdcli lists the HTLC as held. Should the test end with the HTLC still
// held, a cleanup fails it back so the next test finds the network clean.
func holdViaCLI(t *testing.T, net *Network, c *holdcli,
	amtSat int64) *cliHeld {

	t.Helper()
	pay, inv := payWithHold(t, net, amtSat)
	listed := c.waitCLIState(t, inv.RHash, "held")
	t.Cleanup(func() { failIfStillHeld(t, net, listed.htlc.Incoming) })
	return &cliHeld{payment: pay, invoice: inv, listed: listed}
}

// failIfStillHeld fails an HTLC a failed test left held. t.Context is over
// by cleanup time, hence the fresh context.
func failIfStillHeld(t *testing.T, net *Network, key *holdrpc.CircuitKey) {
	ctx, cancel := context.WithTimeout(context.Background(),
		DefaultTimeout)
	defer cancel()
	client, err := net.HolddClient()
	if err != nil {
		return
	}
	rec, err := client.GetHeld(ctx, &holdrpc.GetHeldRequest{Incoming: key})
	if err != nil || (rec.State != "held" && rec.State != "released") {
		return
	}
	t.Logf("cleanup: failing HTLC %d:%d left %s", key.ChanId, key.HtlcId,
		rec.State)
	_, err = client.FailHeld(ctx, &holdrpc.FailHeldRequest{
		Incoming: key, Reason: "itest cleanup",
	})
	if err != nil {
		t.Errorf("cleanup: fail HTLC %d:%d: %v", key.ChanId, key.HtlcId,
			err)
	}
}

// sentRoute returns the route of S's (single) attempt, once S reports it.
func sentRoute(t *testing.T, pay *Payment) *lnrpc.Route {
	t.Helper()
	var route *lnrpc.Route
	err := waitFor(t.Context(), DefaultTimeout, "S to report its attempt",
		func(context.Context) (bool, error) {
			latest := pay.Latest()
			if latest == nil || len(latest.Htlcs) == 0 {
				return false, errors.New("no attempt yet")
			}
			route = latest.Htlcs[0].Route
			return route != nil, nil
		})
	require.NoError(t, err)
	return route
}

// incomingAtL returns the HTLC with hash that L has on its channel from S.
func incomingAtL(t *testing.T, net *Network, hash []byte) *lnrpc.HTLC {
	t.Helper()
	ch, err := net.L.ChannelByID(t.Context(), net.ChanSL)
	require.NoError(t, err)
	for _, h := range ch.PendingHtlcs {
		if h.Incoming && bytes.Equal(h.HashLock, hash) {
			return h
		}
	}
	require.FailNow(t, "L has no incoming HTLC", "hash %x", hash)
	return nil
}

// requireInvoiceState checks the state of P's invoice.
func requireInvoiceState(t *testing.T, net *Network, hash []byte,
	want lnrpc.Invoice_InvoiceState) *lnrpc.Invoice {

	t.Helper()
	inv, err := net.P.Lightning.LookupInvoice(t.Context(),
		&lnrpc.PaymentHash{RHash: hash})
	require.NoError(t, err)
	require.Equal(t, want, inv.State)
	return inv
}

// requirePermissionDenied checks that holdcli reached holdd and holdd
// refused the macaroon.
func requirePermissionDenied(t *testing.T, res cliResult, what string) {
	t.Helper()
	require.Error(t, res.err, what)
	require.Empty(t, res.stdout, what)
	require.Contains(t, res.stderr, "code = PermissionDenied", what)
}

// TestOperatorListAndRelease lists a held HTLC with holdcli, checks every
// field against lnd's own view, and releases it by hand: the payment
// succeeds.
func TestOperatorListAndRelease(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	c := newHoldcli(t, net)

	const amtSat = 50_000
	held := holdViaCLI(t, net, c, amtSat)
	hash := held.invoice.RHash
	route := sentRoute(t, held.payment)
	atL := incomingAtL(t, net, hash)
	height, err := net.BlockHeight()
	require.NoError(t, err)
	require.NoError(t, net.WaitSynced(ctx, height))

	// S's route: hop 0 is L, which forwards the invoice amount over
	// L->P with the hop's expiry; S sends the total with L's fee.
	require.Len(t, route.Hops, 2)
	require.Equal(t, int64(amtSat*1000), route.Hops[0].AmtToForwardMsat)
	require.Greater(t, route.TotalAmtMsat, int64(amtSat*1000))

	matches := withHash(c.listHeld(t), hash)
	require.Len(t, matches, 1)
	got := matches[0]
	h := got.htlc
	require.Equal(t, net.ChanSL, h.Incoming.ChanId)
	require.Equal(t, atL.HtlcIndex, h.Incoming.HtlcId)
	require.Equal(t, "held", h.State)
	require.Equal(t, uint64(route.TotalAmtMsat), h.IncomingAmtMsat)
	require.Equal(t, uint64(amtSat*1000), h.OutgoingAmtMsat)
	require.Equal(t, route.TotalTimeLock, h.IncomingExpiry)
	require.Equal(t, atL.ExpirationHeight, h.IncomingExpiry)
	require.Equal(t, route.Hops[0].Expiry, h.OutgoingExpiry)
	require.Equal(t, net.ChanLP, h.OutgoingChanId)
	require.Equal(t, net.S.PubKey, h.IncomingPeer)
	require.Equal(t, h.AutoFailHeight-defaultFailbackMargin,
		h.FailbackHeight)
	require.Equal(t, uint32(height), h.CurrentHeight)
	require.Zero(t, h.ReleasedAtUnixNs)
	require.Zero(t, h.ResolvedAtUnixNs)
	require.Empty(t, h.ReleaseSource)
	require.Empty(t, h.FailReason)

	// The derived fields.
	require.Equal(t, uint64(route.TotalAmtMsat/1000), got.AmountSat)
	require.NotNil(t, got.BlocksToFailback)
	require.Equal(t, int64(h.FailbackHeight)-int64(height),
		*got.BlocksToFailback)
	require.Positive(t, *got.BlocksToFailback)
	// S, a wallet client with only a private channel, is in no public
	// graph: L knows its alias only once S's node announcement, sent to
	// its channel peer alone, has reached L, so it may not know it yet.
	require.Contains(t, []string{"S", ""}, h.IncomingPeerAlias)
	require.Equal(t, h.IncomingPeerAlias, got.PeerAlias)
	age, err := time.ParseDuration(got.Age)
	require.NoError(t, err, got.Age)
	require.GreaterOrEqual(t, age, time.Duration(0))
	require.Less(t, age, DefaultTimeout)

	// The filters.
	require.Len(t, withHash(c.listHeld(t, "--state=held",
		"--peer="+net.S.PubKeyHex), hash), 1)
	require.Empty(t, withHash(c.listHeld(t, "--state=resumed",
		"--state=failed"), hash))
	require.Empty(t, withHash(c.listHeld(t, "--peer="+net.P.PubKeyHex),
		hash))

	// getheld shows the same record.
	var one holdrpc.HeldHtlc
	c.decode(t, &one, "getheld", keyArg(h))
	require.True(t, proto.Equal(h, &one), "listheld %v\ngetheld %v", h,
		&one)

	// getinfo counts exactly this HTLC: the network was clean before.
	var info holdrpc.GetInfoResponse
	c.decode(t, &info, "getinfo")
	require.Equal(t, "regtest", info.Network)
	require.Equal(t, net.L.PubKey, info.LndPubkey)
	require.True(t, info.InterceptorConnected)
	require.Equal(t, "connected", info.PeerLinkState)
	require.Equal(t, uint32(1), info.HeldCount)
	require.Equal(t, uint64(route.TotalAmtMsat), info.HeldMsat)
	require.Equal(t, uint32(height), info.BlockHeight)

	var paths holdrpc.GetReleasePathsResponse
	c.decode(t, &paths, "getreleasepaths", keyArg(h))
	require.Len(t, paths.Paths, 2)
	require.Equal(t, uint32(release.PathDeliveryMsgType),
		paths.DeliveryMsgType)

	// Holding is all it does until the operator acts.
	require.NoError(t, held.payment.RequireInFlightFor(ctx, 2*time.Second))
	requireInvoiceState(t, net, hash, lnrpc.Invoice_OPEN)

	// A manual release needs a reason; without one holdcli does not
	// even dial.
	res := c.run(ctx, nil, "releaseheld", keyArg(h))
	require.Error(t, res.err)
	require.Contains(t, res.stderr, "needs --reason")
	require.Equal(t, "held", c.waitCLIState(t, hash, "held").htlc.State)

	var rel holdrpc.ReleaseHeldResponse
	c.decode(t, &rel, "releaseheld", keyArg(h),
		"--reason=itest: operator releases by hand")
	require.Equal(t, "matched", rel.Outcome)
	require.Equal(t, "manual", rel.Htlc.ReleaseSource)
	require.Equal(t, h.Incoming.ChanId, rel.Htlc.Incoming.ChanId)
	require.Equal(t, h.Incoming.HtlcId, rel.Htlc.Incoming.HtlcId)

	final, err := held.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	require.Equal(t, int64(amtSat), final.ValueSat)
	preimage, err := hex.DecodeString(final.PaymentPreimage)
	require.NoError(t, err)
	sum := sha256.Sum256(preimage)
	require.Equal(t, hash, sum[:])
	inv := requireInvoiceState(t, net, hash, lnrpc.Invoice_SETTLED)
	require.Equal(t, int64(amtSat), inv.AmtPaidSat)

	done := c.waitCLIState(t, hash, "resumed")
	require.Equal(t, "manual", done.htlc.ReleaseSource)
	require.NotZero(t, done.htlc.ReleasedAtUnixNs)
	require.Nil(t, done.BlocksToFailback)
	require.Empty(t, withHash(c.listHeld(t, "--state=held"), hash))

	// It is no longer held: a second release is refused.
	res = c.run(ctx, nil, "releaseheld", keyArg(h), "--reason=again")
	require.Error(t, res.err)
	require.Contains(t, res.stderr, "code = FailedPrecondition")
}

// TestOperatorFailHeld fails a held HTLC by hand: the payment fails with
// L's TEMPORARY_CHANNEL_FAILURE and P's invoice stays open.
func TestOperatorFailHeld(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	c := newHoldcli(t, net)

	held := holdViaCLI(t, net, c, 21_000)
	hash := held.invoice.RHash
	key := keyArg(held.listed.htlc)

	res := c.run(ctx, nil, "failheld", key)
	require.Error(t, res.err)
	require.Contains(t, res.stderr, "needs --reason")
	require.NoError(t, held.payment.RequireInFlightFor(ctx, time.Second))

	var failed holdrpc.FailHeldResponse
	c.decode(t, &failed, "failheld", key,
		"--reason=itest: operator fails by hand")
	require.Equal(t, "failed", failed.Htlc.State)
	require.Equal(t, "manual", failed.Htlc.FailReason)

	requireFailedByL(t, held.payment)
	requireInvoiceState(t, net, hash, lnrpc.Invoice_OPEN)

	var rec holdrpc.HeldHtlc
	c.decode(t, &rec, "getheld", key)
	require.Equal(t, "failed", rec.State)
	require.Equal(t, "manual", rec.FailReason)
	require.Empty(t, rec.ReleaseSource)
	require.NotZero(t, rec.ResolvedAtUnixNs)

	res = c.run(ctx, nil, "failheld", key, "--reason=again")
	require.Error(t, res.err)
	require.Contains(t, res.stderr, "code = FailedPrecondition")
}

// bakeForeignMacaroons bakes holdd's default macaroons under a fresh root
// key into a new directory: well-formed, the right permissions, the wrong
// key.
func bakeForeignMacaroons(t *testing.T) string {
	t.Helper()
	rootKey := make([]byte, 32)
	_, err := rand.Read(rootKey)
	require.NoError(t, err)
	svc, err := holdrpc.NewMacaroonService(rootKey)
	require.NoError(t, err)
	defer svc.Close()

	dir := t.TempDir()
	require.NoError(t, holdrpc.BakeDefaultMacaroons(t.Context(), svc, dir))
	return dir
}

// dialHoldd connects to holdd over TLS with the given per-RPC credentials
// (none: no macaroon at all).
func dialHoldd(t *testing.T, net *Network,
	opts ...grpc.DialOption) holdrpc.HoldClient {

	t.Helper()
	net.holddMtx.Lock()
	h := net.Holdd
	net.holddMtx.Unlock()
	require.NotNil(t, h)

	creds, err := credentials.NewClientTLSFromFile(
		filepath.Join(h.Dir, "tls.cert"), "")
	require.NoError(t, err)
	opts = append(opts, grpc.WithTransportCredentials(creds))
	conn, err := grpc.NewClient(h.RPCAddr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return holdrpc.NewHoldClient(conn)
}

// TestOperatorMacaroons checks the access rules: the read-only macaroon
// lists but cannot act, and a missing, foreign or random macaroon gets
// nothing. The HTLC stays held through all of it.
func TestOperatorMacaroons(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	c := newHoldcli(t, net)
	before := holddInfo(t, net)

	held := holdViaCLI(t, net, c, 17_000)
	hash := held.invoice.RHash
	key := keyArg(held.listed.htlc)
	incoming := held.listed.htlc.Incoming

	var origPolicy holdrpc.Policy
	c.decode(t, &origPolicy, "getpolicy")

	// Read-only: reads work.
	readOnly := []string{"--macaroonpath=" + filepath.Join(c.holdDir,
		"data", "regtest", holdrpc.ReadOnlyMacaroonFilename)}
	res := c.run(ctx, readOnly, "listheld", "--state=held")
	require.NoError(t, res.err, res.stderr)
	list, err := parseListHeld(res.stdout)
	require.NoError(t, err)
	matches := withHash(list, hash)
	require.Len(t, matches, 1)
	require.Equal(t, incoming.ChanId, matches[0].htlc.Incoming.ChanId)
	require.Equal(t, incoming.HtlcId, matches[0].htlc.Incoming.HtlcId)
	require.Equal(t, "held", matches[0].htlc.State)
	for _, cmd := range [][]string{
		{"getinfo"}, {"getheld", key}, {"getpolicy"},
	} {
		res := c.run(ctx, readOnly, cmd...)
		require.NoError(t, res.err, "%v: %s", cmd, res.stderr)
	}

	// Read-only: every write is refused by holdd, including the release
	// paths, which would let their holder release.
	for _, cmd := range [][]string{
		{"releaseheld", key, "--reason=read-only tries"},
		{"failheld", key, "--reason=read-only tries"},
		{"getreleasepaths", key},
		{"setpolicy", "--maxtotal=1"},
		{"setpolicy", "--reset"},
	} {
		requirePermissionDenied(t, c.run(ctx, readOnly, cmd...),
			"read-only "+strings.Join(cmd, " "))
	}

	// A macaroon file that is not there: holdcli stops before dialing.
	missing := filepath.Join(t.TempDir(), "admin.macaroon")
	res = c.run(ctx, []string{"--macaroonpath=" + missing}, "releaseheld",
		key, "--reason=no macaroon")
	require.Error(t, res.err)
	require.Empty(t, res.stdout)
	require.Contains(t, res.stderr, "cannot read --macaroonpath "+missing)

	// A holddir without macaroons (the TLS cert copied in, so that the
	// macaroon is what is missing).
	emptyDir := t.TempDir()
	cert, err := os.ReadFile(filepath.Join(c.holdDir, "tls.cert"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(emptyDir, "tls.cert"),
		cert, 0o600))
	res = (&holdcli{bin: c.bin, rpcAddr: c.rpcAddr, holdDir: emptyDir}).run(
		ctx, nil, "listheld")
	require.Error(t, res.err)
	require.Contains(t, res.stderr, "cannot read --macaroonpath "+
		filepath.Join(emptyDir, "data", "regtest", "admin.macaroon"))

	// Random bytes: not a macaroon, holdcli refuses to send it.
	garbage := filepath.Join(t.TempDir(), "random.macaroon")
	junk := make([]byte, 64)
	_, err = rand.Read(junk)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(garbage, junk, 0o600))
	res = c.run(ctx, []string{"--macaroonpath=" + garbage}, "listheld")
	require.Error(t, res.err)
	require.Empty(t, res.stdout)
	require.Contains(t, res.stderr, "is not a macaroon")

	// An admin macaroon baked under another root key: holdd refuses
	// reads and writes alike.
	foreign := []string{"--macaroonpath=" + filepath.Join(
		bakeForeignMacaroons(t), holdrpc.AdminMacaroonFilename)}
	for _, cmd := range [][]string{
		{"listheld"},
		{"getinfo"},
		{"releaseheld", key, "--reason=foreign macaroon"},
		{"failheld", key, "--reason=foreign macaroon"},
	} {
		requirePermissionDenied(t, c.run(ctx, foreign, cmd...),
			"foreign "+strings.Join(cmd, " "))
	}

	// What holdcli would not send, sent straight over gRPC: no macaroon,
	// a random one, and bytes that are no macaroon at all.
	relReq := &holdrpc.ReleaseHeldRequest{Incoming: incoming,
		Reason: "raw gRPC"}
	noMac := dialHoldd(t, net)
	_, err = noMac.ReleaseHeld(ctx, relReq)
	require.Equal(t, codes.PermissionDenied, status.Code(err), err)
	_, err = noMac.ListHeld(ctx, &holdrpc.ListHeldRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), err)

	randKey, randID := make([]byte, 32), make([]byte, 16)
	_, err = rand.Read(randKey)
	require.NoError(t, err)
	_, err = rand.Read(randID)
	require.NoError(t, err)
	randMac, err := macaroon.New(randKey, randID, holdrpc.MacaroonLocation,
		macaroon.LatestVersion)
	require.NoError(t, err)
	randCred, err := macaroons.NewMacaroonCredential(randMac)
	require.NoError(t, err)
	_, err = dialHoldd(t, net, grpc.WithPerRPCCredentials(randCred)).
		ReleaseHeld(ctx, relReq)
	require.Equal(t, codes.PermissionDenied, status.Code(err), err)

	junkCtx := metadata.AppendToOutgoingContext(ctx, "macaroon",
		hex.EncodeToString(junk))
	_, err = noMac.ReleaseHeld(junkCtx, relReq)
	require.Equal(t, codes.PermissionDenied, status.Code(err), err)

	// None of it touched the HTLC or the policy.
	require.NoError(t, held.payment.RequireInFlightFor(ctx, time.Second))
	require.Equal(t, "held", c.waitCLIState(t, hash, "held").htlc.State)
	requireInvoiceState(t, net, hash, lnrpc.Invoice_OPEN)
	var policy holdrpc.Policy
	c.decode(t, &policy, "getpolicy")
	require.True(t, proto.Equal(&origPolicy, &policy))
	after := holddInfo(t, net)
	require.Equal(t, before.Releases["matched"], after.Releases["matched"])
	require.Equal(t, before.Decisions["fail_manual"],
		after.Decisions["fail_manual"])

	// The admin macaroon releases it.
	var rel holdrpc.ReleaseHeldResponse
	c.decode(t, &rel, "releaseheld", key, "--reason=itest: admin releases")
	require.Equal(t, "matched", rel.Outcome)
	_, err = held.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	require.Equal(t, "manual",
		c.waitCLIState(t, hash, "resumed").htlc.ReleaseSource)
}

// scrapeMetrics reads holdd's Prometheus text page into "name{labels}" ->
// value.
func scrapeMetrics(ctx context.Context, addr string) (map[string]float64,
	error) {

	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}

	samples := make(map[string]float64)
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, scanner.Err()
}

// waitMetric waits until the sample name (with labels) has value want.
func waitMetric(t *testing.T, addr, name string, want float64) {
	t.Helper()
	err := waitFor(t.Context(), DefaultTimeout,
		fmt.Sprintf("metric %s = %v", name, want),
		func(ctx context.Context) (bool, error) {
			samples, err := scrapeMetrics(ctx, addr)
			if err != nil {
				return false, err
			}
			got, ok := samples[name]
			if !ok {
				return false, errors.New("not exported")
			}
			if got != want {
				return false, fmt.Errorf("%s = %v", name, got)
			}
			return true, nil
		})
	require.NoError(t, err)
}

// restoreHoldd restarts holdd with the harness's default flags if it runs
// with others (or not at all), so later tests see the default setup.
func restoreHoldd(t *testing.T, net *Network) {
	net.holddMtx.Lock()
	h := net.Holdd
	net.holddMtx.Unlock()
	if h != nil && len(h.Args) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(),
		2*DefaultTimeout)
	defer cancel()
	if err := net.RestartHoldd(ctx); err != nil {
		t.Errorf("restore holdd's default flags: %v", err)
	}
}

// expectedTransport is the release transport holdd's default
// (transport=auto) picks for L: its own peer link from lnd 0.21, which
// forwards onion messages, lnd's custom-message API before.
func expectedTransport(t *testing.T, net *Network) string {
	t.Helper()
	info, err := net.L.Lightning.GetInfo(t.Context(),
		&lnrpc.GetInfoRequest{})
	require.NoError(t, err)
	v, err := rpcclient.ParseVersion(info.Version)
	require.NoError(t, err)
	if v.Less(rpcclient.Version{Major: 0, Minor: 21}) {
		return "custommsg"
	}
	return "peer"
}

// TestOperatorMetrics starts holdd with --prometheus.listen and follows the
// held count and amount through a hold and a manual release.
func TestOperatorMetrics(t *testing.T) {
	net := Net(t)
	ctx := t.Context()

	addr, err := freeAddr()
	require.NoError(t, err)
	t.Cleanup(func() { restoreHoldd(t, net) })
	require.NoError(t, net.RestartHoldd(ctx, "--prometheus.listen="+addr))
	c := newHoldcli(t, net)

	waitMetric(t, addr, "holdd_held_htlcs", 0)
	waitMetric(t, addr, "holdd_held_msat", 0)
	waitMetric(t, addr, "holdd_interceptor_connected", 1)
	waitMetric(t, addr, fmt.Sprintf("holdd_transport_connected"+
		"{transport=%q}", expectedTransport(t, net)), 1)
	samples, err := scrapeMetrics(ctx, addr)
	require.NoError(t, err)
	matchedName := `holdd_releases_total{outcome="matched"}`
	matchedBefore := samples[matchedName]

	held := holdViaCLI(t, net, c, 33_000)
	route := sentRoute(t, held.payment)
	waitMetric(t, addr, "holdd_held_htlcs", 1)
	waitMetric(t, addr, "holdd_held_msat", float64(route.TotalAmtMsat))

	var rel holdrpc.ReleaseHeldResponse
	c.decode(t, &rel, "releaseheld", keyArg(held.listed.htlc),
		"--reason=itest: metrics")
	require.Equal(t, "matched", rel.Outcome)
	_, err = held.payment.WaitStatus(ctx, DefaultTimeout,
		lnrpc.Payment_SUCCEEDED)
	require.NoError(t, err)
	c.waitCLIState(t, held.invoice.RHash, "resumed")

	waitMetric(t, addr, "holdd_held_htlcs", 0)
	waitMetric(t, addr, "holdd_held_msat", 0)
	waitMetric(t, addr, matchedName, matchedBefore+1)

	// Back to the default flags: the endpoint is off by default.
	require.NoError(t, net.RestartHoldd(ctx))
	_, err = scrapeMetrics(ctx, addr)
	require.Error(t, err, "metrics still served without "+
		"--prometheus.listen")
}

// TestOperatorPolicyPersists sets the policy with holdcli, restarts holdd
// and finds it still in force; --reset goes back to holdd.conf's policy,
// across a restart too.
func TestOperatorPolicyPersists(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	c := newHoldcli(t, net)

	var orig holdrpc.Policy
	c.decode(t, &orig, "getpolicy")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			DefaultTimeout)
		defer cancel()
		client, err := net.HolddClient()
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		cur, err := client.GetPolicy(ctx, &holdrpc.GetPolicyRequest{})
		if err == nil && proto.Equal(cur, &orig) {
			return
		}
		_, err = client.SetPolicy(ctx,
			&holdrpc.SetPolicyRequest{Reset_: true})
		if err != nil {
			t.Errorf("cleanup: reset policy: %v", err)
		}
	})

	want := proto.Clone(&orig).(*holdrpc.Policy)
	want.FailbackMargin = orig.FailbackMargin + 8
	want.MaxHoldTimeSeconds = 7200
	want.MaxHeldPerPeer = 7
	want.MaxHeldMsatPerPeer = 77_000_000
	want.MaxHeldTotal = 40
	want.MaxHeldMsatTotal = 400_000_000
	want.HoldTypes = []uint64{HoldHTLCType, 65_601}
	want.PendingReleaseTtlSeconds = 90
	require.False(t, proto.Equal(&orig, want), "test policy equals the "+
		"default")

	var set holdrpc.Policy
	c.decode(t, &set, "setpolicy",
		fmt.Sprintf("--failbackmargin=%d", want.FailbackMargin),
		"--maxholdtime=2h", "--maxperpeer=7",
		"--maxperpeermsat=77000000", "--maxtotal=40",
		"--maxtotalmsat=400000000",
		fmt.Sprintf("--holdtype=%d", HoldHTLCType), "--holdtype=65601",
		"--pendingreleasettl=90s")
	require.True(t, proto.Equal(want, &set), "want %v\ngot %v", want, &set)

	getPolicy := func() *holdrpc.Policy {
		var p holdrpc.Policy
		c.decode(t, &p, "getpolicy")
		return &p
	}
	require.True(t, proto.Equal(want, getPolicy()))

	// Persisted: a restarted holdd reads it back.
	require.NoError(t, net.RestartHoldd(ctx))
	got := getPolicy()
	require.True(t, proto.Equal(want, got), "want %v\ngot %v", want, got)

	// A flag changes only its own setting.
	c.decode(t, &set, "setpolicy", "--maxtotal=41")
	want.MaxHeldTotal = 41
	require.True(t, proto.Equal(want, &set), "want %v\ngot %v", want, &set)

	// --reset goes back to holdd.conf's policy and stays there.
	var reset holdrpc.Policy
	c.decode(t, &reset, "setpolicy", "--reset")
	require.True(t, proto.Equal(&orig, &reset), "want %v\ngot %v", &orig,
		&reset)
	require.NoError(t, net.RestartHoldd(ctx))
	got = getPolicy()
	require.True(t, proto.Equal(&orig, got), "want %v\ngot %v", &orig, got)
}
