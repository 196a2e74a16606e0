//go:build itest

package itest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/lightningnetwork/lnd/macaroons"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"gopkg.in/macaroon.v2"

	// The store's driver, for ForgetDeliveryPeer.
	_ "modernc.org/sqlite"
)

// ErrHolddNotRunning is returned by holdd helpers while holdd is stopped.
var ErrHolddNotRunning = errors.New("holdd is not running")

// Holdd is one run of holdd attached to L. Each start makes a new Holdd
// (take the client from Network.Holdd or HolddClient after a restart); the
// directory and the RPC address stay the same.
type Holdd struct {
	// Dir is --holddir; it survives restarts so that holdd finds its
	// store again.
	Dir     string
	RPCAddr string

	// Args are the extra flags of this run.
	Args []string

	Client holdrpc.HoldClient

	// lsp is set when this holdd runs the lsp role, whose interceptor
	// must be up for holdd to count as ready.
	lsp bool

	proc *process
	conn *grpc.ClientConn
}

// repoRoot walks up from the working directory to the directory holding
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the " +
				"working directory")
		}
		dir = parent
	}
}

// buildHoldd compiles ./cmd/holdd into baseDir/bin/holdd, with the compiler
// output in logDir/build-holdd.log.
func buildHoldd(ctx context.Context, baseDir, logDir string) (string,
	error) {

	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(baseDir, "bin", "holdd")
	logPath := filepath.Join(logDir, "build-holdd.log")

	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/holdd")
	cmd.Dir = root
	output, err := cmd.CombinedOutput()
	if werr := os.WriteFile(logPath, output, 0o644); werr != nil {
		return "", werr
	}
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/holdd: %w\n%s", err,
			output)
	}
	return out, nil
}

// HolddRunning reports whether holdd runs.
func (n *Network) HolddRunning() bool {
	n.holddMtx.Lock()
	defer n.holddMtx.Unlock()

	return n.Holdd != nil
}

// StartHoldd starts holdd against L with the harness's flags plus args
// (e.g. "--hold.failbackmargin=10") and waits until it reports the
// interceptor and the peer link connected.
func (n *Network) StartHoldd(ctx context.Context, args ...string) error {
	n.holddMtx.Lock()
	defer n.holddMtx.Unlock()

	if n.Holdd != nil {
		return errors.New("holdd already running")
	}
	if n.holddBin == "" {
		return errors.New("no holdd binary (network set up with " +
			"SkipHoldd)")
	}
	if n.holddRPCAddr == "" {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		n.holddRPCAddr = addr
	}
	h, err := n.startHolddOn(ctx, n.L, n.holddDir, n.holddRPCAddr,
		"holdd.log", true, args)
	if err != nil {
		return err
	}
	n.Holdd = h
	return nil
}

// startHolddOn starts holdd against node with its data in dir and waits
// until it is ready: the peer link connected and, when lsp is set, the
// interceptor too.
func (n *Network) startHolddOn(ctx context.Context, node *LndNode, dir,
	rpcAddr, logName string, lsp bool, args []string) (*Holdd, error) {

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	flags := []string{
		"--holddir=" + dir,
		"--network=regtest",
		"--lnd.host=" + node.RPCAddr,
		"--lnd.tlscertpath=" + node.TLSCertPath,
		"--lnd.macaroonpath=" + node.AdminMacPath,
		"--lnd.p2paddr=" + node.P2PAddr,
		"--rpclisten=" + rpcAddr,
		"--debuglevel=debug",
	}
	flags = append(flags, args...)

	proc, err := startProcess("holdd", filepath.Join(n.LogDir, logName),
		dir, n.holddBin, flags...)
	if err != nil {
		return nil, err
	}
	h := &Holdd{
		Dir:     dir,
		RPCAddr: rpcAddr,
		Args:    append([]string(nil), args...),
		lsp:     lsp,
		proc:    proc,
	}
	if err := h.waitReady(ctx); err != nil {
		h.close()
		_ = proc.kill()
		return nil, err
	}
	return h, nil
}

// waitReady waits until holdd's GetInfo answers with the interceptor and
// the peer link up.
func (h *Holdd) waitReady(ctx context.Context) error {
	certPath := filepath.Join(h.Dir, "tls.cert")
	return waitFor(ctx, DefaultTimeout, "holdd GetInfo with "+
		"interceptor_connected=true and peer_link_state=connected",
		func(ctx context.Context) (bool, error) {
			if err := h.proc.checkAlive(); err != nil {
				return false, stop(err)
			}
			if h.conn == nil {
				if _, err := os.Stat(certPath); err != nil {
					return false, err
				}
				_, err := os.Stat(h.MacaroonPath(
					holdrpc.AdminMacaroonFilename))
				if err != nil {
					return false, err
				}
				if err := h.connect(certPath); err != nil {
					return false, err
				}
			}
			info, err := h.Client.GetInfo(ctx,
				&holdrpc.GetInfoRequest{})
			if err != nil {
				return false, err
			}
			if (h.lsp && !info.InterceptorConnected) ||
				info.PeerLinkState != "connected" {

				return false, fmt.Errorf("interceptor_connected"+
					"=%v peer_link_state=%q",
					info.InterceptorConnected,
					info.PeerLinkState)
			}
			return true, nil
		})
}

