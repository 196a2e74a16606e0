package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/holdd/holdd/asyncsend"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/release/onionsend"
	"github.com/holdd/holdd/rpcclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwallet"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/urfave/cli"
	"google.golang.org/grpc"
)

const (
	defaultLndDir       = "~/.lnd"
	defaultLndRPCServer = "localhost:10009"
	defaultPayTimeout   = 60 * time.Second
)

// nativeOnionVersion is the first lnd with SendOnionMessage.
var nativeOnionVersion = rpcclient.Version{Major: 0, Minor: 21}

// payAsyncArgs is payasync's checked command line.
type payAsyncArgs struct {
	lnd rpcclient.Config
	req asyncsend.Request

	// feeLimitSet says --fee_limit_sat was given; otherwise the limit
	// is lncli's default for the amount, known once lnd decoded the
	// invoice.
	feeLimitSet bool
}

func payAsyncFlags() []cli.Flag {
	return []cli.Flag{
		cli.StringFlag{
			Name:  "lnddir",
			Value: defaultLndDir,
			Usage: "the sender lnd's directory; its TLS " +
				"certificate and admin macaroon are found " +
				"inside it unless --lnd.tlscertpath or " +
				"--lnd.macaroonpath say otherwise",
		},
		cli.StringFlag{
			Name:  "lnd.rpcserver",
			Value: defaultLndRPCServer,
			Usage: "host:port of the sender lnd's gRPC API",
		},
		cli.StringFlag{
			Name: "lnd.tlscertpath",
			Usage: "lnd's TLS certificate " +
				"(default <lnddir>/tls.cert)",
		},
		cli.StringFlag{
			Name: "lnd.macaroonpath",
			Usage: "lnd macaroon (default <lnddir>/data/chain/" +
				"bitcoin/<network>/admin.macaroon); it needs " +
				"info:read, peers:read and offchain:read/write",
		},
		cli.StringFlag{
			Name:  "pay_req",
			Usage: "the BOLT 11 invoice to pay",
		},
		cli.StringFlag{
			Name: "dest",
			Usage: "keysend instead: the recipient's node key " +
				"(hex, 33 bytes)",
		},
		cli.Int64Flag{
			Name: "amt",
			Usage: "satoshis to keysend, or to pay an invoice " +
				"that names no amount",
		},
		cli.StringSliceFlag{
			Name: "recipient_path",
			Usage: "a blinded message path of the recipient " +
				"(hex of the BOLT 4 blinded_path, as the " +
				"recipient's holdd prints it); repeat for " +
				"several (required)",
		},
		cli.Uint64Flag{
			Name: "outgoing_chan_id",
			Usage: "pay only out of this channel (the one to " +
				"the LSP)",
		},
		cli.Int64Flag{
			Name: "fee_limit_sat",
			Usage: "most fee to pay, in satoshis (default as " +
				"lncli: the amount up to 1000 sat, else 5%)",
		},
		cli.DurationFlag{
			Name:  "timeout",
			Value: defaultPayTimeout,
			Usage: "how long lnd may look for a route, in whole " +
				"seconds; a held HTLC stays in flight anyway",
		},
		cli.Int64Flag{
			Name: "cltv_limit",
			Usage: "most blocks the route may lock the funds " +
				"(default lnd's maximum)",
		},
		cli.IntFlag{
			Name:  "messages",
			Value: asyncsend.DefaultMinMessages,
			Usage: "held_htlc_available messages to send per held " +
				"HTLC, each with its own release path as " +
				"reply path (at most one per release path)",
		},
	}
}

func payAsyncCommand(e *env) cli.Command {
	return payAsyncCommandWith(e, runPayAsync)
}

