package main

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/urfave/cli"
)

func addReceivePathsCommand(e *env) cli.Command {
	return cli.Command{
		Name:  "addreceivepaths",
		Usage: "Mint async-receive message paths (recipient role).",
		Description: "Mints blinded message paths that end at this " +
			"node's holdd, for a static invoice's message paths. A " +
			"sender sends held_htlc_available over one; holdd then " +
			"answers release_held_htlc along the sender's reply " +
			"path. Each path's \"path\" field is the BOLT 4 " +
			"blinded_path in hex. Paths from one call cannot be " +
			"linked to each other.",
		Flags: []cli.Flag{
			cli.UintFlag{
				Name:  "count",
				Value: 2,
				Usage: "how many paths to mint (1-16)",
			},
			cli.DurationFlag{
				Name: "expiry",
				Usage: "how long the paths work, e.g. 720h " +
					"(default holdd's recipient.pathexpiry)",
			},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.Duration("expiry") < 0 {
				return fmt.Errorf("%w: --expiry must not be "+
					"negative", errUsage)
			}
			req := &holdrpc.AddReceivePathsRequest{
				Count: uint32(c.Uint("count")),
				ExpirySeconds: int64(c.Duration("expiry") /
					time.Second),
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.AddReceivePaths(e.ctx, req)
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

func listReceivePathsCommand(e *env) cli.Command {
	return cli.Command{
		Name:  "listreceivepaths",
		Usage: "List the async-receive message paths holdd answers on.",
		Flags: []cli.Flag{
			cli.BoolFlag{
				Name:  "all",
				Usage: "include expired and revoked paths",
			},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.ListReceivePaths(e.ctx,
					&holdrpc.ListReceivePathsRequest{
						All: c.Bool("all"),
					})
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

func revokeReceivePathCommand(e *env) cli.Command {
	return cli.Command{
		Name:      "revokereceivepath",
		Usage:     "Stop answering over one async-receive message path.",
		ArgsUsage: "id",
		Description: "id is the path's 8-byte id in hex, as " +
			"listreceivepaths prints it. Payers still using the path " +
			"get no release_held_htlc; their HTLCs fail back at " +
			"their LSP.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("%w: revokereceivepath takes one "+
					"id", errUsage)
			}
			id, err := hex.DecodeString(c.Args().First())
			if err != nil || len(id) != 8 {
				return fmt.Errorf("%w: id %q is not 8 bytes of hex",
					errUsage, c.Args().First())
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.RevokeReceivePath(e.ctx,
					&holdrpc.RevokeReceivePathRequest{Id: id})
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

func subscribeReceiveEventsCommand(e *env) cli.Command {
	return cli.Command{
		Name: "subscribereceiveevents",
		Usage: "Print held_htlc_available messages and holdd's " +
			"answers as they happen, one JSON line each.",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				stream, err := client.SubscribeReceiveEvents(e.ctx,
					&holdrpc.SubscribeReceiveEventsRequest{})
				if err != nil {
					return err
				}
				return printStream(e, stream.Recv)
			})
		},
	}
}
