package interceptor

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// countingStream counts responses instead of keeping them.
type countingStream struct {
	grpc.ClientStream
	ctx  context.Context
	reqs chan *routerrpc.ForwardHtlcInterceptRequest
	sent atomic.Int64
}

func (s *countingStream) Recv() (*routerrpc.ForwardHtlcInterceptRequest,
	error) {

	select {
	case r := <-s.reqs:
		return r, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s *countingStream) Send(*routerrpc.ForwardHtlcInterceptResponse) error {
	s.sent.Add(1)
	return nil
}

type countingRouter struct {
	streams chan *countingStream
}

func (r *countingRouter) HtlcInterceptor(ctx context.Context,
	_ ...grpc.CallOption) (routerrpc.Router_HtlcInterceptorClient, error) {

	s := &countingStream{
		ctx:  ctx,
		reqs: make(chan *routerrpc.ForwardHtlcInterceptRequest, 1024),
	}
	r.streams <- s
	return s, nil
}

// resumeAll is an engine that forwards everything.
type resumeAll struct{}

func (resumeAll) Intercept(context.Context, plugin.HTLC) plugin.Decision {
	return plugin.Decision{Action: plugin.ActionResume}
}

// BenchmarkInterceptorPassThrough measures the interceptor's own cost per
// forward it resumes: receive, the decision goroutine, bookkeeping of the
// offered key and the response, with an engine that decides at once.
func BenchmarkInterceptorPassThrough(b *testing.B) {
	router := &countingRouter{streams: make(chan *countingStream, 1)}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	i, err := New(Config{
		Router: router,
		Logger: logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := i.Start(resumeAll{}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = i.Stop() }()
	s := <-router.streams

	reqs := make([]*routerrpc.ForwardHtlcInterceptRequest, b.N)
	for n := range reqs {
		reqs[n] = request(1, uint64(n))
		reqs[n].InWireCustomRecords = nil
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, r := range reqs {
		s.reqs <- r
	}
	for s.sent.Load() < int64(b.N) {
		time.Sleep(10 * time.Microsecond)
	}
}
