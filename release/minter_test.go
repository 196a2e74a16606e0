package release

import (
	"bytes"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/stretchr/testify/require"
)

func privKey(b byte) *btcec.PrivateKey {
	var k [32]byte
	k[31] = b
	priv, _ := btcec.PrivKeyFromBytes(k[:])
	return priv
}

// peelAt peels msg with the node key and returns the result.
func peelAt(t *testing.T, key *btcec.PrivateKey,
	msgPath *onionmsg.BlindedPath) *onionmsg.Peeled {

	t.Helper()
	sessionKey := privKey(99)
	msg, err := onionmsg.BuildOnionMessage(sessionKey, msgPath, nil,
		map[uint64][]byte{onionmsg.ReleaseHeldHTLCType: {0}})
	require.NoError(t, err)
	peeled, err := onionmsg.NewPeeler(&keychain.PrivKeyECDH{PrivKey: key}).
		Peel(msg)
	require.NoError(t, err)
	return peeled
}

// TestMintedPathsReachHolddWithPathID follows a minted two-hop path the way
// lnd and holdd peel it: lnd forwards to holdd's key, holdd finds an
// authentic path_id for the claim.
func TestMintedPathsReachHolddWithPathID(t *testing.T) {
	lnd, holdd := privKey(1), privKey(2)
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	m, err := NewMinter(auth, lnd.PubKey(), holdd.PubKey())
	require.NoError(t, err)
	claim := testClaim()

	paths, err := m.Mint(claim, 3)
	require.NoError(t, err)
	require.Len(t, paths, 3)
	for i, p := range paths {
		require.True(t, p.IntroNode.IsEqual(lnd.PubKey()))
		require.Len(t, p.Hops, 2)
		// Padding makes both hops the same size.
		require.Equal(t, len(p.Hops[0].CipherText),
			len(p.Hops[1].CipherText))
		for j := range i {
			require.False(t, p.PathKey.IsEqual(paths[j].PathKey),
				"paths %d and %d share a session key", i, j)
		}
	}

	atLnd := peelAt(t, lnd, paths[0])
	require.False(t, atLnd.Final)
	require.True(t, atLnd.NextNodeID.IsEqual(holdd.PubKey()))

	peeled, err := onionmsg.NewPeeler(
		&keychain.PrivKeyECDH{PrivKey: holdd}).Peel(atLnd.NextMessage)
	require.NoError(t, err)
	require.True(t, peeled.Final)
	require.Equal(t, []byte{0}, peeled.FinalTLVs[onionmsg.ReleaseHeldHTLCType])
	pathID := peeled.Data.PathID.ValOpt().UnwrapOr(nil)
	got, err := auth.Verify(pathID, claim.ExpiresAt.Add(-time.Minute))
	require.NoError(t, err)
	require.Equal(t, claim.Key, got.Key)
	require.Equal(t, claim.PaymentHash, got.PaymentHash)
}

// TestOneHopMinterForCustomMessageMode mints [lnd: path_id] paths: lnd's
// own key reads the path_id.
func TestOneHopMinterForCustomMessageMode(t *testing.T) {
	lnd := privKey(3)
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	m, err := NewMinter(auth, lnd.PubKey(), nil)
	require.NoError(t, err)
	claim := testClaim()
	paths, err := m.Mint(claim, 1)
	require.NoError(t, err)
	require.Len(t, paths[0].Hops, 1)

	peeled := peelAt(t, lnd, paths[0])
	require.True(t, peeled.Final)
	require.True(t, bytes.Equal(auth.Mint(claim),
		peeled.Data.PathID.ValOpt().UnwrapOr(nil)))
}

func TestMinterRejects(t *testing.T) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	_, err = NewMinter(auth, nil, privKey(1).PubKey())
	require.Error(t, err)
	_, err = NewMinter(nil, privKey(1).PubKey(), nil)
	require.Error(t, err)
	m, err := NewMinter(auth, privKey(1).PubKey(), nil)
	require.NoError(t, err)
	_, err = m.Mint(testClaim(), 0)
	require.Error(t, err)
}
