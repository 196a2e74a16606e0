//go:build itest

package itest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/integration/rpctest"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/btcsuite/btcd/wire"
)

// netParams is the chain every process in the harness runs on.
var netParams = &chaincfg.RegressionNetParams

const (
	btcdRPCUser = "holdd-itest"
	btcdRPCPass = "holdd-itest-pass"
)

// Btcd is the network's only chain backend and miner.
type Btcd struct {
	// Dir is btcd's home: config, data, logs, rpc.cert and rpc.key.
	Dir      string
	RPCAddr  string
	P2PAddr  string
	CertPath string

	// MiningAddr receives btcd's generated coinbases.
	MiningAddr btcutil.Address

	// Client talks JSON-RPC over HTTP POST to btcd.
	Client *rpcclient.Client

	proc *process

	// mineMtx serialises block production so that a coinbase block built
	// here and btcd's own generate never race for the same height.
	mineMtx sync.Mutex
}

// startBtcd starts btcd in regtest mode with an rpc cert in its appdata and
// waits until its RPC answers.
func startBtcd(ctx context.Context, bin, dir, logDir string) (*Btcd, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	rpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p2pAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}

	// btcd's generate needs a mining address. Coins mined to it are never
	// spent: nodes are funded by coinbase outputs that pay them directly
	// (see FundCoinbase), so the key is thrown away.
	key, err := btcec.NewPrivateKey()
	if err != nil {
		return nil, err
	}
	miningAddr, err := btcutil.NewAddressWitnessPubKeyHash(
		btcutil.Hash160(key.PubKey().SerializeCompressed()), netParams,
	)
	if err != nil {
		return nil, err
	}

	// btcd writes a default config into ~/.btcd unless given one; an
	// empty file keeps it inside the test directory.
	confPath := filepath.Join(dir, "btcd.conf")
	if err := os.WriteFile(confPath, nil, 0o600); err != nil {
		return nil, err
	}

	args := []string{
		"--regtest",
		"--rpcuser=" + btcdRPCUser,
		"--rpcpass=" + btcdRPCPass,
		"--rpclisten=" + rpcAddr,
		"--listen=" + p2pAddr,
		"--txindex",
		"--nobanning",
		"--configfile=" + confPath,
		"--rpccert=" + filepath.Join(dir, "rpc.cert"),
		"--rpckey=" + filepath.Join(dir, "rpc.key"),
		"--datadir=" + filepath.Join(dir, "data"),
		"--logdir=" + filepath.Join(dir, "logs"),
		"--miningaddr=" + miningAddr.EncodeAddress(),
		"--debuglevel=info",
	}
	proc, err := startProcess(
		"btcd", filepath.Join(logDir, "btcd.log"), dir, bin, args...,
	)
	if err != nil {
		return nil, err
	}

	b := &Btcd{
		Dir:        dir,
		RPCAddr:    rpcAddr,
		P2PAddr:    p2pAddr,
		CertPath:   filepath.Join(dir, "rpc.cert"),
		MiningAddr: miningAddr,
		proc:       proc,
	}

	err = waitFor(ctx, DefaultTimeout, "btcd RPC to answer",
		func(context.Context) (bool, error) {
			if err := proc.checkAlive(); err != nil {
				return false, stop(err)
			}
			if b.Client == nil {
				cert, err := os.ReadFile(b.CertPath)
				if err != nil {
					return false, err
				}
				client, err := rpcclient.New(&rpcclient.ConnConfig{
					Host:         rpcAddr,
					User:         btcdRPCUser,
					Pass:         btcdRPCPass,
					Certificates: cert,
					HTTPPostMode: true,
				}, nil)
				if err != nil {
					return false, err
				}
				b.Client = client
			}
			_, err := b.Client.GetBlockCount()
			return err == nil, err
		})
	if err != nil {
		return b, err
	}
	return b, nil
}

// Height returns btcd's best height.
func (b *Btcd) Height() (int32, error) {
	_, height, err := b.Client.GetBestBlock()
	return height, err
}

// Generate mines n blocks with btcd's template (mempool transactions
// included) and returns the new best height.
func (b *Btcd) Generate(n uint32) (int32, error) {
	b.mineMtx.Lock()
	defer b.mineMtx.Unlock()

	// btcd mines in one call, but a large n would hold the RPC for long
	// on a loaded box; chunks keep every call short.
	const chunk = 100
	for n > 0 {
		k := min(n, chunk)
		if _, err := b.Client.Generate(k); err != nil {
			return 0, fmt.Errorf("generate %d blocks: %w", k, err)
		}
		n -= k
	}
	return b.Height()
}

// FundCoinbase mines one block whose coinbase pays outs directly, and
// returns its height. The outputs mature after CoinbaseMaturity (100)
// blocks. This funds lnd wallets without a wallet of our own: no signing,
// no transaction building.
func (b *Btcd) FundCoinbase(outs []wire.TxOut) (int32, error) {
	b.mineMtx.Lock()
	defer b.mineMtx.Unlock()

	prevHash, prevHeight, err := b.Client.GetBestBlock()
	if err != nil {
		return 0, err
	}
	prevMsg, err := b.Client.GetBlock(prevHash)
	if err != nil {
		return 0, err
	}
	prev := btcutil.NewBlock(prevMsg)
	prev.SetHeight(prevHeight)

	// Headers carry whole seconds and must be later than the median of
	// the last 11 blocks; the previous block's time plus one second is.
	ts := time.Unix(time.Now().Unix(), 0)
	if after := prevMsg.Header.Timestamp.Add(time.Second); ts.Before(after) {
		ts = after
	}

	block, err := rpctest.CreateBlock(
		prev, nil, rpctest.BlockVersion, ts, b.MiningAddr, outs,
		netParams,
	)
	if err != nil {
		return 0, fmt.Errorf("create coinbase block: %w", err)
	}
	if err := b.Client.SubmitBlock(block, nil); err != nil {
		return 0, fmt.Errorf("submit coinbase block: %w", err)
	}

	height, err := b.Height()
	if err != nil {
		return 0, err
	}
	if height != prevHeight+1 {
		return 0, fmt.Errorf("coinbase block not connected: height %d, "+
			"want %d", height, prevHeight+1)
	}
	return height, nil
}

// WaitInMempool waits until btcd's mempool holds txid.
func (b *Btcd) WaitInMempool(ctx context.Context, txid chainhash.Hash) error {
	return waitFor(ctx, DefaultTimeout,
		fmt.Sprintf("tx %v in btcd's mempool", txid),
		func(context.Context) (bool, error) {
			pool, err := b.Client.GetRawMempool()
			if err != nil {
				return false, err
			}
			for _, h := range pool {
				if *h == txid {
					return true, nil
				}
			}
			return false, nil
		})
}

// stop shuts btcd down.
func (b *Btcd) stop() error {
	if b == nil || b.proc == nil {
		return nil
	}
	if b.Client != nil {
		b.Client.Shutdown()
	}
	return b.proc.stop(10 * time.Second)
}

// errNoBinary is returned when a pinned binary has not been built.
var errNoBinary = errors.New("binary not found; run scripts/build-deps.sh")
