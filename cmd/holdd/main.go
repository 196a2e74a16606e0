// Command holdd is the async-payments hold daemon for an lnd LSP: it holds
// HTLCs that carry hold_htlc and releases them on release_held_htlc. It
// only parses the command line and runs the daemon package, which owns
// holdd's config, subsystems and their lifecycle.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/holdd/holdd/daemon"
	flags "github.com/jessevdk/go-flags"
)

func main() {
	cfg, err := daemon.LoadConfig(os.Args[1:])
	if err != nil {
		var flagErr *flags.Error
		if errors.As(err, &flagErr) && flagErr.Type == flags.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if cfg.ShowVersion {
		fmt.Println("holdd version", daemon.Version)
		return
	}

	ctx, cancel := signal.NotifyContext(context.Background(),
		syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	if err := daemon.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "holdd:", err)
		os.Exit(1)
	}
}
