//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/holdd/holdd/rpcclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/invoicesrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lnrpc/signrpc"
	"github.com/lightningnetwork/lnd/lnrpc/walletrpc"
	"github.com/lightningnetwork/lnd/macaroons"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"gopkg.in/macaroon.v2"
)

// nativeOnionMessages is the first lnd release that handles onion messages
// itself; older ones pass type 513 to the custom-message API when told to.
var nativeOnionMessages = rpcclient.Version{Major: 0, Minor: 21}

// lspArgs are the extra flags of L, the LSP holdd is attached to, on lnd
// version v.
func lspArgs(v rpcclient.Version) []string {
	args := []string{
		"--requireinterceptor",
		"--protocol.custom-init=153",
		"--protocol.custom-nodeann=153",
	}
	if v.Less(nativeOnionMessages) {
		// lnd 0.18-0.20 knows no onion messages: with the override,
		// raw type 513 reaches holdd through SubscribeCustomMessages.
		// There is no relay-all flag, and none is needed: nothing in
		// lnd filters the unknown message by channel presence.
		return append(args, "--protocol.custom-message=513")
	}
	// A bare bool: "=true" makes lnd exit on the command line.
	return append(args, "--protocol.onion-msg-relay-all")
}

// recipientArgs are the extra flags of P on lnd version v: before 0.21 lnd
// knows no onion messages, so raw type 513 goes to P's holdd through the
// custom-message API, and P advertises bit 39 so that peers send it onion
// messages.
func recipientArgs(v rpcclient.Version) []string {
	if v.Less(nativeOnionMessages) {
		return []string{"--protocol.custom-message=513",
			"--protocol.custom-init=39"}
	}
	return nil
}

// parseLndVersion parses a release tag such as "v0.20.2-beta".
func parseLndVersion(tag string) (rpcclient.Version, error) {
	return rpcclient.ParseVersion(strings.TrimPrefix(tag, "v"))
}

// lndBinaryVersion asks an lnd binary its version ("lnd version 0.20.2-beta
// commit=v0.20.2-beta"), so that L's flags fit the binary whatever path it
// came from.
func lndBinaryVersion(ctx context.Context, bin string) (rpcclient.Version,
	error) {

	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return rpcclient.Version{}, fmt.Errorf("%s --version: %w", bin,
			err)
	}
	line := strings.TrimSpace(string(out))
	v, err := rpcclient.ParseVersion(strings.TrimPrefix(line,
		"lnd version "))
	if err != nil {
		return rpcclient.Version{}, fmt.Errorf("%s --version: %w", bin,
			err)
	}
	return v, nil
}

// LndNode is one lnd process and gRPC clients to it.
type LndNode struct {
	Name string

	// Dir is the node's --lnddir.
	Dir     string
	P2PAddr string
	RPCAddr string

	TLSCertPath  string
	AdminMacPath string

	// PubKey is the node's identity key (compressed); PubKeyHex its hex.
	PubKey    []byte
	PubKeyHex string

	Lightning lnrpc.LightningClient
	Router    routerrpc.RouterClient
	Signer    signrpc.SignerClient
	Invoices  invoicesrpc.InvoicesClient
	WalletKit walletrpc.WalletKitClient

	bin     string
	args    []string
	logPath string
	proc    *process

	// stopped is set by Stop and cleared by Start.
	stopped atomic.Bool
	conn    *grpc.ClientConn

	// readsDeliveries is set once L's holdd acknowledged this node's
	// hello; holdd stores it, so it holds for the rest of the run.
	readsDeliveries atomic.Bool
}

