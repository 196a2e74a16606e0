package daemon

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"
)

// lifecycle is one subsystem of the running daemon: a role, the release
// transport, the RPC server, the metrics server, the pruner. The daemon
// builds every subsystem before it starts any, so that each can be handed
// the others it reads; then it starts them in order and stops them in
// reverse.
type lifecycle interface {
	// Name names the subsystem in log lines and errors.
	Name() string

	// Start starts the subsystem's goroutines and returns once it runs.
	// ctx stays live until every subsystem has stopped, unless the
	// daemon is told to stop while it is still starting: then ctx ends
	// at once, so that a start that waits (for lnd, say) returns.
	// fatal reports an error after which the subsystem cannot go on;
	// the daemon then stops every subsystem and exits with it.
	Start(ctx context.Context, fatal func(error)) error

	// Stop ends the subsystem's goroutines and waits for them. It is
	// called once, and only after Start succeeded.
	Stop() error
}

// subsystemError is the error a subsystem failed with, naming it.
type subsystemError struct {
	name string
	err  error
}

func (e *subsystemError) Error() string {
	return fmt.Sprintf("%s: %v", e.name, e.err)
}

func (e *subsystemError) Unwrap() error { return e.err }

// runSubsystems starts subs in order and runs them until ctx ends or one
// of them reports a fatal error, then stops the started ones in reverse
// order. It returns the error a start failed with or the first fatal error,
// each naming its subsystem; nil after a shutdown ctx asked for.
func runSubsystems(ctx context.Context, subs []lifecycle,
	log logrus.FieldLogger) error {

	// The subsystems' context outlives ctx: they stop one by one, in
	// reverse order, not all at once when ctx ends. Only a stop asked
	// for during start-up ends it early, to cut a waiting start short.
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	endLifeEarly := context.AfterFunc(ctx, endLife)

	// One slot per subsystem: each report of the first from each fits,
	// and later ones are dropped, since the first already stops holdd.
	fatals := make(chan *subsystemError, len(subs))
	reporter := func(name string) func(error) {
		return func(err error) {
			select {
			case fatals <- &subsystemError{name: name, err: err}:
			default:
			}
		}
	}

	var (
		started []lifecycle
		err     error
	)
	for _, s := range subs {
		log.Debugf("Starting %s", s.Name())
		if serr := s.Start(life, reporter(s.Name())); serr != nil {
			err = &subsystemError{
				name: s.Name(),
				err:  fmt.Errorf("start: %w", serr),
			}
			log.Errorf("Could not start %s: %v; stopping", s.Name(),
				serr)
			break
		}
		started = append(started, s)
	}
	endLifeEarly()

	if err == nil {
		select {
		case <-ctx.Done():
			log.Info("Shutting down")

		case f := <-fatals:
			log.Errorf("%s failed, shutting down: %v", f.name, f.err)
			err = f
		}
	}

	for i := len(started) - 1; i >= 0; i-- {
		s := started[i]
		log.Debugf("Stopping %s", s.Name())
		if serr := s.Stop(); serr != nil {
			log.Errorf("Stop %s: %v", s.Name(), serr)
		}
	}
	return err
}
