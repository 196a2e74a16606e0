package main

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/urfave/cli"
)

// recipientIDFlag is the --id of the async recipient commands.
var recipientIDFlag = cli.StringFlag{
	Name: "id",
	Usage: "the recipient's id, 1-1024 bytes: hex if it is valid hex, " +
		"else the string's bytes",
}

// parseRecipientID reads --id: hex when it decodes as hex, else the
// string's bytes, so an account name works as is.
func parseRecipientID(c *cli.Context) ([]byte, error) {
	s := c.String("id")
	if s == "" {
		return nil, fmt.Errorf("%w: --id is required", errUsage)
	}
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	return []byte(s), nil
}

func addAsyncRecipientCommand(e *env) cli.Command {
	return cli.Command{
		Name: "addasyncrecipient",
		Usage: "Register an async recipient with the static invoice " +
			"server and print its paths (server role).",
		Description: "Registers (or renews) a recipient and mints " +
			"blinded message paths to this holdd for it, what LDK's " +
			"blinded_paths_for_async_recipient returns. Give the " +
			"\"paths\" (BOLT 4 blinded_paths in hex) to the " +
			"recipient's wallet out of band: it requests offer " +
			"paths over them and leaves its static invoices here.",
		Flags: []cli.Flag{
			recipientIDFlag,
			cli.DurationFlag{
				Name: "expiry",
				Usage: "how long the registration lasts, e.g. " +
					"8760h (default: it never expires)",
			},
			cli.UintFlag{
				Name:  "paths",
				Value: 1,
				Usage: "how many paths to mint (1-8)",
			},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id, err := parseRecipientID(c)
			if err != nil {
				return err
			}
			if c.Duration("expiry") < 0 {
				return fmt.Errorf("%w: --expiry must not be "+
					"negative", errUsage)
			}
			req := &holdrpc.AddAsyncRecipientRequest{
				Id: id,
				ExpirySeconds: uint64(c.Duration("expiry") /
					time.Second),
				PathCount: uint32(c.Uint("paths")),
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.AddAsyncRecipient(e.ctx, req)
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

func removeAsyncRecipientCommand(e *env) cli.Command {
	return cli.Command{
		Name: "removeasyncrecipient",
		Usage: "Remove an async recipient and its static invoices " +
			"(server role).",
		Flags: []cli.Flag{recipientIDFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id, err := parseRecipientID(c)
			if err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.RemoveAsyncRecipient(e.ctx,
					&holdrpc.RemoveAsyncRecipientRequest{Id: id})
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}

func listAsyncRecipientsCommand(e *env) cli.Command {
	return cli.Command{
		Name: "listasyncrecipients",
		Usage: "List the static invoice server's recipients and their " +
			"stored invoices (server role).",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.ListAsyncRecipients(e.ctx,
					&holdrpc.ListAsyncRecipientsRequest{})
				if err != nil {
					return err
				}
				return printProto(e.out, resp)
			})
		},
	}
}