// newLndNode prepares (but does not start) an lnd node on free ports.
func newLndNode(name, bin, baseDir, logDir string, btcd *Btcd,
	extra ...string) (*LndNode, error) {

	dir := filepath.Join(baseDir, "lnd-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p2p, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rpc, err := freeAddr()
	if err != nil {
		return nil, err
	}

	args := []string{
		"--bitcoin.regtest",
		"--bitcoin.node=btcd",
		"--btcd.rpchost=" + btcd.RPCAddr,
		"--btcd.rpcuser=" + btcdRPCUser,
		"--btcd.rpcpass=" + btcdRPCPass,
		"--btcd.rpccert=" + btcd.CertPath,
		"--noseedbackup",
		"--nobootstrap",
		"--norest",
		"--debuglevel=debug",
		"--alias=" + name,
		"--listen=" + p2p,
		"--rpclisten=" + rpc,
		"--lnddir=" + dir,

		// Fast, deterministic regtest: channels usable after one
		// confirmation, gossip flushed quickly, short database batch
		// window (the same values lnd's own itests use).
		"--trickledelay=50",
		"--bitcoin.defaultchanconfs=1",
		"--maxpendingchannels=10",
		"--gossip.sub-batch-delay=5ms",
		"--db.batch-commit-interval=10ms",

		// Everything lnd logs goes to stdout, which the harness
		// captures; its rotating file log would only duplicate it.
		"--logging.file.disable",

		// A nearly full CI disk must not make lnd shut down mid-test.
		"--healthcheck.diskspace.attempts=0",
	}
	args = append(args, extra...)

	return &LndNode{
		Name:        name,
		Dir:         dir,
		P2PAddr:     p2p,
		RPCAddr:     rpc,
		TLSCertPath: filepath.Join(dir, "tls.cert"),
		AdminMacPath: filepath.Join(
			dir, "data", "chain", "bitcoin", "regtest",
			"admin.macaroon",
		),
		bin:     bin,
		args:    args,
		logPath: filepath.Join(logDir, "lnd-"+name+".log"),
	}, nil
}

// Start launches lnd and waits until it answers GetInfo and is synced to
// the chain.
func (n *LndNode) Start(ctx context.Context) error {
	proc, err := startProcess("lnd-"+n.Name, n.logPath, n.Dir, n.bin,
		n.args...)
	if err != nil {
		return err
	}
	n.proc = proc
	n.stopped.Store(false)

	err = waitFor(ctx, DefaultTimeout, "lnd "+n.Name+" to write tls.cert "+
		"and admin.macaroon", func(context.Context) (bool, error) {
		if err := proc.checkAlive(); err != nil {
			return false, stop(err)
		}
		if _, err := os.Stat(n.TLSCertPath); err != nil {
			return false, err
		}
		_, err := os.Stat(n.AdminMacPath)
		return err == nil, err
	})
	if err != nil {
		return err
	}

	// One connection serves every run of the node: grpc reconnects by
	// itself after a restart (same address, tls.cert and macaroon), so
	// the clients tests hold, and payment streams re-attaching, never
	// see a swapped client.
	if n.conn == nil {
		if err := n.connect(); err != nil {
			return err
		}
	}

	return n.waitSynced(ctx, 0)
}

// connect dials lnd's gRPC with its TLS cert and admin macaroon.
func (n *LndNode) connect() error {
	creds, err := credentials.NewClientTLSFromFile(n.TLSCertPath, "")
	if err != nil {
		return fmt.Errorf("lnd %s: tls cert: %w", n.Name, err)
	}
	macBytes, err := os.ReadFile(n.AdminMacPath)
	if err != nil {
		return fmt.Errorf("lnd %s: macaroon: %w", n.Name, err)
	}
	mac := &macaroon.Macaroon{}
	if err := mac.UnmarshalBinary(macBytes); err != nil {
		return fmt.Errorf("lnd %s: macaroon: %w", n.Name, err)
	}
	macCred, err := macaroons.NewMacaroonCredential(mac)
	if err != nil {
		return fmt.Errorf("lnd %s: macaroon: %w", n.Name, err)
	}

	conn, err := grpc.NewClient(n.RPCAddr,
		grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(macCred),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(50<<20),
		),
	)
	if err != nil {
		return fmt.Errorf("lnd %s: dial: %w", n.Name, err)
	}

	n.conn = conn
	n.Lightning = lnrpc.NewLightningClient(conn)
	n.Router = routerrpc.NewRouterClient(conn)
	n.Signer = signrpc.NewSignerClient(conn)
	n.Invoices = invoicesrpc.NewInvoicesClient(conn)
	n.WalletKit = walletrpc.NewWalletKitClient(conn)
	return nil
}

