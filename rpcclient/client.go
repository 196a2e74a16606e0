package rpcclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/chainrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lnrpc/signrpc"
	"github.com/lightningnetwork/lnd/macaroons"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"gopkg.in/macaroon.v2"
)

var (
	// ErrConfig is returned for a missing or unusable connection setting.
	ErrConfig = errors.New("lnd connection config")

	// ErrWrongNetwork is returned when lnd runs on another network than
	// holdd is configured for.
	ErrWrongNetwork = errors.New("lnd runs on another network")

	// ErrVersionTooOld is returned for an lnd older than MinVersion.
	ErrVersionTooOld = errors.New("lnd version too old")

	// ErrMissingSubServer is returned when lnd lacks a sub-server holdd
	// needs (built without its build tag).
	ErrMissingSubServer = errors.New("lnd sub-server missing")

	// ErrPermission is returned when the macaroon lacks a permission.
	ErrPermission = errors.New("macaroon lacks permission")
)

// Keepalive defaults; see Config.
const (
	DefaultKeepalive        = 30 * time.Second
	DefaultKeepaliveTimeout = 20 * time.Second
)

// MinVersion is the oldest lnd holdd talks to: the interceptor fields and
// custom records it reads appeared in 0.18.
var MinVersion = Version{Major: 0, Minor: 18}

// Config says how to reach lnd.
type Config struct {
	// Host is lnd's gRPC address, host:port.
	Host string

	// TLSCertPath is lnd's tls.cert.
	TLSCertPath string

	// MacaroonPath is the macaroon holdd authenticates with.
	MacaroonPath string

	// Network is the chain holdd expects lnd to run on (mainnet,
	// testnet, signet, regtest, simnet).
	Network string

	// DialTimeout bounds connecting and the start-up checks.
	DialTimeout time.Duration

	// Keepalive is how long the connection may go without traffic before
	// holdd pings lnd; KeepaliveTimeout how long it then waits for the
	// answer before closing the connection, which ends every stream on it
	// (the interceptor's too, which then reconnects). Without them a
	// connection that died silently (a NAT or firewall dropping state, a
	// host that vanished) would leave a stream waiting forever while it
	// looks connected. Zero means DefaultKeepalive and
	// DefaultKeepaliveTimeout. lnd closes, with ENHANCE_YOUR_CALM, a
	// connection whose client pings more often than its
	// grpc.client-ping-min-wait (5 s by default); grpc-go never pings
	// more often than every 10 s.
	Keepalive        time.Duration
	KeepaliveTimeout time.Duration

	// SkipSignerCheck skips the start-up DeriveSharedKey call, for
	// callers that never use signrpc (an async payment's sender), whose
	// macaroon need not allow it.
	SkipSignerCheck bool
}

// Client is a checked connection to lnd.
type Client struct {
	conn *grpc.ClientConn

	Lightning lnrpc.LightningClient
	Router    routerrpc.RouterClient
	Signer    signrpc.SignerClient
	Chain     chainrpc.ChainNotifierClient

	// IdentityKey is lnd's node key.
	IdentityKey *btcec.PublicKey

	// Version is lnd's parsed version; VersionString its full text.
	Version       Version
	VersionString string
}

// Dial connects to lnd and runs the start-up checks.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = DefaultKeepalive
	}
	if cfg.KeepaliveTimeout == 0 {
		cfg.KeepaliveTimeout = DefaultKeepaliveTimeout
	}

	tlsCreds, err := credentials.NewClientTLSFromFile(cfg.TLSCertPath, "")
	if err != nil {
		return nil, fmt.Errorf("%w: lnd.tlscertpath %q: %v", ErrConfig,
			cfg.TLSCertPath, err)
	}
	macBytes, err := os.ReadFile(cfg.MacaroonPath)
	if err != nil {
		return nil, fmt.Errorf("%w: lnd.macaroonpath %q: %v", ErrConfig,
			cfg.MacaroonPath, err)
	}
	mac := &macaroon.Macaroon{}
	if err := mac.UnmarshalBinary(macBytes); err != nil {
		return nil, fmt.Errorf("%w: lnd.macaroonpath %q is not a "+
			"macaroon: %v", ErrConfig, cfg.MacaroonPath, err)
	}
	macCred, err := macaroons.NewMacaroonCredential(mac)
	if err != nil {
		return nil, fmt.Errorf("%w: macaroon: %v", ErrConfig, err)
	}

	conn, err := grpc.NewClient(cfg.Host,
		grpc.WithTransportCredentials(tlsCreds),
		grpc.WithPerRPCCredentials(macCred),
		// lnd's own clients raise this for large responses such as
		// ListChannels on a big node.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(200<<20)),
		grpc.WithKeepaliveParams(KeepaliveParams(cfg.Keepalive,
			cfg.KeepaliveTimeout)),
		// After a dead connection, redial within 30 s once lnd is
		// reachable again (grpc-go's default backoff grows to 2 min).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  time.Second,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   30 * time.Second,
			},
			MinConnectTimeout: 20 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: lnd.host %q: %v", ErrConfig,
			cfg.Host, err)
	}

	c := &Client{
		conn:      conn,
		Lightning: lnrpc.NewLightningClient(conn),
		Router:    routerrpc.NewRouterClient(conn),
		Signer:    signrpc.NewSignerClient(conn),
		Chain:     chainrpc.NewChainNotifierClient(conn),
	}

	checkCtx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := c.check(checkCtx, cfg); err != nil {
		_ = conn.Close()
		return nil, err
	}

	return c, nil
}

