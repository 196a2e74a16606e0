package main

import (
	"encoding/hex"
	"fmt"

	"github.com/holdd/holdd/holdrpc"
	"github.com/urfave/cli"
)

func listMailboxCommand(e *env) cli.Command {
	return cli.Command{
		Name: "listmailbox",
		Usage: "List the mailbox's recipients and the messages it keeps " +
			"for them (mailbox role).",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.ListMailbox(e.ctx,
					&holdrpc.ListMailboxRequest{})
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

func unregisterMailboxCommand(e *env) cli.Command {
	return cli.Command{
		Name:      "unregistermailbox",
		Usage:     "Stop keeping messages for a recipient and drop them.",
		ArgsUsage: "peer",
		Description: "peer is the recipient's node key in hex. Its " +
			"kept messages are deleted; it may register again.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("%w: unregistermailbox takes one "+
					"node key", errUsage)
			}
			peer, err := hex.DecodeString(c.Args().First())
			if err != nil || len(peer) != 33 {
				return fmt.Errorf("%w: %q is not a 33-byte node key "+
					"in hex", errUsage, c.Args().First())
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.UnregisterMailbox(e.ctx,
					&holdrpc.UnregisterMailboxRequest{Peer: peer})
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}