// waitSynced waits until lnd reports synced_to_chain at a height of at
// least minHeight.
func (n *LndNode) waitSynced(ctx context.Context, minHeight int32) error {
	what := fmt.Sprintf("lnd %s synced to chain at height >= %d", n.Name,
		minHeight)
	return waitFor(ctx, DefaultTimeout, what,
		func(ctx context.Context) (bool, error) {
			if err := n.proc.checkAlive(); err != nil {
				return false, stop(err)
			}
			info, err := n.Lightning.GetInfo(
				ctx, &lnrpc.GetInfoRequest{},
			)
			if err != nil {
				return false, err
			}
			if n.PubKey == nil {
				pub, err := hex.DecodeString(
					info.IdentityPubkey,
				)
				if err != nil {
					return false, stop(err)
				}
				n.PubKey = pub
				n.PubKeyHex = info.IdentityPubkey
			}
			if int32(info.BlockHeight) < minHeight {
				return false, fmt.Errorf("at height %d",
					info.BlockHeight)
			}
			if !info.SyncedToChain {
				return false, fmt.Errorf("synced_to_chain=false "+
					"at height %d", info.BlockHeight)
			}
			return true, nil
		})
}

// Stop shuts lnd down gracefully (SIGTERM, SIGKILL after 30s). The gRPC
// connection stays, for the next Start.
func (n *LndNode) Stop() error {
	if n.proc == nil {
		return nil
	}
	n.stopped.Store(true)
	return n.proc.stop(30 * time.Second)
}

// Stopped reports whether a test stopped the node and has not started it
// again.
func (n *LndNode) Stopped() bool {
	return n.stopped.Load()
}

// Kill SIGKILLs lnd, as a crash would.
func (n *LndNode) Kill() error {
	if n.proc == nil {
		return nil
	}
	return n.proc.kill()
}

// Restart stops lnd and starts it again with the same data, ports and
// flags, waiting until it is synced.
func (n *LndNode) Restart(ctx context.Context) error {
	if err := n.Stop(); err != nil {
		return err
	}
	return n.Start(ctx)
}

// RestartWithFlags restarts lnd with its flags changed: every flag equal to
// one in drop is removed and add is appended. The change holds for later
// restarts too; the end-to-end bench runs L without --requireinterceptor
// this way and puts it back after.
func (n *LndNode) RestartWithFlags(ctx context.Context, drop []string,
	add ...string) error {

	if err := n.Stop(); err != nil {
		return err
	}
	args := make([]string, 0, len(n.args)+len(add))
	for _, a := range n.args {
		if !slices.Contains(drop, a) {
			args = append(args, a)
		}
	}
	n.args = append(args, add...)
	return n.Start(ctx)
}

// NewAddress returns a fresh P2WKH address of the node's wallet.
func (n *LndNode) NewAddress(ctx context.Context) (string, error) {
	resp, err := n.Lightning.NewAddress(ctx, &lnrpc.NewAddressRequest{
		Type: lnrpc.AddressType_WITNESS_PUBKEY_HASH,
	})
	if err != nil {
		return "", fmt.Errorf("lnd %s: NewAddress: %w", n.Name, err)
	}
	return resp.Address, nil
}

// Height returns the block height lnd reports.
func (n *LndNode) Height(ctx context.Context) (int32, error) {
	info, err := n.Lightning.GetInfo(ctx, &lnrpc.GetInfoRequest{})
	if err != nil {
		return 0, err
	}
	return int32(info.BlockHeight), nil
}

// close stops lnd and drops the gRPC connection for good.
func (n *LndNode) close() error {
	err := n.Stop()
	if n.conn != nil {
		n.conn.Close()
	}
	return err
}
