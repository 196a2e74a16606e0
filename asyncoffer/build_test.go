package asyncoffer

import (
	"testing"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/bolt12"

	"github.com/stretchr/testify/require"
)

func TestAggregateFees(t *testing.T) {
	tests := []struct {
		name                       string
		base, ppm, hopBase, hopPPM uint64
		wantBase, wantPPM          uint64
	}{
		{"nothing", 0, 0, 0, 0, 0, 0},
		{"one hop", 0, 0, 1000, 100, 1000, 100},
		// BOLT 4's example: two hops of 100 msat + 500 ppm give 201/1001.
		{"bolt4", 100, 500, 100, 500, 201, 1001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, p := aggregateFees(tc.base, tc.ppm, tc.hopBase,
				tc.hopPPM)
			require.Equal(t, tc.wantBase, b)
			require.Equal(t, tc.wantPPM, p)
		})
	}
}

func TestBuildOfferWithAmount(t *testing.T) {
	h := newHarness(t, nil)
	amt := uint64(21_000)
	offer, err := BuildOffer(OfferParams{
		Paths:      h.client.cfg.ServerPaths,
		SigningKey: testKey(0x40),
		AmountMsat: &amt,
	})
	require.NoError(t, err)
	require.Equal(t, amt, *offer.Amount)
	require.NotNil(t, offer.Description)
	require.Nil(t, offer.AbsoluteExpiry)

	_, err = BuildOffer(OfferParams{SigningKey: testKey(0x40)})
	require.ErrorIs(t, err, ErrBuild)
}

// TestBuildOfferChain: off mainnet the offer names its chain, so that a
// regtest server (and payer) accept it; on mainnet it names none.
func TestBuildOfferChain(t *testing.T) {
	h := newHarness(t, nil)
	regtest := *chaincfg.RegressionNetParams.GenesisHash
	offer, err := BuildOffer(OfferParams{
		Paths:      h.client.cfg.ServerPaths,
		SigningKey: testKey(0x40),
		Chain:      regtest,
	})
	require.NoError(t, err)
	require.Equal(t, []chainhash.Hash{regtest}, offer.Chains)
	require.True(t, offer.SupportsChain(regtest))

	offer, err = BuildOffer(OfferParams{
		Paths:      h.client.cfg.ServerPaths,
		SigningKey: testKey(0x40),
		Chain:      bolt12.BitcoinChain,
	})
	require.NoError(t, err)
	require.Nil(t, offer.Chains)
}
