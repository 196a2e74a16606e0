package holdrpc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lightningnetwork/lnd/macaroons"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gopkg.in/macaroon-bakery.v2/bakery"
)

// MacaroonLocation is the location baked into holdd's macaroons.
const MacaroonLocation = "holdd"

const (
	// AdminMacaroonFilename may call every method.
	AdminMacaroonFilename = "admin.macaroon"

	// ReadOnlyMacaroonFilename may only read.
	ReadOnlyMacaroonFilename = "readonly.macaroon"
)

var (
	opInfoRead    = bakery.Op{Entity: "info", Action: "read"}
	opHoldsRead   = bakery.Op{Entity: "holds", Action: "read"}
	opHoldsWrite  = bakery.Op{Entity: "holds", Action: "write"}
	opPolicyRead  = bakery.Op{Entity: "policy", Action: "read"}
	opPolicyWrite = bakery.Op{Entity: "policy", Action: "write"}
	// Receive paths are published, so reading them is harmless; minting
	// and revoking change what holdd answers.
	opReceiveRead  = bakery.Op{Entity: "receive", Action: "read"}
	opReceiveWrite = bakery.Op{Entity: "receive", Action: "write"}
	opMailboxRead  = bakery.Op{Entity: "mailbox", Action: "read"}
	opMailboxWrite = bakery.Op{Entity: "mailbox", Action: "write"}
	// The static invoice server's recipients: listing shows who is
	// registered; adding and removing change whom holdd serves.
	opServerRead  = bakery.Op{Entity: "invoiceserver", Action: "read"}
	opServerWrite = bakery.Op{Entity: "invoiceserver", Action: "write"}
)

// RequiredPermissions is what each method needs. GetReleasePaths needs
// holds:write because a release path lets its holder release the HTLC.
var RequiredPermissions = map[string][]bakery.Op{
	"/holdrpc.Hold/GetInfo":             {opInfoRead},
	"/holdrpc.Hold/ListHeld":            {opHoldsRead},
	"/holdrpc.Hold/GetHeld":             {opHoldsRead},
	"/holdrpc.Hold/SubscribeHoldEvents": {opHoldsRead},
	"/holdrpc.Hold/GetReleasePaths":     {opHoldsWrite},
	"/holdrpc.Hold/ReleaseHeld":         {opHoldsWrite},
	"/holdrpc.Hold/FailHeld":            {opHoldsWrite},
	"/holdrpc.Hold/GetPolicy":           {opPolicyRead},
	"/holdrpc.Hold/SetPolicy":           {opPolicyWrite},

	"/holdrpc.Hold/AddReceivePaths":        {opReceiveWrite},
	"/holdrpc.Hold/ListReceivePaths":       {opReceiveRead},
	"/holdrpc.Hold/RevokeReceivePath":      {opReceiveWrite},
	"/holdrpc.Hold/SubscribeReceiveEvents": {opReceiveRead},

	"/holdrpc.Hold/ListMailbox":       {opMailboxRead},
	"/holdrpc.Hold/UnregisterMailbox": {opMailboxWrite},

	"/holdrpc.Hold/AddAsyncRecipient":    {opServerWrite},
	"/holdrpc.Hold/RemoveAsyncRecipient": {opServerWrite},
	"/holdrpc.Hold/ListAsyncRecipients":  {opServerRead},
	"/holdrpc.Hold/GetOffer":             {opReceiveRead},
}

// ReadOnlyPermissions and AdminPermissions are baked into the two default
// macaroons.
var (
	ReadOnlyPermissions = []bakery.Op{opInfoRead, opHoldsRead, opPolicyRead,
		opReceiveRead, opMailboxRead, opServerRead}
	AdminPermissions = []bakery.Op{opInfoRead, opHoldsRead, opHoldsWrite,
		opPolicyRead, opPolicyWrite, opReceiveRead, opReceiveWrite,
		opMailboxRead, opMailboxWrite, opServerRead, opServerWrite}
)

// rootKeyStore serves one root key, kept in holdd's store. lnd's bolt-backed
// store adds password encryption that a sidecar whose database already
// holds its node key gains nothing from.
type rootKeyStore struct {
	key []byte
}

// Get implements bakery.RootKeyStore.
func (r rootKeyStore) Get(_ context.Context, id []byte) ([]byte, error) {
	if !bytes.Equal(id, macaroons.DefaultRootKeyID) {
		return nil, bakery.ErrNotFound
	}
	return r.key, nil
}

// RootKey implements bakery.RootKeyStore.
func (r rootKeyStore) RootKey(context.Context) ([]byte, []byte, error) {
	return r.key, macaroons.DefaultRootKeyID, nil
}

// NewMacaroonService returns a macaroon service over a 32-byte root key.
func NewMacaroonService(rootKey []byte) (*macaroons.Service, error) {
	if len(rootKey) != 32 {
		return nil, fmt.Errorf("macaroon root key must be 32 bytes")
	}
	return macaroons.NewService(rootKeyStore{key: rootKey},
		MacaroonLocation, false, macaroons.IPLockChecker)
}

// BakeDefaultMacaroons writes the admin and read-only macaroons into dir
// if they are missing.
func BakeDefaultMacaroons(ctx context.Context, svc *macaroons.Service,
	dir string) error {

	for name, ops := range map[string][]bakery.Op{
		AdminMacaroonFilename:    AdminPermissions,
		ReadOnlyMacaroonFilename: ReadOnlyPermissions,
	} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		mac, err := svc.NewMacaroon(ctx, macaroons.DefaultRootKeyID,
			ops...)
		if err != nil {
			return err
		}
		raw, err := mac.M().MarshalBinary()
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// authorize checks the caller's macaroon against the method's permissions.
// A method missing from the map is refused: forgetting to list a new method
// must not open it.
func authorize(ctx context.Context, svc *macaroons.Service,
	method string) error {

	perms, ok := RequiredPermissions[method]
	if !ok {
		return status.Errorf(codes.PermissionDenied, "%s has no "+
			"permission entry", method)
	}
	if err := svc.ValidateMacaroon(ctx, perms, method); err != nil {
		return status.Errorf(codes.PermissionDenied, "macaroon: %v",
			err)
	}
	return nil
}

// MacaroonInterceptors returns gRPC interceptors that enforce
// RequiredPermissions.
func MacaroonInterceptors(svc *macaroons.Service) (grpc.UnaryServerInterceptor,
	grpc.StreamServerInterceptor) {

	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo,
		handler grpc.UnaryHandler) (any, error) {

		if err := authorize(ctx, svc, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream,
		info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {

		if err := authorize(ss.Context(), svc,
			info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
	return unary, stream
}
