package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/holdd/holdd/metrics"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/sirupsen/logrus"
)

// metricsServer serves the Prometheus registry at /metrics.
type metricsServer struct {
	listen string
	srv    *http.Server
	log    logrus.FieldLogger

	goroutines *fn.GoroutineManager
}

func newMetricsServer(listen string, reg *metrics.Metrics,
	log logrus.FieldLogger) *metricsServer {

	mux := http.NewServeMux()
	mux.Handle("/metrics", reg.Handler())
	return &metricsServer{
		listen: listen,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
		},
		log:        log,
		goroutines: fn.NewGoroutineManager(),
	}
}

func (m *metricsServer) Name() string { return "metrics server" }

// Start listens on prometheus.listen and serves; a Serve that fails is
// fatal.
func (m *metricsServer) Start(ctx context.Context, fatal func(error)) error {
	lis, err := net.Listen("tcp", m.listen)
	if err != nil {
		return fmt.Errorf("prometheus.listen %s: %w", m.listen, err)
	}
	ok := m.goroutines.Go(ctx, func(context.Context) {
		err := m.srv.Serve(lis)
		if !errors.Is(err, http.ErrServerClosed) {
			fatal(fmt.Errorf("serve on %s: %w", lis.Addr(), err))
		}
	})
	if !ok {
		_ = lis.Close()
		return ctx.Err()
	}
	m.log.Infof("Prometheus metrics on http://%s/metrics", lis.Addr())
	return nil
}

// Stop closes the listener and open connections: a scrape cut short is
// retried by Prometheus.
func (m *metricsServer) Stop() error {
	err := m.srv.Close()
	m.goroutines.Stop()
	return err
}
