package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/asyncsend"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli"
	"google.golang.org/grpc"
)

func payTestKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

// payTestPath returns a one-hop blinded path at node and its hex.
func payTestPath(t *testing.T, node byte) (*onionmsg.BlindedPath, string) {
	t.Helper()
	p, err := onionmsg.BuildBlindedPath(payTestKey(0x99), []onionmsg.Hop{{
		NodeID: payTestKey(node).PubKey(),
		Data: record.NewFinalHopBlindedRouteData(nil,
			[]byte("recipient")),
	}}, false)
	require.NoError(t, err)
	b, err := p.Bytes()
	require.NoError(t, err)
	return p, hex.EncodeToString(b)
}

// runPayAsyncArgs parses a holdcli command line with payasync and returns
// what payasync would pay with; run is never reached on a bad line.
func runPayAsyncArgs(t *testing.T, args ...string) (*payAsyncArgs, error) {
	t.Helper()
	var got *payAsyncArgs
	e := &env{ctx: context.Background(), out: io.Discard,
		clock: clock.NewTestClock(time.Unix(1_700_000_000, 0))}
	app := cli.NewApp()
	app.Name = "holdcli"
	app.Writer = io.Discard
	app.ErrWriter = io.Discard
	app.Flags = globalFlags()
	app.Commands = []cli.Command{payAsyncCommandWith(e,
		func(_ *env, a *payAsyncArgs) error {
			got = a
			return nil
		})}
	err := app.Run(append([]string{"holdcli"}, args...))
	if err != nil {
		require.Nil(t, got, "run reached despite %v", err)
	}
	return got, err
}

// withoutPaths returns a copy of args without the decoded paths, which
// are compared by their bytes.
func withoutPaths(t *testing.T, a *payAsyncArgs) (payAsyncArgs, []string) {
	t.Helper()
	c := *a
	var hexes []string
	for _, p := range a.req.RecipientPaths {
		b, err := p.Bytes()
		require.NoError(t, err)
		hexes = append(hexes, hex.EncodeToString(b))
	}
	c.req.RecipientPaths = nil
	return c, hexes
}

func TestPayAsyncDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	_, pathHex := payTestPath(t, 0x21)

	for _, network := range []string{"", "regtest", "testnet"} {
		t.Run("network "+network, func(t *testing.T) {
			var args []string
			want := "mainnet"
			if network != "" {
				args = []string{"--network", network}
				want = network
			}
			args = append(args, "payasync", "--pay_req", "lnbcrt1x",
				"--recipient_path", pathHex)
			got, err := runPayAsyncArgs(t, args...)
			require.NoError(t, err)

			rest, paths := withoutPaths(t, got)
			require.Equal(t, []string{pathHex}, paths)
			require.Equal(t, payAsyncArgs{
				lnd: rpcclient.Config{
					Host: "localhost:10009",
					TLSCertPath: filepath.Join(home,
						".lnd", "tls.cert"),
					MacaroonPath: filepath.Join(home,
						".lnd", "data", "chain",
						"bitcoin", want,
						"admin.macaroon"),
					Network:         want,
					SkipSignerCheck: true,
				},
				req: asyncsend.Request{
					PaymentRequest: "lnbcrt1x",
					TimeoutSeconds: 60,
					MinMessages:    2,
				},
			}, rest)
		})
	}
}

func TestPayAsyncAllFlags(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	_, path1 := payTestPath(t, 0x21)
	_, path2 := payTestPath(t, 0x22)
	dir := t.TempDir()
	dest := payTestKey(0x33).PubKey()

	got, err := runPayAsyncArgs(t, "--network", "signet", "payasync",
		"--lnddir", dir,
		"--lnd.rpcserver", "10.0.0.2:10010",
		"--lnd.tlscertpath", "/etc/lnd/tls.cert",
		"--lnd.macaroonpath", "/etc/lnd/sender.macaroon",
		"--dest", hex.EncodeToString(dest.SerializeCompressed()),
		"--amt", "2500",
		"--recipient_path", path1, "--recipient_path", path2,
		"--outgoing_chan_id", "123456789",
		"--fee_limit_sat", "0",
		"--timeout", "30s",
		"--cltv_limit", "400",
		"--messages", "3",
	)
	require.NoError(t, err)
	rest, paths := withoutPaths(t, got)
	require.Equal(t, []string{path1, path2}, paths)
	require.True(t, rest.req.Dest.IsEqual(dest))
	rest.req.Dest = nil
	require.Equal(t, payAsyncArgs{
		lnd: rpcclient.Config{
			Host:            "10.0.0.2:10010",
			TLSCertPath:     "/etc/lnd/tls.cert",
			MacaroonPath:    "/etc/lnd/sender.macaroon",
			Network:         "signet",
			SkipSignerCheck: true,
		},
		req: asyncsend.Request{
			AmtSat:         2500,
			OutgoingChanID: 123456789,
			TimeoutSeconds: 30,
			CltvLimit:      400,
			MinMessages:    3,
		},
		feeLimitSet: true,
	}, rest)

	// --lnddir alone moves both defaults.
	got, err = runPayAsyncArgs(t, "--network", "regtest", "payasync",
		"--lnddir", dir, "--pay_req", "lnbcrt1x",
		"--recipient_path", path1)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "tls.cert"), got.lnd.TLSCertPath)
	require.Equal(t, filepath.Join(dir, "data", "chain", "bitcoin",
		"regtest", "admin.macaroon"), got.lnd.MacaroonPath)
	require.False(t, got.feeLimitSet)
}