// payAsyncCommandWith builds the command around run, so tests can check
// the parsed command line without an lnd.
func payAsyncCommandWith(e *env,
	run func(*env, *payAsyncArgs) error) cli.Command {

	return cli.Command{
		Name: "payasync",
		Usage: "Pay an offline recipient: the LSP holds the HTLC " +
			"until the recipient releases it (sender role).",
		Description: "Talks to the SENDER's lnd, not to holdd. " +
			"Subscribes to lnd's custom messages, greets the " +
			"LSP (release_paths_request 48007, answered by " +
			"48009: a holdd LSP holds HTLCs only for senders " +
			"that did), pays with the " +
			"hold_htlc record (75537) on the first hop, waits " +
			"for the release paths the LSP's holdd sends " +
			"(message 48001; asked for again with 48007 when " +
			"they do not come) and sends held_htlc_available " +
			"onion messages to the recipient's paths, each with " +
			"a release path as reply path. Prints one JSON line " +
			"per step (stage, time, details; bytes as hex) and " +
			"a summary when lnd reports the payment's end; " +
			"exits non-zero if it failed. Interrupting leaves " +
			"the payment in flight in lnd.",
		Flags: payAsyncFlags(),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			args, err := parsePayAsync(c)
			if err != nil {
				return err
			}
			return run(e, args)
		},
	}
}

// lndNetwork checks --network, which names lnd's macaroon directory.
func lndNetwork(c *cli.Context) (string, error) {
	network := strings.ToLower(c.GlobalString("network"))
	for _, n := range networks {
		if n == network {
			return network, nil
		}
	}
	return "", fmt.Errorf("%w: --network %q is not one of %s", errUsage,
		c.GlobalString("network"), strings.Join(networks, ", "))
}

func parsePayAsync(c *cli.Context) (*payAsyncArgs, error) {
	network, err := lndNetwork(c)
	if err != nil {
		return nil, err
	}
	lndDir := cleanPath(c.String("lnddir"))
	args := &payAsyncArgs{lnd: rpcclient.Config{
		Host:        c.String("lnd.rpcserver"),
		TLSCertPath: filepath.Join(lndDir, "tls.cert"),
		MacaroonPath: filepath.Join(lndDir, "data", "chain",
			"bitcoin", network, "admin.macaroon"),
		Network:         network,
		SkipSignerCheck: true,
	}}
	if p := c.String("lnd.tlscertpath"); p != "" {
		args.lnd.TLSCertPath = cleanPath(p)
	}
	if p := c.String("lnd.macaroonpath"); p != "" {
		args.lnd.MacaroonPath = cleanPath(p)
	}

	req := &args.req
	req.PaymentRequest = strings.TrimSpace(c.String("pay_req"))
	dest := c.String("dest")
	switch {
	case req.PaymentRequest == "" && dest == "":
		return nil, fmt.Errorf("%w: payasync needs --pay_req, or "+
			"--dest and --amt for keysend", errUsage)

	case req.PaymentRequest != "" && dest != "":
		return nil, fmt.Errorf("%w: give --pay_req or --dest, not "+
			"both", errUsage)

	case dest != "":
		raw, err := hex.DecodeString(dest)
		if err == nil && len(raw) == btcec.PubKeyBytesLenCompressed {
			req.Dest, err = btcec.ParsePubKey(raw)
		}
		if err != nil || req.Dest == nil {
			return nil, fmt.Errorf("%w: --dest %q is not a hex "+
				"compressed public key", errUsage, dest)
		}
		if c.Int64("amt") <= 0 {
			return nil, fmt.Errorf("%w: keysend needs --amt > 0",
				errUsage)
		}
	}
	req.AmtSat = c.Int64("amt")
	if req.AmtSat < 0 {
		return nil, fmt.Errorf("%w: --amt %d is negative", errUsage,
			req.AmtSat)
	}

	for i, s := range c.StringSlice("recipient_path") {
		p, err := parseBlindedPathHex(s)
		if err != nil {
			return nil, fmt.Errorf("%w: --recipient_path %d: %w",
				errUsage, i+1, err)
		}
		req.RecipientPaths = append(req.RecipientPaths, p)
	}
	if len(req.RecipientPaths) == 0 {
		return nil, fmt.Errorf("%w: payasync needs at least one "+
			"--recipient_path", errUsage)
	}

	req.OutgoingChanID = c.Uint64("outgoing_chan_id")
	if c.IsSet("fee_limit_sat") {
		args.feeLimitSet = true
		req.FeeLimitSat = c.Int64("fee_limit_sat")
		if req.FeeLimitSat < 0 {
			return nil, fmt.Errorf("%w: --fee_limit_sat %d is "+
				"negative", errUsage, req.FeeLimitSat)
		}
	}

	timeout := c.Duration("timeout")
	if timeout <= 0 || timeout%time.Second != 0 ||
		timeout/time.Second > math.MaxInt32 {

		return nil, fmt.Errorf("%w: --timeout %v must be a positive "+
			"whole number of seconds", errUsage, timeout)
	}
	req.TimeoutSeconds = int32(timeout / time.Second)

	cltv := c.Int64("cltv_limit")
	if cltv < 0 || cltv > math.MaxInt32 {
		return nil, fmt.Errorf("%w: --cltv_limit %d is out of range",
			errUsage, cltv)
	}
	req.CltvLimit = int32(cltv)

	req.MinMessages = c.Int("messages")
	if req.MinMessages < 1 {
		return nil, fmt.Errorf("%w: --messages %d must be at least 1",
			errUsage, req.MinMessages)
	}
	return args, nil
}