// connect dials holdd's gRPC with the TLS cert and the admin macaroon holdd
// wrote.
func (h *Holdd) connect(certPath string) error {
	creds, err := credentials.NewClientTLSFromFile(certPath, "")
	if err != nil {
		return fmt.Errorf("holdd tls cert: %w", err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}

	macBytes, err := os.ReadFile(h.MacaroonPath(holdrpc.AdminMacaroonFilename))
	if err != nil {
		return fmt.Errorf("holdd macaroon: %w", err)
	}
	mac := &macaroon.Macaroon{}
	if err := mac.UnmarshalBinary(macBytes); err != nil {
		return fmt.Errorf("holdd macaroon: %w", err)
	}
	cred, err := macaroons.NewMacaroonCredential(mac)
	if err != nil {
		return fmt.Errorf("holdd macaroon: %w", err)
	}
	opts = append(opts, grpc.WithPerRPCCredentials(cred))

	conn, err := grpc.NewClient(h.RPCAddr, opts...)
	if err != nil {
		return fmt.Errorf("holdd dial: %w", err)
	}
	h.conn = conn
	h.Client = holdrpc.NewHoldClient(conn)
	return nil
}

// MacaroonPath is where holdd bakes the macaroon called name.
func (h *Holdd) MacaroonPath(name string) string {
	return filepath.Join(h.Dir, "data", "regtest", name)
}

func (h *Holdd) close() {
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
}

// waitHeight waits until holdd reports a block height of at least height.
func (h *Holdd) waitHeight(ctx context.Context, height int32) error {
	return waitFor(ctx, DefaultTimeout,
		fmt.Sprintf("holdd at block height >= %d", height),
		func(ctx context.Context) (bool, error) {
			if err := h.proc.checkAlive(); err != nil {
				return false, stop(err)
			}
			info, err := h.Client.GetInfo(ctx,
				&holdrpc.GetInfoRequest{})
			if err != nil {
				return false, err
			}
			if int32(info.BlockHeight) < height {
				return false, fmt.Errorf("at height %d",
					info.BlockHeight)
			}
			return true, nil
		})
}

// StopHoldd stops holdd gracefully (SIGTERM, SIGKILL after 15s). It is a
// no-op while holdd is stopped.
func (n *Network) StopHoldd() error {
	n.holddMtx.Lock()
	defer n.holddMtx.Unlock()

	if n.Holdd == nil {
		return nil
	}
	h := n.Holdd
	n.Holdd = nil
	h.close()
	return h.proc.stop(15 * time.Second)
}

// KillHoldd SIGKILLs holdd, as a crash would.
func (n *Network) KillHoldd() error {
	n.holddMtx.Lock()
	defer n.holddMtx.Unlock()

	if n.Holdd == nil {
		return ErrHolddNotRunning
	}
	h := n.Holdd
	n.Holdd = nil
	h.close()
	return h.proc.kill()
}

// RestartHoldd stops holdd (if running) and starts it again on the same
// holddir with args.
func (n *Network) RestartHoldd(ctx context.Context, args ...string) error {
	if err := n.StopHoldd(); err != nil {
		return err
	}
	return n.StartHoldd(ctx, args...)
}

// HolddClient returns the running holdd's client.
func (n *Network) HolddClient() (holdrpc.HoldClient, error) {
	n.holddMtx.Lock()
	defer n.holddMtx.Unlock()

	if n.Holdd == nil {
		return nil, ErrHolddNotRunning
	}
	return n.Holdd.Client, nil
}

// activeHeldStates are the states of HTLCs holdd still holds.
var activeHeldStates = []string{"held", "released"}

// checkHolddClean returns an error if holdd still holds an HTLC.
func (n *Network) checkHolddClean(ctx context.Context) error {
	client, err := n.HolddClient()
	if errors.Is(err, ErrHolddNotRunning) {
		return nil
	}
	resp, err := client.ListHeld(ctx, &holdrpc.ListHeldRequest{
		States: activeHeldStates,
	})
	if err != nil {
		return err
	}
	if len(resp.Htlcs) > 0 {
		return fmt.Errorf("holdd still holds %d HTLC(s), first %v "+
			"in state %s", len(resp.Htlcs),
			resp.Htlcs[0].Incoming, resp.Htlcs[0].State)
	}
	return nil
}

// WaitHolddReady waits until the running holdd reports the interceptor and
// the peer link connected again, e.g. after L restarted.
func (n *Network) WaitHolddReady(ctx context.Context) error {
	n.holddMtx.Lock()
	h := n.Holdd
	n.holddMtx.Unlock()

	if h == nil {
		return ErrHolddNotRunning
	}
	return h.waitReady(ctx)
}

// ForgetDeliveryPeer stops L's holdd, removes node from the peers its
// store knows to read path deliveries, and starts holdd again with args,
// so a test can play a sender that never proved it, whatever ran before.
// node greets L again before its next hold_htlc payment. holdd has no API
// for this: it only ever learns proofs.
func (n *Network) ForgetDeliveryPeer(ctx context.Context, node *LndNode,
	args ...string) error {

	if err := n.StopHoldd(); err != nil {
		return err
	}
	path := filepath.Join(n.holddDir, "data", "regtest", "holdd.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `DELETE FROM delivery_peers WHERE peer = ?`,
		node.PubKey)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("forget delivery peer in %s: %w", path, err)
	}
	node.readsDeliveries.Store(false)
	return n.StartHoldd(ctx, args...)
}
