package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/holdd/holdd/holdrpc"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/macaroons"
	"github.com/urfave/cli"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"gopkg.in/macaroon.v2"
)

// Version is holdcli's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

const (
	defaultRPCServer        = "127.0.0.1:8455"
	defaultHoldDir          = "~/.holdd"
	defaultNetwork          = "mainnet"
	defaultTLSCertFilename  = "tls.cert"
	defaultMacaroonFilename = holdrpc.AdminMacaroonFilename

	// macaroonTimeout bounds how long a macaroon captured off the wire can
	// be replayed, as lncli's default --macaroontimeout does.
	macaroonTimeout = 60
)

// networks are the values --network accepts; holdd keeps one data
// directory per network.
var networks = []string{"mainnet", "testnet", "testnet4", "signet",
	"regtest", "simnet"}

var (
	// errUsage marks a bad command line: the command never reached holdd.
	errUsage = errors.New("usage")

	// errTLSCert marks a TLS certificate that cannot be loaded.
	errTLSCert = errors.New("TLS certificate")

	// errMacaroon marks a macaroon that cannot be loaded.
	errMacaroon = errors.New("macaroon")
)

func main() {
	if err := run(os.Args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "[holdcli] %v\n", err)
		os.Exit(1)
	}
}

// run executes one holdcli command line (args[0] is the program name) and
// writes its output to stdout.
func run(args []string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt,
		syscall.SIGTERM)
	defer stop()

	return newApp(ctx, stdout, clock.NewDefaultClock()).Run(args)
}

// env is what every command action needs besides its cli.Context. It is
// passed in rather than global so tests can run commands in-process with
// their own clock and output.
type env struct {
	ctx   context.Context
	out   io.Writer
	clock clock.Clock
}

// newApp builds the cli.App: global flags and every command.
func newApp(ctx context.Context, stdout io.Writer, clk clock.Clock) *cli.App {
	e := &env{ctx: ctx, out: stdout, clock: clk}

	app := cli.NewApp()
	app.Name = "holdcli"
	app.HelpName = "holdcli"
	app.Version = Version
	app.Usage = "control plane for holdd, the hold-HTLC sidecar for lnd"
	app.Description = "holdcli talks to holdd's gRPC API over TLS, " +
		"authenticating with a macaroon, and prints holdd's answers " +
		"as JSON (protobuf field names, bytes as hex), as lncli does."
	app.Writer = stdout
	app.ErrWriter = os.Stderr
	app.Flags = globalFlags()
	app.Commands = commands(e)
	return app
}

func globalFlags() []cli.Flag {
	return []cli.Flag{
		cli.StringFlag{
			Name:  "rpcserver",
			Value: defaultRPCServer,
			Usage: "host:port of holdd's gRPC API",
		},
		cli.StringFlag{
			Name:  "holddir",
			Value: defaultHoldDir,
			Usage: "holdd's base directory; the TLS certificate " +
				"and macaroons are found inside it unless " +
				"--tlscertpath or --macaroonpath say otherwise",
		},
		cli.StringFlag{
			Name: "tlscertpath",
			Usage: "path to holdd's TLS certificate " +
				"(default <holddir>/tls.cert)",
		},
		cli.StringFlag{
			Name: "macaroonpath",
			Usage: "path to the macaroon to authenticate with " +
				"(default <holddir>/data/<network>/" +
				"admin.macaroon)",
		},
		cli.StringFlag{
			Name:  "network",
			Value: defaultNetwork,
			Usage: "the network holdd runs on, which selects " +
				"the default macaroon: " +
				strings.Join(networks, ", "),
		},
	}
}

// connPaths resolves the TLS certificate and macaroon paths from the global
// flags, the way lncli derives them from --lnddir and --network.
func connPaths(c *cli.Context) (string, string, error) {
	network := strings.ToLower(c.GlobalString("network"))
	known := false
	for _, n := range networks {
		known = known || n == network
	}
	if !known {
		return "", "", fmt.Errorf("%w: --network %q is not one of %s",
			errUsage, c.GlobalString("network"),
			strings.Join(networks, ", "))
	}

	holdDir := cleanPath(c.GlobalString("holddir"))

	certPath := filepath.Join(holdDir, defaultTLSCertFilename)
	if p := c.GlobalString("tlscertpath"); p != "" {
		certPath = cleanPath(p)
	}
	macPath := filepath.Join(holdDir, "data", network,
		defaultMacaroonFilename)
	if p := c.GlobalString("macaroonpath"); p != "" {
		macPath = cleanPath(p)
	}
	return certPath, macPath, nil
}

// dial connects to holdd. grpc.NewClient connects lazily, so everything that
// can be checked locally (cert, macaroon) is checked here to give an error
// that names the flag to fix rather than a handshake failure.
func dial(c *cli.Context) (holdrpc.HoldClient, func(), error) {
	certPath, macPath, err := connPaths(c)
	if err != nil {
		return nil, nil, err
	}

	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: cannot read --tlscertpath %s: %v",
			errTLSCert, certPath, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		return nil, nil, fmt.Errorf("%w: --tlscertpath %s holds no PEM "+
			"certificate", errTLSCert, certPath)
	}

	macBytes, err := os.ReadFile(macPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: cannot read --macaroonpath %s: %v",
			errMacaroon, macPath, err)
	}
	mac := &macaroon.Macaroon{}
	if err := mac.UnmarshalBinary(macBytes); err != nil {
		return nil, nil, fmt.Errorf("%w: --macaroonpath %s is not a "+
			"macaroon: %v", errMacaroon, macPath, err)
	}
	mac, err = macaroons.AddConstraints(mac,
		macaroons.TimeoutConstraint(macaroonTimeout))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: constrain %s: %v", errMacaroon,
			macPath, err)
	}
	macCred, err := macaroons.NewMacaroonCredential(mac)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", errMacaroon, macPath,
			err)
	}

	conn, err := grpc.NewClient(c.GlobalString("rpcserver"),
		grpc.WithTransportCredentials(
			credentials.NewClientTLSFromCert(pool, ""),
		),
		grpc.WithPerRPCCredentials(macCred),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --rpcserver %q: %v", errUsage,
			c.GlobalString("rpcserver"), err)
	}
	return holdrpc.NewHoldClient(conn), func() { _ = conn.Close() }, nil
}

func cleanPath(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	return filepath.Clean(os.ExpandEnv(p))
}