func TestPayAsyncArgumentErrors(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	_, path := payTestPath(t, 0x21)
	dest := hex.EncodeToString(payTestKey(0x33).PubKey().
		SerializeCompressed())

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing to pay", []string{"--recipient_path", path},
			"--pay_req"},
		{"invoice and dest", []string{"--pay_req", "lnbc1",
			"--dest", dest, "--amt", "1", "--recipient_path",
			path}, "not both"},
		{"keysend without amount", []string{"--dest", dest,
			"--recipient_path", path}, "--amt"},
		{"bad dest", []string{"--dest", "02abcd", "--amt", "1",
			"--recipient_path", path}, "--dest"},
		{"negative amount", []string{"--pay_req", "lnbc1", "--amt",
			"-1", "--recipient_path", path}, "--amt"},
		{"no recipient path", []string{"--pay_req", "lnbc1"},
			"--recipient_path"},
		{"recipient path not hex", []string{"--pay_req", "lnbc1",
			"--recipient_path", "zz"}, "not hex"},
		{"recipient path truncated", []string{"--pay_req", "lnbc1",
			"--recipient_path", path[:len(path)-2]},
			"invalid blinded path"},
		{"bytes after recipient path", []string{"--pay_req", "lnbc1",
			"--recipient_path", path + "00"}, "after the path"},
		{"negative fee limit", []string{"--pay_req", "lnbc1",
			"--fee_limit_sat", "-5", "--recipient_path", path},
			"--fee_limit_sat"},
		{"fractional timeout", []string{"--pay_req", "lnbc1",
			"--timeout", "1500ms", "--recipient_path", path},
			"--timeout"},
		{"zero timeout", []string{"--pay_req", "lnbc1", "--timeout",
			"0s", "--recipient_path", path}, "--timeout"},
		{"cltv limit out of range", []string{"--pay_req", "lnbc1",
			"--cltv_limit", "4294967296", "--recipient_path", path},
			"--cltv_limit"},
		{"zero messages", []string{"--pay_req", "lnbc1",
			"--messages", "0", "--recipient_path", path},
			"--messages"},
		{"positional argument", []string{"--pay_req", "lnbc1",
			"--recipient_path", path, "extra"}, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runPayAsyncArgs(t, append(
				[]string{"--network", "regtest", "payasync"},
				tc.args...)...)
			require.ErrorIs(t, err, errUsage)
			require.ErrorContains(t, err, tc.want)
		})
	}

	_, err := runPayAsyncArgs(t, "--network", "moon", "payasync",
		"--pay_req", "lnbc1", "--recipient_path", path)
	require.ErrorIs(t, err, errUsage)
	require.ErrorContains(t, err, "--network")
}

