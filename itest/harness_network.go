//go:build itest

package itest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/holdd/holdd/rpcclient"
	"github.com/lightningnetwork/lnd/lnrpc"
)

const (
	// DefaultLndVersion is the lnd release the harness runs.
	DefaultLndVersion = "v0.21.3-beta"

	// TransportPeer and TransportCustomMsg are holdd's release
	// transports as GetInfo names them.
	TransportPeer      = "peer"
	TransportCustomMsg = "custommsg"

	// SegwitHeight is past btcd regtest's segwit activation (432); funds
	// are not spent before it.
	SegwitHeight = 500

	// WalletFunding is what each coinbase output pays an lnd wallet. L
	// gets two outputs so that it can fund two channels in one block.
	WalletFunding = 10 * btcutil.SatoshiPerBitcoin

	// ChannelCapacity is the size of the S->L and L->P channels.
	ChannelCapacity = 5_000_000

	// announceConfs is how many confirmations a channel needs before its
	// announcement is gossiped.
	announceConfs = 6
)

// Config says which binaries to run. Empty fields take defaults: binaries
// from scripts/build-deps.sh's cache, holdd built from ./cmd/holdd.
type Config struct {
	// LndBin runs S and P, and L unless LSPLndBin is set.
	LndBin  string
	BtcdBin string

	// LSPLndBin is L's lnd binary; empty means LndBin. Its --version
	// picks L's flags and the transport holdd must choose.
	LSPLndBin string

	// LSPLndVersion, when set, is the release tag (such as
	// "v0.20.2-beta") LSPLndBin must report; a mismatch fails setup.
	LSPLndVersion string

	// RecipientLndBin and RecipientLndVersion do the same for P.
	RecipientLndBin     string
	RecipientLndVersion string

	// HolddBin, when set, is used instead of building ./cmd/holdd.
	HolddBin string

	// SkipHoldd sets up btcd and the lnd nodes only. Payments through L
	// fail without holdd (L runs with requireinterceptor).
	SkipHoldd bool

	// HolddArgs are extra flags for the first holdd start.
	HolddArgs []string
}

// Network is the regtest network every test shares: btcd, three lnd nodes
// S (sender) -> L (LSP, holdd attached) -> P (recipient), and holdd.
type Network struct {
	// BaseDir holds every process's data; LogDir every process's log.
	BaseDir string
	LogDir  string

	// L runs LSPVersion, S and P DefaultLndVersion.
	Btcd *Btcd
	S    *LndNode
	L    *LndNode
	P    *LndNode

	// LndVersion is S's and P's lnd release, LSPVersion L's, as the
	// binaries report them.
	LndVersion rpcclient.Version
	LSPVersion rpcclient.Version

	// RecipientVersion is P's lnd release.
	RecipientVersion rpcclient.Version

	// Holdd is the running holdd, nil while stopped.
	Holdd *Holdd

	// ChanSL and ChanLP are the short channel ids of the two channels.
	ChanSL uint64
	ChanLP uint64

	// SetupDuration is how long NewNetwork took.
	SetupDuration time.Duration

	holddBin string
	holddDir string

	// holddRPCAddr stays the same across holdd restarts.
	holddRPCAddr string

	// RecipientHoldd is holdd in the recipient role on P, when a test
	// started it; recipientRPCAddr stays the same across its restarts.
	RecipientHoldd   *Holdd
	recipientRPCAddr string

	holddMtx sync.Mutex

	// dumped records that DumpLogs ran, so TestMain does not repeat
	// what a failing test already printed.
	dumped atomic.Bool
}

// cacheDir is where scripts/build-deps.sh puts the pinned binaries.
func cacheDir() string {
	if dir := os.Getenv("HOLDD_CACHE"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".cache/holdd"
	}
	return filepath.Join(home, ".cache", "holdd")
}

// lndBin is where scripts/build-deps.sh puts the lnd of release tag.
func lndBin(tag string) string {
	return filepath.Join(cacheDir(), "lnd-"+tag, "lnd")
}

