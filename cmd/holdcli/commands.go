package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/plugin"
	"github.com/urfave/cli"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// commands lists every command, one per holdrpc method, in the order help
// and docs/cli.md show them.
func commands(e *env) []cli.Command {
	return []cli.Command{
		getInfoCommand(e),
		listHeldCommand(e),
		getHeldCommand(e),
		getReleasePathsCommand(e),
		releaseHeldCommand(e),
		failHeldCommand(e),
		getPolicyCommand(e),
		setPolicyCommand(e),
		subscribeEventsCommand(e),
		addReceivePathsCommand(e),
		listReceivePathsCommand(e),
		revokeReceivePathCommand(e),
		subscribeReceiveEventsCommand(e),
		listMailboxCommand(e),
		unregisterMailboxCommand(e),
		addAsyncRecipientCommand(e),
		removeAsyncRecipientCommand(e),
		listAsyncRecipientsCommand(e),
		getOfferCommand(e),
		payAsyncCommand(e),
		decodeCommand(e),
		generateManualCommand(e),
	}
}

// withClient dials holdd for one call and closes the connection after.
// Actions validate their arguments before calling it, so a bad command line
// never dials.
func withClient(c *cli.Context,
	call func(holdrpc.HoldClient) error) error {

	client, cleanup, err := dial(c)
	if err != nil {
		return err
	}
	defer cleanup()
	return call(client)
}

// noArgs refuses positional arguments for commands that take none, so a
// mistyped flag is not silently ignored.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("%w: %s takes no arguments, got %q", errUsage,
			c.Command.Name, strings.Join(c.Args(), " "))
	}
	return nil
}

func getInfoCommand(e *env) cli.Command {
	return cli.Command{
		Name:  "getinfo",
		Usage: "Show holdd's connections to lnd and its counters.",
		Description: "Prints holdd's version and network, lnd's version " +
			"and identity key, holdd's node key, whether the " +
			"HtlcInterceptor stream and the peer link are up, " +
			"the HTLCs held now, the best block height and the " +
			"release and decision counters.",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.GetInfo(e.ctx,
					&holdrpc.GetInfoRequest{})
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

func listHeldCommand(e *env) cli.Command {
	states := make([]string, len(plugin.AllStates))
	for i, s := range plugin.AllStates {
		states[i] = string(s)
	}
	return cli.Command{
		Name:  "listheld",
		Usage: "List the HTLCs holdd holds or has held.",
		Description: "Prints {\"htlcs\": [...]}. Each HTLC carries the " +
			"API's fields plus derived ones: amount_sat (the " +
			"incoming amount in whole satoshis), age (time since " +
			"holdd took it), blocks_to_failback (failback_height " +
			"minus the current height; null once it is no longer " +
			"held or released) and peer_alias (the incoming " +
			"peer's alias).",
		Flags: []cli.Flag{
			cli.StringSliceFlag{
				Name: "state",
				Usage: "only HTLCs in this state (" +
					strings.Join(states, ", ") +
					"); repeat for several; default all",
			},
			cli.StringFlag{
				Name: "peer",
				Usage: "only HTLCs from this incoming peer " +
					"(hex compressed public key)",
			},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			req, err := parseListHeld(c)
			if err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.ListHeld(e.ctx, req)
				if err != nil {
					return err
				}
				return printHTLCList(e.out, resp.Htlcs,
					e.clock.Now())
			})
		},
	}
}

func parseListHeld(c *cli.Context) (*holdrpc.ListHeldRequest, error) {
	req := &holdrpc.ListHeldRequest{}
	for _, s := range c.StringSlice("state") {
		s = strings.ToLower(strings.TrimSpace(s))
		if !plugin.HoldState(s).Valid() {
			return nil, fmt.Errorf("%w: --state %q is not one of "+
				"held, released, resumed, failed, gone",
				errUsage, s)
		}
		req.States = append(req.States, s)
	}
	if p := c.String("peer"); p != "" {
		raw, err := hex.DecodeString(p)
		if err == nil {
			_, err = btcec.ParsePubKey(raw)
		}
		if err != nil || len(raw) != btcec.PubKeyBytesLenCompressed {
			return nil, fmt.Errorf("%w: --peer %q is not a hex "+
				"compressed public key", errUsage, p)
		}
		req.Peer = raw
	}
	return req, nil
}

// circuitKeyFlags let a command name an HTLC by flags instead of the
// chan_id:htlc_id argument, as lncli's --chan_id does.
func circuitKeyFlags() []cli.Flag {
	return []cli.Flag{
		cli.Uint64Flag{
			Name: "chan_id",
			Usage: "the incoming channel's short channel id " +
				"(with --htlc_id, instead of the argument)",
		},
		cli.Uint64Flag{
			Name: "htlc_id",
			Usage: "the HTLC's index on the incoming channel " +
				"(with --chan_id, instead of the argument)",
		},
	}
}

