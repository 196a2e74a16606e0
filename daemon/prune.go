package daemon

import (
	"context"
	"time"

	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/sirupsen/logrus"
)

// pruneInterval spaces the pruner's runs.
const pruneInterval = time.Hour

// pruner deletes resolved HTLC records older than retention, at start and
// then hourly, so the database does not grow without bound. Active records
// are never pruned.
type pruner struct {
	db        *store.Store
	retention time.Duration
	clock     clock.Clock
	log       logrus.FieldLogger

	goroutines *fn.GoroutineManager
}

func newPruner(db *store.Store, retention time.Duration, clk clock.Clock,
	log logrus.FieldLogger) *pruner {

	return &pruner{
		db:         db,
		retention:  retention,
		clock:      clk,
		log:        log,
		goroutines: fn.NewGoroutineManager(),
	}
}

func (p *pruner) Name() string { return "pruner" }

// Start runs the pruner until Stop. A failed prune is logged and tried
// again at the next run.
func (p *pruner) Start(ctx context.Context, _ func(error)) error {
	if !p.goroutines.Go(ctx, p.run) {
		return ctx.Err()
	}
	return nil
}

// Stop ends the pruner and waits for it.
func (p *pruner) Stop() error {
	p.goroutines.Stop()
	return nil
}

func (p *pruner) run(ctx context.Context) {
	for {
		n, err := p.db.PruneResolved(ctx,
			p.clock.Now().Add(-p.retention))
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.Errorf("Prune resolved HTLCs: %v", err)
		case n > 0:
			p.log.Infof("Pruned %d HTLC records resolved more than "+
				"%v ago", n, p.retention)
		}
		select {
		case <-p.clock.TickAfter(pruneInterval):
		case <-ctx.Done():
			return
		}
	}
}