// parseBlindedPathHex reads exactly one encoded blinded path.
func parseBlindedPathHex(s string) (*onionmsg.BlindedPath, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not hex: %w", err)
	}
	r := bytes.NewReader(raw)
	p, err := onionmsg.DecodeBlindedPath(r)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the path", r.Len())
	}
	return p, nil
}

// runPayAsync dials the sender's lnd and makes the payment.
func runPayAsync(e *env, args *payAsyncArgs) error {
	client, err := rpcclient.Dial(e.ctx, args.lnd)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()

	if !args.feeLimitSet {
		args.req.FeeLimitSat, err = defaultFeeLimit(e, client.Lightning,
			&args.req)
		if err != nil {
			return err
		}
	}

	payer, err := asyncsend.New(asyncsend.Config{
		Messages: client.Lightning,
		Router:   client.Router,
		LSP:      client.Lightning,
		NewMessenger: asyncsend.OnionMessengers(onionsend.Config{
			Lightning: client.Lightning,
			Self:      client.IdentityKey,
			Native:    !client.Version.Less(nativeOnionVersion),
		}),
		Clock: e.clock,
	})
	if err != nil {
		return err
	}

	var printErr error
	res, err := payer.Pay(e.ctx, &args.req, func(p asyncsend.Progress) {
		if printErr == nil {
			printErr = printPayProgress(e.out, p)
		}
	})
	if printErr != nil {
		return printErr
	}
	return reportPayOutcome(e, res, err)
}

// payReqDecoder is the part of lnd that reads an invoice's amount.
type payReqDecoder interface {
	DecodePayReq(ctx context.Context, in *lnrpc.PayReqString,
		opts ...grpc.CallOption) (*lnrpc.PayReq, error)
}

// defaultFeeLimit is lncli's default fee limit for the payment's amount.
func defaultFeeLimit(e *env, lnd payReqDecoder,
	req *asyncsend.Request) (int64, error) {

	amt := req.AmtSat
	if req.PaymentRequest != "" {
		pr, err := lnd.DecodePayReq(e.ctx,
			&lnrpc.PayReqString{PayReq: req.PaymentRequest})
		if err != nil {
			return 0, fmt.Errorf("decode --pay_req: %w", err)
		}
		if pr.NumSatoshis > 0 {
			amt = pr.NumSatoshis
		}
	}
	limit := lnwallet.DefaultRoutingFeeLimitForAmount(
		lnwire.NewMSatFromSatoshis(btcutil.Amount(amt)),
	)
	return int64(limit.ToSatoshis()), nil
}