// KeepaliveParams are the client keepalive settings holdd dials lnd with.
// Pings go out only while a stream or call is open: lnd's default
// enforcement (grpc.client-allow-ping-without-stream off) counts pings on
// an idle connection as abuse and closes it.
func KeepaliveParams(every, timeout time.Duration) keepalive.ClientParameters {
	return keepalive.ClientParameters{
		Time:                every,
		Timeout:             timeout,
		PermitWithoutStream: false,
	}
}

// CheckConnectPeer checks that the macaroon allows ConnectPeer, which a
// listening peer link uses to have lnd dial it. The request names no
// peer: lnd checks the macaroon before it reads the request, so a
// permitted call fails on the empty address and changes nothing.
func (c *Client) CheckConnectPeer(ctx context.Context) error {
	_, err := c.Lightning.ConnectPeer(ctx, &lnrpc.ConnectPeerRequest{})
	if err == nil {
		return nil
	}
	explained := explainRPCError(err, "/lnrpc.Lightning/ConnectPeer")
	if errors.Is(explained, ErrPermission) ||
		errors.Is(explained, ErrMissingSubServer) {

		return explained
	}
	if st, ok := status.FromError(err); ok &&
		st.Code() == codes.Unavailable {

		return explained
	}

	return nil
}

// Close closes the connection.
func (c *Client) Close() error {
	return c.conn.Close()
}

func (cfg Config) validate() error {
	switch {
	case cfg.Host == "":
		return fmt.Errorf("%w: lnd.host is not set", ErrConfig)
	case cfg.TLSCertPath == "":
		return fmt.Errorf("%w: lnd.tlscertpath is not set", ErrConfig)
	case cfg.MacaroonPath == "":
		return fmt.Errorf("%w: lnd.macaroonpath is not set", ErrConfig)
	case cfg.Network == "":
		return fmt.Errorf("%w: network is not set", ErrConfig)
	}
	return nil
}

func (c *Client) check(ctx context.Context, cfg Config) error {
	info, err := c.Lightning.GetInfo(ctx, &lnrpc.GetInfoRequest{})
	if err != nil {
		return fmt.Errorf("lnd GetInfo at %s: %w", cfg.Host,
			explainRPCError(err, "/lnrpc.Lightning/GetInfo"))
	}

	if len(info.Chains) > 0 && info.Chains[0].Network != cfg.Network {
		return fmt.Errorf("%w: lnd is on %q, holdd is configured for "+
			"%q (set network)", ErrWrongNetwork,
			info.Chains[0].Network, cfg.Network)
	}

	c.VersionString = info.Version
	c.Version, err = ParseVersion(info.Version)
	if err != nil {
		return err
	}
	if c.Version.Less(MinVersion) {
		return fmt.Errorf("%w: lnd %s, holdd needs %s or newer",
			ErrVersionTooOld, info.Version, MinVersion)
	}

	c.IdentityKey, err = parsePubKeyHex(info.IdentityPubkey)
	if err != nil {
		return fmt.Errorf("lnd identity key: %w", err)
	}

	if cfg.SkipSignerCheck {
		return nil
	}

	// DeriveSharedKey with lnd's own key as the ephemeral point proves
	// both that signrpc is compiled in and that the macaroon allows it.
	_, err = c.Signer.DeriveSharedKey(ctx, &signrpc.SharedKeyRequest{
		EphemeralPubkey: c.IdentityKey.SerializeCompressed(),
		KeyLoc: &signrpc.KeyLocator{
			KeyFamily: int32(keychain.KeyFamilyNodeKey),
		},
	})
	if err != nil {
		return fmt.Errorf("lnd signrpc: %w", explainRPCError(err,
			"/signrpc.Signer/DeriveSharedKey"))
	}

	return nil
}

// explainRPCError turns the gRPC errors an operator can fix into messages
// that name the fix.
func explainRPCError(err error, uri string) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch {
	case st.Code() == codes.Unimplemented:
		return fmt.Errorf("%w: %s is not available; lnd must be built "+
			"with the release build tags (signrpc, routerrpc, "+
			"chainrpc): %v", ErrMissingSubServer, uri, st.Message())
	case st.Code() == codes.Unknown &&
		strings.Contains(st.Message(), "permission denied"),
		st.Code() == codes.PermissionDenied:
		return fmt.Errorf("%w: %s; bake a macaroon that includes it "+
			"(see docs/operator.md): %v", ErrPermission, uri,
			st.Message())
	case st.Code() == codes.Unavailable:
		return fmt.Errorf("lnd is unreachable (check lnd.host and "+
			"lnd.tlscertpath): %w", err)
	}
	return err
}

func parsePubKeyHex(s string) (*btcec.PublicKey, error) {
	b, err := decodeHex(s)
	if err != nil {
		return nil, err
	}
	return btcec.ParsePubKey(b)
}
