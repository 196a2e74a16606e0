// Command holdd is the async-payments hold daemon for an lnd LSP: it holds
// HTLCs that carry hold_htlc and releases them on release_held_htlc.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	flags "github.com/jessevdk/go-flags"
)

// Version is holdd's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

func main() {
	cfg, err := loadConfig(os.Args[1:])
	if err != nil {
		var flagErr *flags.Error
		if errors.As(err, &flagErr) && flagErr.Type == flags.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if cfg.ShowVersion {
		fmt.Println("holdd version", Version)
		return
	}

	ctx, cancel := signal.NotifyContext(context.Background(),
		syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "holdd:", err)
		os.Exit(1)
	}
}