// payProgressLine is one progress line; the fields a stage does not have
// are left out.
type payProgressLine struct {
	Stage       string `json:"stage"`
	Time        int64  `json:"time"`
	PaymentHash string `json:"payment_hash,omitempty"`

	Attempts *int `json:"attempts,omitempty"`

	LSP          string  `json:"lsp,omitempty"`
	ChanID       *uint64 `json:"chan_id,omitempty"`
	HtlcID       *uint64 `json:"htlc_id,omitempty"`
	AmountMsat   *uint64 `json:"amount_msat,omitempty"`
	ReleasePaths *int    `json:"release_paths,omitempty"`
	ExpiresAt    *int64  `json:"expires_at,omitempty"`

	Message       *int   `json:"message,omitempty"`
	RecipientPath *int   `json:"recipient_path,omitempty"`
	ReleasePath   *int   `json:"release_path,omitempty"`
	Peer          string `json:"peer,omitempty"`
	Intro         string `json:"intro,omitempty"`
	ViaLSP        *bool  `json:"via_lsp,omitempty"`
	Error         string `json:"error,omitempty"`

	Preimage      string `json:"preimage,omitempty"`
	FeeMsat       *int64 `json:"fee_msat,omitempty"`
	FailureReason string `json:"failure_reason,omitempty"`

	Note string `json:"note,omitempty"`
}

func payPtr[T any](v T) *T { return &v }

func payHashHex(h lntypes.Hash) string {
	if h == (lntypes.Hash{}) {
		return ""
	}
	return hex.EncodeToString(h[:])
}

func printPayProgress(w io.Writer, p asyncsend.Progress) error {
	l := payProgressLine{
		Stage:       string(p.Stage),
		Time:        p.Time.Unix(),
		PaymentHash: payHashHex(p.PaymentHash),
	}
	switch p.Stage {
	case asyncsend.StagePaymentInFlight:
		l.Attempts = payPtr(p.Attempts)

	case asyncsend.StageHeld:
		h := p.Held
		l.LSP = hex.EncodeToString(h.LSP[:])
		l.ChanID, l.HtlcID = payPtr(h.ChanID), payPtr(h.HtlcID)
		l.AmountMsat = payPtr(h.AmountMsat)
		l.ReleasePaths = payPtr(h.Paths)
		l.ExpiresAt = payPtr(h.ExpiresAt.Unix())

	case asyncsend.StageMessageSent, asyncsend.StageMessageFailed:
		m := p.Message
		l.ChanID, l.HtlcID = payPtr(m.ChanID), payPtr(m.HtlcID)
		l.Message = payPtr(m.Index)
		l.RecipientPath = payPtr(m.RecipientPath)
		l.ReleasePath = payPtr(m.ReleasePath)
		if m.Route.Intro != (route.Vertex{}) {
			l.Intro = hex.EncodeToString(m.Route.Intro[:])
		}
		if m.Route.Peer != (route.Vertex{}) {
			l.Peer = hex.EncodeToString(m.Route.Peer[:])
			l.ViaLSP = payPtr(m.Route.Via)
		}
		if m.Err != nil {
			l.Error = m.Err.Error()
		}

	case asyncsend.StageSucceeded:
		l.Preimage = hex.EncodeToString(p.Preimage[:])
		l.FeeMsat = payPtr(p.FeeMsat)

	case asyncsend.StageFailed:
		l.FailureReason = p.FailureReason.String()
	}
	return printPayLine(w, l)
}

func printPayLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// payHeldJSON is one held HTLC in the summary.
type payHeldJSON struct {
	LSP          string `json:"lsp"`
	ChanID       uint64 `json:"chan_id"`
	HtlcID       uint64 `json:"htlc_id"`
	AmountMsat   uint64 `json:"amount_msat"`
	ReleasePaths int    `json:"release_paths"`
	ExpiresAt    int64  `json:"expires_at"`
}

