package release

import (
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release/onionmsg"
)

// Minter mints release paths: two-hop blinded message paths
// [lnd: next_node_id = holdd] -> [holdd: path_id]. lnd is the introduction
// node because senders can reach it; holdd is the final hop because lnd
// v0.21 drops release_held_htlc addressed to itself but forwards it to a
// connected peer without reading it.
type Minter struct {
	auth     *Authenticator
	lndKey   *btcec.PublicKey
	holddKey *btcec.PublicKey

	// newSessionKey is swapped in tests for reproducible paths.
	newSessionKey func() (*btcec.PrivateKey, error)
}

// NewMinter returns a Minter for paths through lndKey to holddKey. With a
// nil holddKey it mints one-hop paths [lnd: path_id], for lnd releases
// before 0.21 where holdd reads lnd's own final hop through the
// custom-message API.
func NewMinter(auth *Authenticator, lndKey,
	holddKey *btcec.PublicKey) (*Minter, error) {

	if auth == nil || lndKey == nil {
		return nil, errors.New("release: minter needs an authenticator " +
			"and lnd's node key")
	}
	return &Minter{
		auth:          auth,
		lndKey:        lndKey,
		holddKey:      holddKey,
		newSessionKey: btcec.NewPrivateKey,
	}, nil
}

// Mint returns n release paths for a claim, each blinded with a fresh
// session key so that they cannot be linked to each other.
func (m *Minter) Mint(c Claim, n int) ([]*onionmsg.BlindedPath, error) {
	if n < 1 {
		return nil, fmt.Errorf("release: cannot mint %d paths", n)
	}
	pathID := m.auth.Mint(c)
	paths := make([]*onionmsg.BlindedPath, 0, n)
	for range n {
		sessionKey, err := m.newSessionKey()
		if err != nil {
			return nil, err
		}
		hops := onionmsg.HopsToHoldd(m.lndKey, m.holddKey, pathID)
		path, err := onionmsg.BuildBlindedPath(sessionKey, hops, true)
		if err != nil {
			return nil, fmt.Errorf("release: build path: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}