const circuitKeyArgsUsage = "chan_id:htlc_id"

// parseCircuitKey reads the HTLC's incoming circuit key from the single
// positional argument or from --chan_id and --htlc_id.
func parseCircuitKey(c *cli.Context) (*holdrpc.CircuitKey, error) {
	args := c.Args()
	chanSet, htlcSet := c.IsSet("chan_id"), c.IsSet("htlc_id")
	switch {
	case len(args) > 1:
		return nil, fmt.Errorf("%w: %s takes one chan_id:htlc_id "+
			"argument, got %q", errUsage, c.Command.Name,
			strings.Join(args, " "))

	case len(args) == 1 && (chanSet || htlcSet):
		return nil, fmt.Errorf("%w: give the HTLC either as "+
			"chan_id:htlc_id or with --chan_id and --htlc_id, "+
			"not both", errUsage)

	case len(args) == 1:
		key, err := plugin.ParseCircuitKey(args[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		return &holdrpc.CircuitKey{ChanId: key.ChanID,
			HtlcId: key.HtlcID}, nil

	case chanSet && htlcSet:
		return &holdrpc.CircuitKey{ChanId: c.Uint64("chan_id"),
			HtlcId: c.Uint64("htlc_id")}, nil

	case chanSet || htlcSet:
		return nil, fmt.Errorf("%w: --chan_id and --htlc_id must be "+
			"given together", errUsage)

	default:
		return nil, fmt.Errorf("%w: %s needs the HTLC's incoming "+
			"circuit key as chan_id:htlc_id", errUsage,
			c.Command.Name)
	}
}

// keyedCommand is a command that names one HTLC and prints one answer.
// check, if set, validates the rest of the command line before dialing.
func keyedCommand(e *env, cmd cli.Command, check func(*cli.Context) error,
	call func(*cli.Context, holdrpc.HoldClient, *holdrpc.CircuitKey) (
		proto.Message, error)) cli.Command {

	cmd.ArgsUsage = circuitKeyArgsUsage
	cmd.Flags = append(circuitKeyFlags(), cmd.Flags...)
	cmd.Action = func(c *cli.Context) error {
		key, err := parseCircuitKey(c)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		return withClient(c, func(client holdrpc.HoldClient) error {
			resp, err := call(c, client, key)
			if err != nil {
				return err
			}
			return printProto(e.out, resp)
		})
	}
	return cmd
}

func getHeldCommand(e *env) cli.Command {
	return keyedCommand(e, cli.Command{
		Name:  "getheld",
		Usage: "Show one HTLC by its incoming circuit key.",
	}, nil, func(_ *cli.Context, client holdrpc.HoldClient,
		key *holdrpc.CircuitKey) (proto.Message, error) {

		return client.GetHeld(e.ctx,
			&holdrpc.GetHeldRequest{Incoming: key})
	})
}

func getReleasePathsCommand(e *env) cli.Command {
	return keyedCommand(e, cli.Command{
		Name:  "getreleasepaths",
		Usage: "Show the release paths minted for a held HTLC.",
		Description: "Prints the HTLC's blinded release paths (BOLT 4 " +
			"wire form, hex), when holdd stops accepting releases " +
			"over them, and the custom message holdd sends the " +
			"sender to deliver them. Needs an admin macaroon: a " +
			"release path lets its holder release the HTLC.",
	}, nil, func(_ *cli.Context, client holdrpc.HoldClient,
		key *holdrpc.CircuitKey) (proto.Message, error) {

		return client.GetReleasePaths(e.ctx,
			&holdrpc.GetReleasePathsRequest{Incoming: key})
	})
}

// reasonFlag is required by the commands that act on an HTLC by hand, so
// holdd's log always says why an operator intervened.
var reasonFlag = cli.StringFlag{
	Name:  "reason",
	Usage: "why you act on the HTLC by hand; holdd logs it (required)",
}

func parseReason(c *cli.Context) (string, error) {
	reason := strings.TrimSpace(c.String("reason"))
	if reason == "" {
		return "", fmt.Errorf("%w: %s needs --reason: say why, it is "+
			"logged", errUsage, c.Command.Name)
	}
	return reason, nil
}

// reasonedCommand is a keyed command that also requires --reason.
func reasonedCommand(e *env, cmd cli.Command,
	call func(holdrpc.HoldClient, *holdrpc.CircuitKey, string) (
		proto.Message, error)) cli.Command {

	cmd.Flags = []cli.Flag{reasonFlag}
	check := func(c *cli.Context) error {
		_, err := parseReason(c)
		return err
	}
	return keyedCommand(e, cmd, check, func(c *cli.Context,
		client holdrpc.HoldClient, key *holdrpc.CircuitKey) (
		proto.Message, error) {

		reason, err := parseReason(c)
		if err != nil {
			return nil, err
		}
		return call(client, key, reason)
	})
}

func releaseHeldCommand(e *env) cli.Command {
	return reasonedCommand(e, cli.Command{
		Name:  "releaseheld",
		Usage: "Release a held HTLC by hand.",
		Description: "Releases the HTLC as if its release_held_htlc " +
			"had arrived, so holdd resumes it towards the " +
			"recipient. Prints the outcome and the HTLC.",
	}, func(client holdrpc.HoldClient, key *holdrpc.CircuitKey,
		reason string) (proto.Message, error) {

		return client.ReleaseHeld(e.ctx, &holdrpc.ReleaseHeldRequest{
			Incoming: key,
			Reason:   reason,
		})
	})
}

func failHeldCommand(e *env) cli.Command {
	return reasonedCommand(e, cli.Command{
		Name:  "failheld",
		Usage: "Fail a held HTLC back to its sender by hand.",
		Description: "Fails the HTLC back on its incoming channel now " +
			"instead of waiting for a release or the fail-back " +
			"height. Prints the HTLC.",
	}, func(client holdrpc.HoldClient, key *holdrpc.CircuitKey,
		reason string) (proto.Message, error) {

		return client.FailHeld(e.ctx, &holdrpc.FailHeldRequest{
			Incoming: key,
			Reason:   reason,
		})
	})
}

func getPolicyCommand(e *env) cli.Command {
	return cli.Command{
		Name:  "getpolicy",
		Usage: "Show the hold policy in force.",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.GetPolicy(e.ctx,
					&holdrpc.GetPolicyRequest{})
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

// policyFlags are setpolicy's flags; each names the holdd.conf hold.*
// option it overrides.
func policyFlags() []cli.Flag {
	return []cli.Flag{
		cli.IntFlag{
			Name: "failbackmargin",
			Usage: "fail a held HTLC back this many blocks before " +
				"lnd's auto_fail_height",
		},
		cli.DurationFlag{
			Name: "maxholdtime",
			Usage: "fail a held HTLC back after this long, in " +
				"whole seconds (0 = no limit)",
		},
		cli.UintFlag{
			Name:  "maxperpeer",
			Usage: "most HTLCs one incoming peer may have held (0 = no cap)",
		},
		cli.Uint64Flag{
			Name:  "maxperpeermsat",
			Usage: "most msat one incoming peer may have held (0 = no cap)",
		},
		cli.UintFlag{
			Name:  "maxtotal",
			Usage: "most HTLCs held at once (0 = no cap)",
		},
		cli.Uint64Flag{
			Name:  "maxtotalmsat",
			Usage: "most msat held at once (0 = no cap)",
		},
		cli.StringSliceFlag{
			Name: "holdtype",
			Usage: "update_add_htlc TLV type that asks for a hold; " +
				"repeat for several; replaces the whole list",
		},
		cli.DurationFlag{
			Name: "pendingreleasettl",
			Usage: "how long a release that arrives before its " +
				"HTLC is kept, in whole seconds",
		},
		cli.BoolFlag{
			Name: "reset",
			Usage: "drop the policy set through the API and go " +
				"back to holdd.conf's; takes no other flag",
		},
	}
}

func setPolicyCommand(e *env) cli.Command {
	return cli.Command{
		Name:  "setpolicy",
		Usage: "Change the hold policy.",
		Description: "Reads the policy in force, changes only the " +
			"settings given as flags and sends the result; holdd " +
			"persists it, applies it to decisions from now on and " +
			"keeps it across restarts. Prints the new policy.",
		Flags: policyFlags(),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if err := checkPolicyFlags(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				req := &holdrpc.SetPolicyRequest{Reset_: true}
				if !c.Bool("reset") {
					cur, err := client.GetPolicy(e.ctx,
						&holdrpc.GetPolicyRequest{})
					if err != nil {
						return err
					}
					p, err := applyPolicyFlags(c, cur)
					if err != nil {
						return err
					}
					req = &holdrpc.SetPolicyRequest{Policy: p}
				}
				resp, err := client.SetPolicy(e.ctx, req)
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

// checkPolicyFlags validates setpolicy's flags without a policy to apply
// them to, so errors come before dialing.
func checkPolicyFlags(c *cli.Context) error {
	var set []string
	for _, f := range policyFlags() {
		if name := f.GetName(); name != "reset" && c.IsSet(name) {
			set = append(set, name)
		}
	}
	switch {
	case c.Bool("reset") && len(set) > 0:
		return fmt.Errorf("%w: --reset takes no other flag, got --%s",
			errUsage, strings.Join(set, " --"))
	case c.Bool("reset"):
		return nil
	case len(set) == 0:
		return fmt.Errorf("%w: setpolicy needs at least one flag to "+
			"change (or --reset)", errUsage)
	}
	_, err := applyPolicyFlags(c, &holdrpc.Policy{})
	return err
}

// applyPolicyFlags returns a copy of cur with the flags given applied.
func applyPolicyFlags(c *cli.Context, cur *holdrpc.Policy) (*holdrpc.Policy,
	error) {

	p := proto.Clone(cur).(*holdrpc.Policy)

	if c.IsSet("failbackmargin") {
		m := c.Int("failbackmargin")
		if m < math.MinInt32 || m > math.MaxInt32 {
			return nil, fmt.Errorf("%w: --failbackmargin %d is out "+
				"of range", errUsage, m)
		}
		p.FailbackMargin = int32(m)
	}
	if c.IsSet("maxholdtime") {
		secs, err := wholeSeconds(c, "maxholdtime")
		if err != nil {
			return nil, err
		}
		p.MaxHoldTimeSeconds = secs
	}
	if c.IsSet("maxperpeer") {
		n, err := uint32Flag(c, "maxperpeer")
		if err != nil {
			return nil, err
		}
		p.MaxHeldPerPeer = n
	}
	if c.IsSet("maxperpeermsat") {
		p.MaxHeldMsatPerPeer = c.Uint64("maxperpeermsat")
	}
	if c.IsSet("maxtotal") {
		n, err := uint32Flag(c, "maxtotal")
		if err != nil {
			return nil, err
		}
		p.MaxHeldTotal = n
	}
	if c.IsSet("maxtotalmsat") {
		p.MaxHeldMsatTotal = c.Uint64("maxtotalmsat")
	}
	if c.IsSet("holdtype") {
		p.HoldTypes = nil
		for _, s := range c.StringSlice("holdtype") {
			t, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: --holdtype %q is not "+
					"a TLV type", errUsage, s)
			}
			p.HoldTypes = append(p.HoldTypes, t)
		}
	}
	if c.IsSet("pendingreleasettl") {
		secs, err := wholeSeconds(c, "pendingreleasettl")
		if err != nil {
			return nil, err
		}
		p.PendingReleaseTtlSeconds = secs
	}
	return p, nil
}

// wholeSeconds reads a duration flag the API carries in seconds; a
// fraction would be cut silently, so it is refused.
func wholeSeconds(c *cli.Context, name string) (int64, error) {
	d := c.Duration(name)
	if d < 0 || d%time.Second != 0 {
		return 0, fmt.Errorf("%w: --%s %v must be a non-negative whole "+
			"number of seconds", errUsage, name, d)
	}
	return int64(d / time.Second), nil
}

func uint32Flag(c *cli.Context, name string) (uint32, error) {
	n := c.Uint(name)
	if uint64(n) > math.MaxUint32 {
		return 0, fmt.Errorf("%w: --%s %d is out of range", errUsage,
			name, n)
	}
	return uint32(n), nil
}

func subscribeEventsCommand(e *env) cli.Command {
	return cli.Command{
		Name:  "subscribeevents",
		Usage: "Print hold events as they happen, one JSON line each.",
		Description: "Streams held, released, resumed and failed " +
			"events until interrupted (Ctrl-C) or holdd ends the " +
			"stream.",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				return streamEvents(e, client)
			})
		},
	}
}

func streamEvents(e *env, client holdrpc.HoldClient) error {
	stream, err := client.SubscribeHoldEvents(e.ctx,
		&holdrpc.SubscribeHoldEventsRequest{})
	if err != nil {
		return err
	}
	return printStream(e, stream.Recv)
}

// printStream prints a server stream's messages, one JSON line each, until
// the stream ends or the user interrupts.
func printStream[T proto.Message](e *env, recv func() (T, error)) error {
	for {
		ev, err := recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil

		// An interrupt is how the user ends the stream, not a failure.
		case err != nil && e.ctx.Err() != nil &&
			status.Code(err) == codes.Canceled:

			return nil

		case err != nil:
			return err
		}
		if err := printProtoLine(e.out, ev); err != nil {
			return err
		}
	}
}

func generateManualCommand(e *env) cli.Command {
	return cli.Command{
		Name:   "generatemanual",
		Usage:  "Print the Markdown command reference (docs/cli.md).",
		Hidden: true,
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			_, err := io.WriteString(e.out, manual(c.App))
			return err
		},
	}
}