// DefaultConfig locates the binaries built by scripts/build-deps.sh.
// HOLDD_ITEST_LND and HOLDD_ITEST_BTCD override the paths, HOLDD_ITEST_HOLDD
// runs a prebuilt holdd instead of building ./cmd/holdd.
// HOLDD_ITEST_LSP_LND (a release tag such as v0.20.2-beta) runs L alone on
// that release, from the same cache; HOLDD_ITEST_RECIPIENT_LND does so for P.
func DefaultConfig() Config {
	cfg := Config{
		LndBin:  lndBin(DefaultLndVersion),
		BtcdBin: filepath.Join(cacheDir(), "btcd-current", "btcd"),
	}
	if bin := os.Getenv("HOLDD_ITEST_LND"); bin != "" {
		cfg.LndBin = bin
	}
	if tag := os.Getenv("HOLDD_ITEST_LSP_LND"); tag != "" {
		cfg.LSPLndVersion = tag
		cfg.LSPLndBin = lndBin(tag)
	}
	if tag := os.Getenv("HOLDD_ITEST_RECIPIENT_LND"); tag != "" {
		cfg.RecipientLndVersion = tag
		cfg.RecipientLndBin = lndBin(tag)
	}
	if bin := os.Getenv("HOLDD_ITEST_BTCD"); bin != "" {
		cfg.BtcdBin = bin
	}
	if bin := os.Getenv("HOLDD_ITEST_HOLDD"); bin != "" {
		cfg.HolddBin = bin
	}
	return cfg
}

// NewNetwork starts btcd, S, L and P, funds the wallets, opens S->L and
// L->P, waits until S can route to P, then starts holdd on L. On error the
// returned Network (if not nil) still holds whatever was started; the caller
// must Close it.
func NewNetwork(ctx context.Context, cfg Config) (*Network, error) {
	start := time.Now()

	if cfg.LSPLndBin == "" {
		cfg.LSPLndBin = cfg.LndBin
	}
	if cfg.RecipientLndBin == "" {
		cfg.RecipientLndBin = cfg.LndBin
	}
	for _, bin := range []string{cfg.LndBin, cfg.LSPLndBin,
		cfg.RecipientLndBin, cfg.BtcdBin} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%w: %s", errNoBinary, bin)
		}
	}
	lndVersion, err := lndBinaryVersion(ctx, cfg.LndBin)
	if err != nil {
		return nil, err
	}
	lspVersion, err := lndBinaryVersion(ctx, cfg.LSPLndBin)
	if err != nil {
		return nil, err
	}
	recipientVersion, err := lndBinaryVersion(ctx, cfg.RecipientLndBin)
	if err != nil {
		return nil, err
	}
	if cfg.RecipientLndVersion != "" {
		want, err := parseLndVersion(cfg.RecipientLndVersion)
		if err != nil {
			return nil, fmt.Errorf("P's lnd version: %w", err)
		}
		if want != recipientVersion {
			return nil, fmt.Errorf("%s reports lnd %s, want %s",
				cfg.RecipientLndBin, recipientVersion, want)
		}
	}
	if cfg.LSPLndVersion != "" {
		want, err := parseLndVersion(cfg.LSPLndVersion)
		if err != nil {
			return nil, fmt.Errorf("L's lnd version: %w", err)
		}
		if want != lspVersion {
			return nil, fmt.Errorf("%s reports lnd %s, want %s",
				cfg.LSPLndBin, lspVersion, want)
		}
	}

	base, err := os.MkdirTemp("", "holdd-itest-")
	if err != nil {
		return nil, err
	}
	n := &Network{
		BaseDir:    base,
		LndVersion: lndVersion,
		LSPVersion: lspVersion,

		RecipientVersion: recipientVersion,
		LogDir:           filepath.Join(base, "logs"),
		holddDir:         filepath.Join(base, "holdd"),
	}
	if err := os.MkdirAll(n.LogDir, 0o755); err != nil {
		return n, err
	}
	fmt.Printf("itest: data and logs in %s (logs: %s)\n", base, n.LogDir)
	fmt.Printf("itest: L runs lnd %s (%s), S and P lnd %s (%s)\n",
		lspVersion, cfg.LSPLndBin, lndVersion, cfg.LndBin)

	// holdd compiles while the chain and the nodes come up.
	var (
		buildWG  sync.WaitGroup
		buildErr error
	)
	if !cfg.SkipHoldd {
		n.holddBin = cfg.HolddBin
		if n.holddBin == "" {
			buildWG.Add(1)
			go func() {
				defer buildWG.Done()
				n.holddBin, buildErr = buildHoldd(ctx, base,
					n.LogDir)
			}()
		}
	}
	waitBuild := func() error {
		buildWG.Wait()
		return buildErr
	}

	if err := n.setupChain(ctx, cfg); err != nil {
		return n, errors.Join(err, waitBuild())
	}
	if err := n.setupChannels(ctx); err != nil {
		return n, errors.Join(err, waitBuild())
	}

	if !cfg.SkipHoldd {
		if err := waitBuild(); err != nil {
			return n, err
		}
		if err := n.StartHoldd(ctx, cfg.HolddArgs...); err != nil {
			return n, err
		}
	}

	n.SetupDuration = time.Since(start)
	fmt.Printf("itest: network up in %v\n", n.SetupDuration.Round(
		time.Millisecond))
	return n, nil
}

