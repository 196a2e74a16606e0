//go:build itest

package itest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultTimeout bounds every wait in the harness unless a caller passes its
// own.
const DefaultTimeout = 60 * time.Second

// pollInterval is how often a wait re-checks its condition.
const pollInterval = 100 * time.Millisecond

// ErrTimeout is wrapped by every wait that gives up.
var ErrTimeout = errors.New("timed out")

// waitFor polls check until it returns true, ctx ends or timeout passes. A
// check error is not fatal (the thing waited for may not be up yet) but the
// last one is reported on timeout. A check that returns a
// permanent error wrapped with errStop ends the wait at once.
func waitFor(ctx context.Context, timeout time.Duration, what string,
	check func(ctx context.Context) (bool, error)) error {

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()

	var lastErr error
	for {
		ok, err := check(ctx)
		switch {
		case err != nil && errors.Is(err, errStop):
			return fmt.Errorf("waiting for %s: %w", what, err)
		case err != nil && ctx.Err() != nil:
			// The deadline cut the check short; the error before
			// it says more about what was missing.
		case err != nil:
			lastErr = err
		case ok:
			return nil
		}

		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w after %v waiting for %s; "+
					"last error: %v", ErrTimeout, timeout,
					what, lastErr)
			}
			return fmt.Errorf("%w after %v waiting for %s",
				ErrTimeout, timeout, what)
		case <-ticker.C:
		}
	}
}

// errStop marks a check error as permanent (e.g. the process died).
var errStop = errors.New("giving up")

// stop wraps err so that waitFor returns at once.
func stop(err error) error {
	return fmt.Errorf("%w: %w", errStop, err)
}
