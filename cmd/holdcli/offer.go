package main

import (
	"fmt"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/urfave/cli"
)

func getOfferCommand(e *env) cli.Command {
	return cli.Command{
		Name: "getoffer",
		Usage: "Print the async offers (lno1...) to publish and their " +
			"state with the static invoice server (recipient role " +
			"with recipient.server).",
		Description: "An offer is usable while this node is offline " +
			"only once it is live: the server persisted its static " +
			"invoice.",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withClient(c, func(client holdrpc.HoldClient) error {
				resp, err := client.GetOffer(e.ctx,
					&holdrpc.GetOfferRequest{})
				if err != nil {
					return err
				}
				for _, o := range resp.Offers {
					state := o.Phase
					if o.Live {
						state += ", live"
					}
					if o.InvoiceExpiresAtUnix != 0 {
						state += fmt.Sprintf(", invoice "+
							"expires %s", time.Unix(
							o.InvoiceExpiresAtUnix,
							0).UTC().Format(
							time.RFC3339))
					}
					offer := o.Offer
					if offer == "" {
						offer = "(no offer yet)"
					}
					fmt.Fprintf(e.out, "slot %d (%s)\n%s\n",
						o.Slot, state, offer)
				}
				return nil
			})
		},
	}
}