// paySummary is printed when the payment ends.
type paySummary struct {
	PaymentHash       string         `json:"payment_hash"`
	Status            string         `json:"status"`
	Preimage          string         `json:"preimage,omitempty"`
	ValueMsat         int64          `json:"value_msat"`
	FeeMsat           int64          `json:"fee_msat"`
	FailureReason     string         `json:"failure_reason,omitempty"`
	Held              []payHeldJSON  `json:"held"`
	MessagesSent      int            `json:"messages_sent"`
	MessagesFailed    int            `json:"messages_failed"`
	IgnoredDeliveries map[string]int `json:"ignored_deliveries"`
	SubscriptionDrops int            `json:"subscription_drops"`
}

func summarizePay(res *asyncsend.Result) paySummary {
	s := paySummary{
		PaymentHash:    hex.EncodeToString(res.PaymentHash[:]),
		Status:         res.Status.String(),
		ValueMsat:      res.ValueMsat,
		FeeMsat:        res.FeeMsat,
		Held:           []payHeldJSON{},
		MessagesSent:   res.MessagesSent,
		MessagesFailed: res.MessagesFailed,
		IgnoredDeliveries: map[string]int{
			"undecodable":   res.Ignored.Undecodable,
			"other_payment": res.Ignored.OtherPayment,
			"not_first_hop": res.Ignored.NotFirstHop,
			"duplicate":     res.Ignored.Duplicate,
			"expired":       res.Ignored.Expired,
			"overflow":      res.Ignored.Overflow,
		},
		SubscriptionDrops: res.SubscriptionDrops,
	}
	if res.Succeeded() {
		s.Preimage = hex.EncodeToString(res.Preimage[:])
	}
	if res.Status == lnrpc.Payment_FAILED {
		s.FailureReason = res.FailureReason.String()
	}
	for _, h := range res.Held {
		s.Held = append(s.Held, payHeldJSON{
			LSP:          hex.EncodeToString(h.LSP[:]),
			ChanID:       h.ChanID,
			HtlcID:       h.HtlcID,
			AmountMsat:   h.AmountMsat,
			ReleasePaths: h.Paths,
			ExpiresAt:    h.ExpiresAt.Unix(),
		})
	}
	return s
}

// payFollowHint says how to follow a payment holdcli stops watching.
func payFollowHint(hash lntypes.Hash) string {
	if hash == (lntypes.Hash{}) {
		return "lncli listpayments --include_incomplete"
	}
	return "lncli trackpayment " + hex.EncodeToString(hash[:])
}

// reportPayOutcome prints how Pay ended and returns the command's error:
// nil only for a payment that succeeded.
func reportPayOutcome(e *env, res *asyncsend.Result, err error) error {
	switch {
	case res != nil && (errors.Is(err, asyncsend.ErrInterrupted) ||
		errors.Is(err, asyncsend.ErrStreamEnded)):

		stage := "interrupted"
		if !errors.Is(err, asyncsend.ErrInterrupted) {
			stage = "stream_ended"
		}
		hint := payFollowHint(res.PaymentHash)
		perr := printPayLine(e.out, payProgressLine{
			Stage:       stage,
			Time:        e.clock.Now().Unix(),
			PaymentHash: payHashHex(res.PaymentHash),
			Note: "the payment stays in flight in lnd; " +
				"follow it with: " + hint,
		})
		if perr != nil {
			return perr
		}
		return fmt.Errorf("%w; follow it with: %s", err, hint)

	case err != nil:
		return err
	}

	compact, err := json.Marshal(summarizePay(res))
	if err != nil {
		return err
	}
	if err := printIndented(e.out, compact); err != nil {
		return err
	}
	if !res.Succeeded() {
		return fmt.Errorf("payment %v failed: %v", res.PaymentHash,
			res.FailureReason)
	}
	return nil
}