func TestPrintPayProgress(t *testing.T) {
	at := time.Unix(1_700_000_123, 0)
	hash := lntypes.Hash(bytes.Repeat([]byte{0xab}, 32))
	lsp := route.Vertex(payTestKey(0x10).PubKey().SerializeCompressed())
	intro := route.Vertex(payTestKey(0x20).PubKey().SerializeCompressed())
	lspHex, introHex := hex.EncodeToString(lsp[:]),
		hex.EncodeToString(intro[:])
	hashHexStr := strings.Repeat("ab", 32)
	noRoute := lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE

	for _, tc := range []struct {
		p    asyncsend.Progress
		want string
	}{{
		asyncsend.Progress{Stage: asyncsend.StagePaymentInFlight,
			Time: at, PaymentHash: hash, Attempts: 1},
		`{"stage":"payment_in_flight","time":1700000123,` +
			`"payment_hash":"` + hashHexStr + `","attempts":1}`,
	}, {
		asyncsend.Progress{Stage: asyncsend.StageHeld, Time: at,
			PaymentHash: hash, Held: &asyncsend.Held{
				LSP: lsp, ChanID: 7, HtlcID: 0,
				AmountMsat: 1000500, Paths: 2,
				ExpiresAt: at.Add(time.Hour),
			}},
		`{"stage":"held","time":1700000123,"payment_hash":"` +
			hashHexStr + `","lsp":"` + lspHex + `","chan_id":7,` +
			`"htlc_id":0,"amount_msat":1000500,` +
			`"release_paths":2,"expires_at":1700003723}`,
	}, {
		asyncsend.Progress{Stage: asyncsend.StageMessageSent,
			Time: at, PaymentHash: hash,
			Message: &asyncsend.MessageReport{
				ChanID: 7, Index: 1, RecipientPath: 0,
				ReleasePath: 1, Route: onionsend.Route{
					Peer: lsp, Intro: intro, Via: true,
				},
			}},
		`{"stage":"held_htlc_available_sent","time":1700000123,` +
			`"payment_hash":"` + hashHexStr + `","chan_id":7,` +
			`"htlc_id":0,"message":1,"recipient_path":0,` +
			`"release_path":1,"peer":"` + lspHex + `","intro":"` +
			introHex + `","via_lsp":true}`,
	}, {
		asyncsend.Progress{Stage: asyncsend.StageMessageFailed,
			Time: at, PaymentHash: hash,
			Message: &asyncsend.MessageReport{
				ChanID: 7, Route: onionsend.Route{
					Intro: intro},
				Err: errors.New("no route"),
			}},
		`{"stage":"held_htlc_available_failed","time":1700000123,` +
			`"payment_hash":"` + hashHexStr + `","chan_id":7,` +
			`"htlc_id":0,"message":0,"recipient_path":0,` +
			`"release_path":0,"intro":"` + introHex + `",` +
			`"error":"no route"}`,
	}, {
		asyncsend.Progress{Stage: asyncsend.StageSucceeded, Time: at,
			PaymentHash: hash,
			Preimage:    lntypes.Preimage(bytes.Repeat([]byte{1}, 32)),
			FeeMsat:     1500},
		`{"stage":"succeeded","time":1700000123,"payment_hash":"` +
			hashHexStr + `","preimage":"` +
			strings.Repeat("01", 32) + `","fee_msat":1500}`,
	}, {
		asyncsend.Progress{Stage: asyncsend.StageFailed, Time: at,
			PaymentHash: hash, FailureReason: noRoute},
		`{"stage":"failed","time":1700000123,"payment_hash":"` +
			hashHexStr + `","failure_reason":` +
			`"FAILURE_REASON_NO_ROUTE"}`,
	}} {
		t.Run(string(tc.p.Stage), func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, printPayProgress(&out, tc.p))
			require.Equal(t, tc.want+"\n", out.String())
		})
	}
}