// setupChain starts btcd and the three nodes, and funds the wallets with
// mature, post-segwit coins.
func (n *Network) setupChain(ctx context.Context, cfg Config) error {
	var err error
	n.Btcd, err = startBtcd(ctx, cfg.BtcdBin,
		filepath.Join(n.BaseDir, "btcd"), n.LogDir)
	if err != nil {
		return fmt.Errorf("start btcd: %w", err)
	}

	// lnd waits for a chain backend whose tip is recent; the genesis
	// block is from 2011.
	if _, err := n.Btcd.Generate(1); err != nil {
		return err
	}

	n.S, err = newLndNode("S", cfg.LndBin, n.BaseDir, n.LogDir, n.Btcd)
	if err != nil {
		return err
	}
	n.L, err = newLndNode("L", cfg.LSPLndBin, n.BaseDir, n.LogDir, n.Btcd,
		lspArgs(n.LSPVersion)...)
	if err != nil {
		return err
	}
	n.P, err = newLndNode("P", cfg.RecipientLndBin, n.BaseDir, n.LogDir,
		n.Btcd, recipientArgs(n.RecipientVersion)...)
	if err != nil {
		return err
	}

	if err := n.forEachNode(func(node *LndNode) error {
		return node.Start(ctx)
	}); err != nil {
		return err
	}

	// One coinbase pays all wallets: S once, L twice, P once (P has no
	// channel to open but gets coins for tests that need them).
	var outs []wire.TxOut
	for _, node := range []*LndNode{n.S, n.L, n.L, n.P} {
		addr, err := node.NewAddress(ctx)
		if err != nil {
			return err
		}
		decoded, err := btcutil.DecodeAddress(addr, netParams)
		if err != nil {
			return fmt.Errorf("decode %s address %s: %w",
				node.Name, addr, err)
		}
		script, err := txscript.PayToAddrScript(decoded)
		if err != nil {
			return err
		}
		outs = append(outs, wire.TxOut{
			Value: WalletFunding, PkScript: script,
		})
	}
	fundHeight, err := n.Btcd.FundCoinbase(outs)
	if err != nil {
		return err
	}

	// Mature the coinbase and pass segwit activation in one go.
	toMine := max(SegwitHeight-fundHeight,
		int32(netParams.CoinbaseMaturity)+1)
	if _, err := n.MineBlocks(ctx, uint32(toMine)); err != nil {
		return err
	}

	want := map[*LndNode]int64{
		n.S: WalletFunding, n.L: 2 * WalletFunding, n.P: WalletFunding,
	}
	return n.forEachNode(func(node *LndNode) error {
		return waitFor(ctx, DefaultTimeout,
			fmt.Sprintf("lnd %s confirmed balance %d sat", node.Name,
				want[node]),
			func(ctx context.Context) (bool, error) {
				bal, err := node.Lightning.WalletBalance(ctx,
					&lnrpc.WalletBalanceRequest{})
				if err != nil {
					return false, err
				}
				if bal.ConfirmedBalance != want[node] {
					return false, fmt.Errorf("confirmed "+
						"%d, unconfirmed %d",
						bal.ConfirmedBalance,
						bal.UnconfirmedBalance)
				}
				return true, nil
			})
	})
}

