package holdrpc

import (
	"context"
	"runtime/debug"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RecoveryInterceptors turn a panic in a handler (or an interceptor after
// them in the chain) into codes.Internal and a log line with the stack,
// instead of ending the process: a bug in one RPC must not take down the
// holds the daemon keeps. Put them first in the chain.
func RecoveryInterceptors(log logrus.FieldLogger) (grpc.UnaryServerInterceptor,
	grpc.StreamServerInterceptor) {

	if log == nil {
		log = logrus.StandardLogger()
	}
	recovered := func(method string, r any) error {
		log.Errorf("Panic in RPC %s: %v\n%s", method, r, debug.Stack())
		return status.Errorf(codes.Internal, "internal error in %s",
			method)
	}
	unary := func(ctx context.Context, req any,
		info *grpc.UnaryServerInfo,
		handler grpc.UnaryHandler) (resp any, err error) {

		defer func() {
			if r := recover(); r != nil {
				resp, err = nil, recovered(info.FullMethod, r)
			}
		}()
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream,
		info *grpc.StreamServerInfo,
		handler grpc.StreamHandler) (err error) {

		defer func() {
			if r := recover(); r != nil {
				err = recovered(info.FullMethod, r)
			}
		}()
		return handler(srv, ss)
	}

	return unary, stream
}