func TestReportPayOutcome(t *testing.T) {
	hash := lntypes.Hash(bytes.Repeat([]byte{0xab}, 32))
	now := time.Unix(1_700_000_999, 0)
	newEnv := func() (*env, *bytes.Buffer) {
		var out bytes.Buffer
		return &env{ctx: context.Background(), out: &out,
			clock: clock.NewTestClock(now)}, &out
	}
	lsp := route.Vertex(payTestKey(0x10).PubKey().SerializeCompressed())

	t.Run("succeeded", func(t *testing.T) {
		e, out := newEnv()
		err := reportPayOutcome(e, &asyncsend.Result{
			PaymentHash: hash, Status: lnrpc.Payment_SUCCEEDED,
			Preimage:  lntypes.Preimage(bytes.Repeat([]byte{1}, 32)),
			ValueMsat: 1_000_000, FeeMsat: 1000,
			Held: []asyncsend.Held{{LSP: lsp, ChanID: 7,
				AmountMsat: 1001000, Paths: 2,
				ExpiresAt: now}},
			MessagesSent: 2,
			Ignored:      asyncsend.Ignored{Duplicate: 1},
		}, nil)
		require.NoError(t, err)
		require.Equal(t, `{
    "payment_hash": "`+strings.Repeat("ab", 32)+`",
    "status": "SUCCEEDED",
    "preimage": "`+strings.Repeat("01", 32)+`",
    "value_msat": 1000000,
    "fee_msat": 1000,
    "held": [
        {
            "lsp": "`+hex.EncodeToString(lsp[:])+`",
            "chan_id": 7,
            "htlc_id": 0,
            "amount_msat": 1001000,
            "release_paths": 2,
            "expires_at": 1700000999
        }
    ],
    "messages_sent": 2,
    "messages_failed": 0,
    "ignored_deliveries": {
        "duplicate": 1,
        "expired": 0,
        "not_first_hop": 0,
        "other_payment": 0,
        "overflow": 0,
        "undecodable": 0
    },
    "subscription_drops": 0
}
`, out.String())
	})

	t.Run("failed", func(t *testing.T) {
		e, out := newEnv()
		reason := lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT
		err := reportPayOutcome(e, &asyncsend.Result{
			PaymentHash: hash, Status: lnrpc.Payment_FAILED,
			FailureReason: reason,
		}, nil)
		require.ErrorContains(t, err, "FAILURE_REASON_TIMEOUT")
		require.Contains(t, out.String(), `"status": "FAILED"`)
		require.Contains(t, out.String(),
			`"failure_reason": "FAILURE_REASON_TIMEOUT"`)
		require.NotContains(t, out.String(), "preimage")
		require.Contains(t, out.String(), `"held": []`)
	})

	t.Run("interrupted", func(t *testing.T) {
		e, out := newEnv()
		err := reportPayOutcome(e, &asyncsend.Result{
			PaymentHash: hash, Status: lnrpc.Payment_IN_FLIGHT,
		}, fmt.Errorf("%w: %w", asyncsend.ErrInterrupted,
			context.Canceled))
		require.ErrorIs(t, err, asyncsend.ErrInterrupted)
		hint := "lncli trackpayment " + strings.Repeat("ab", 32)
		require.ErrorContains(t, err, hint)
		require.Equal(t, `{"stage":"interrupted","time":1700000999,`+
			`"payment_hash":"`+strings.Repeat("ab", 32)+`",`+
			`"note":"the payment stays in flight in lnd; `+
			`follow it with: `+hint+`"}`+"\n", out.String())
	})

	t.Run("interrupted before lnd named the hash", func(t *testing.T) {
		e, out := newEnv()
		err := reportPayOutcome(e, &asyncsend.Result{},
			asyncsend.ErrStreamEnded)
		require.ErrorIs(t, err, asyncsend.ErrStreamEnded)
		require.ErrorContains(t, err,
			"lncli listpayments --include_incomplete")
		require.Contains(t, out.String(), `"stage":"stream_ended"`)
		require.NotContains(t, out.String(), "payment_hash")
	})

	t.Run("error", func(t *testing.T) {
		e, out := newEnv()
		err := reportPayOutcome(e, nil, asyncsend.ErrPayment)
		require.ErrorIs(t, err, asyncsend.ErrPayment)
		require.Empty(t, out.String())
	})
}

type fakeDecoder struct {
	sat int64
	err error
}

func (f fakeDecoder) DecodePayReq(context.Context, *lnrpc.PayReqString,
	...grpc.CallOption) (*lnrpc.PayReq, error) {

	return &lnrpc.PayReq{NumSatoshis: f.sat}, f.err
}

func TestDefaultFeeLimit(t *testing.T) {
	e := &env{ctx: context.Background()}
	for _, tc := range []struct {
		name string
		dec  fakeDecoder
		req  asyncsend.Request
		want int64
	}{
		{"invoice amount, 5%", fakeDecoder{sat: 10_000},
			asyncsend.Request{PaymentRequest: "lnbc1"}, 500},
		{"small amounts pay up to 100%", fakeDecoder{sat: 900},
			asyncsend.Request{PaymentRequest: "lnbc1"}, 900},
		{"zero-amount invoice uses --amt", fakeDecoder{},
			asyncsend.Request{PaymentRequest: "lnbc1",
				AmtSat: 40_000}, 2000},
		{"keysend", fakeDecoder{err: errors.New("unused")},
			asyncsend.Request{Dest: payTestKey(1).PubKey(),
				AmtSat: 20_000}, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := defaultFeeLimit(e, tc.dec, &tc.req)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}

	_, err := defaultFeeLimit(e, fakeDecoder{err: errors.New("bad")},
		&asyncsend.Request{PaymentRequest: "lnbc1"})
	require.ErrorContains(t, err, "decode --pay_req")
}
