package bolt12

import (
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// ErrUnknownNetwork is returned for a network name NetworkChain does not
// know.
var ErrUnknownNetwork = errors.New("unknown network")

// networkParams are the networks holdd runs on, by the names lnd uses.
var networkParams = map[string]*chaincfg.Params{
	"mainnet":  &chaincfg.MainNetParams,
	"testnet":  &chaincfg.TestNet3Params,
	"testnet4": &chaincfg.TestNet4Params,
	"signet":   &chaincfg.SigNetParams,
	"regtest":  &chaincfg.RegressionNetParams,
	"simnet":   &chaincfg.SimNetParams,
}

// NetworkChain is the chain hash BOLT 12 names a network by: its genesis
// block hash.
func NetworkChain(network string) (chainhash.Hash, error) {
	params := networkParams[network]
	if params == nil {
		return chainhash.Hash{}, fmt.Errorf("%w %q", ErrUnknownNetwork,
			network)
	}
	return *params.GenesisHash, nil
}