// setupChannels opens S->L and L->P, confirms them deep enough to be
// announced and waits until S finds a route to P. S->L is private, as a
// wallet client's channel to its LSP is: holdd holds only for such clients
// by default. L->P is public.
func (n *Network) setupChannels(ctx context.Context) error {
	if err := n.S.ConnectPeer(ctx, n.L); err != nil {
		return err
	}
	if err := n.P.ConnectPeer(ctx, n.L); err != nil {
		return err
	}

	var points [2]*lnrpc.ChannelPoint
	pairs := [2][2]*LndNode{{n.S, n.L}, {n.L, n.P}}
	for i, pair := range pairs {
		open := pair[0].OpenChannel
		if i == 0 {
			open = pair[0].OpenPrivateChannel
		}
		cp, err := open(ctx, pair[1], ChannelCapacity)
		if err != nil {
			return err
		}
		points[i] = cp
	}
	for _, cp := range points {
		txid, err := chainhash.NewHash(cp.GetFundingTxidBytes())
		if err != nil {
			return err
		}
		if err := n.Btcd.WaitInMempool(ctx, *txid); err != nil {
			return err
		}
	}
	if _, err := n.MineBlocks(ctx, announceConfs); err != nil {
		return err
	}

	for i, pair := range pairs {
		var scid uint64
		for _, node := range pair {
			ch, err := node.WaitChannelActive(ctx, points[i])
			if err != nil {
				return err
			}
			scid = ch.ChanId
		}
		if i == 0 {
			n.ChanSL = scid
		} else {
			n.ChanLP = scid
		}
	}

	// S learns L->P from gossip; until then it cannot route to P.
	return waitFor(ctx, DefaultTimeout, "S to find a route to P via L",
		func(ctx context.Context) (bool, error) {
			resp, err := n.S.Lightning.QueryRoutes(ctx,
				&lnrpc.QueryRoutesRequest{
					PubKey: n.P.PubKeyHex,
					Amt:    10_000,
				})
			if err != nil {
				return false, err
			}
			return len(resp.Routes) > 0, nil
		})
}

// Transport is the release transport holdd must pick for L's lnd: its own
// peer link from 0.21 on, lnd's custom-message API before.
func (n *Network) Transport() string {
	if n.LSPVersion.Less(nativeOnionMessages) {
		return TransportCustomMsg
	}
	return TransportPeer
}

// RecipientTransport is how P's holdd gets onion messages from P's lnd.
func (n *Network) RecipientTransport() string {
	if n.RecipientVersion.Less(nativeOnionMessages) {
		return TransportCustomMsg
	}
	return TransportPeer
}

// Nodes returns S, L and P.
func (n *Network) Nodes() []*LndNode {
	return []*LndNode{n.S, n.L, n.P}
}

// forEachNode runs f on S, L and P in parallel and joins the errors.
func (n *Network) forEachNode(f func(*LndNode) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, node := range n.Nodes() {
		if node == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(node); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("lnd %s: %w",
					node.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// BlockHeight returns the chain's best height (btcd's).
func (n *Network) BlockHeight() (int32, error) {
	return n.Btcd.Height()
}

// MineBlocks mines count blocks (mempool transactions included) and waits
// until every lnd node, and holdd if it runs, is synced to the new height,
// which it returns.
func (n *Network) MineBlocks(ctx context.Context, count uint32) (int32,
	error) {

	height, err := n.Btcd.Generate(count)
	if err != nil {
		return 0, err
	}
	return height, n.WaitSynced(ctx, height)
}

// WaitSynced waits until every lnd node, and holdd if it runs, has reached
// height.
func (n *Network) WaitSynced(ctx context.Context, height int32) error {
	err := n.forEachNode(func(node *LndNode) error {
		// A node a test took offline catches up when it starts.
		if node.Stopped() {
			return nil
		}
		return node.waitSynced(ctx, height)
	})
	if err != nil {
		return err
	}

	n.holddMtx.Lock()
	h := n.Holdd
	n.holddMtx.Unlock()
	if h == nil {
		return nil
	}
	return h.waitHeight(ctx, height)
}

// Close stops every process. It keeps BaseDir; RemoveData deletes it.
func (n *Network) Close() error {
	var errs []error
	if err := n.StopHoldd(); err != nil {
		errs = append(errs, err)
	}
	if err := n.StopRecipientHoldd(); err != nil {
		errs = append(errs, err)
	}
	if n.S != nil || n.L != nil || n.P != nil {
		errs = append(errs, n.forEachNode(func(node *LndNode) error {
			return node.close()
		}))
	}
	if err := n.Btcd.stop(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RemoveData deletes BaseDir with every log in it.
func (n *Network) RemoveData() error {
	return os.RemoveAll(n.BaseDir)
}

// DumpLogs writes the last lines of every process log (and of the holdd
// build output) to w.
func (n *Network) DumpLogs(w io.Writer, lines int) {
	n.dumped.Store(true)
	entries, err := os.ReadDir(n.LogDir)
	if err != nil {
		fmt.Fprintf(w, "itest: cannot list %s: %v\n", n.LogDir, err)
		return
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(n.LogDir, name)
		fmt.Fprintf(w, "\n===== last %d lines of %s =====\n%s\n",
			lines, path, tailFile(path, lines))
	}
}

// LogsDumped reports whether DumpLogs has run.
func (n *Network) LogsDumped() bool {
	return n.dumped.Load()
}
