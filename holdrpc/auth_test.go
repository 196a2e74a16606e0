package holdrpc

import (
	"context"
	"encoding/hex"
	"net"
	"testing"

	"github.com/lightningnetwork/lnd/macaroons"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"gopkg.in/macaroon-bakery.v2/bakery"
)

func TestEveryMethodHasPermissions(t *testing.T) {
	var methods []string
	for _, m := range Hold_ServiceDesc.Methods {
		methods = append(methods, "/holdrpc.Hold/"+m.MethodName)
	}
	for _, s := range Hold_ServiceDesc.Streams {
		methods = append(methods, "/holdrpc.Hold/"+s.StreamName)
	}
	require.Len(t, RequiredPermissions, len(methods))
	for _, m := range methods {
		require.Contains(t, RequiredPermissions, m)
	}
}

// permServer answers the cheap methods without touching anything.
type permServer struct {
	UnimplementedHoldServer
}

func (permServer) GetInfo(context.Context, *GetInfoRequest) (
	*GetInfoResponse, error) {

	return &GetInfoResponse{Version: "test"}, nil
}

func (permServer) FailHeld(context.Context, *FailHeldRequest) (
	*FailHeldResponse, error) {

	return &FailHeldResponse{}, nil
}

// plainMacaroon sends the macaroon as lnd clients do, over a test
// connection without TLS.
type plainMacaroon string

func (m plainMacaroon) GetRequestMetadata(context.Context, ...string) (
	map[string]string, error) {

	return map[string]string{"macaroon": string(m)}, nil
}

func (plainMacaroon) RequireTransportSecurity() bool { return false }

func bake(t *testing.T, svc *macaroons.Service, ops []bakery.Op) []byte {
	t.Helper()
	mac, err := svc.NewMacaroon(context.Background(),
		macaroons.DefaultRootKeyID, ops...)
	require.NoError(t, err)
	raw, err := mac.M().MarshalBinary()
	require.NoError(t, err)
	return raw
}

func TestMacaroonEnforcement(t *testing.T) {
	rootKey := make([]byte, 32)
	rootKey[0] = 1
	svc, err := NewMacaroonService(rootKey)
	require.NoError(t, err)
	otherKey := make([]byte, 32)
	otherKey[0] = 2
	otherSvc, err := NewMacaroonService(otherKey)
	require.NoError(t, err)

	unary, stream := MacaroonInterceptors(svc)
	srv := grpc.NewServer(grpc.UnaryInterceptor(unary),
		grpc.StreamInterceptor(stream))
	RegisterHoldServer(srv, permServer{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	admin := bake(t, svc, AdminPermissions)
	readonly := bake(t, svc, ReadOnlyPermissions)
	forged := bake(t, otherSvc, AdminPermissions)

	call := func(mac []byte, write bool) codes.Code {
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
		}
		if mac != nil {
			opts = append(opts, grpc.WithPerRPCCredentials(
				plainMacaroon(hex.EncodeToString(mac))))
		}
		conn, err := grpc.NewClient(lis.Addr().String(), opts...)
		require.NoError(t, err)
		defer conn.Close()
		c := NewHoldClient(conn)
		if write {
			_, err = c.FailHeld(context.Background(),
				&FailHeldRequest{})
		} else {
			_, err = c.GetInfo(context.Background(),
				&GetInfoRequest{})
		}
		return status.Code(err)
	}

	tests := []struct {
		name  string
		mac   []byte
		write bool
		want  codes.Code
	}{
		{"admin reads", admin, false, codes.OK},
		{"admin writes", admin, true, codes.OK},
		{"readonly reads", readonly, false, codes.OK},
		{"readonly cannot write", readonly, true, codes.PermissionDenied},
		{"no macaroon", nil, false, codes.PermissionDenied},
		{"other root key", forged, false, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, call(tc.mac, tc.write))
		})
	}
}
