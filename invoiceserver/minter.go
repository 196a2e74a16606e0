package invoiceserver

import (
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release/onionmsg"
)

// HopMinter mints paths [lnd: next_node_id = holdd] -> [holdd: path_id],
// as release.Minter does for release paths: lnd is the introduction node
// because payers can reach it, holdd the final hop because lnd forwards to
// a connected peer without reading the message. With a nil holdd key the
// path is the one hop [lnd: path_id] (custom-message transport).
type HopMinter struct {
	lndKey   *btcec.PublicKey
	holddKey *btcec.PublicKey
}

// NewHopMinter returns a HopMinter for paths through lndKey to holddKey.
func NewHopMinter(lndKey, holddKey *btcec.PublicKey) (*HopMinter, error) {
	if lndKey == nil {
		return nil, errors.New("invoiceserver: minter needs lnd's " +
			"node key")
	}
	return &HopMinter{lndKey: lndKey, holddKey: holddKey}, nil
}

// MintPath implements PathMinter. Hop data is padded to one length.
func (m *HopMinter) MintPath(sessionKey *btcec.PrivateKey,
	pathID []byte) (*onionmsg.BlindedPath, error) {

	hops := onionmsg.HopsToHoldd(m.lndKey, m.holddKey, pathID)
	path, err := onionmsg.BuildBlindedPath(sessionKey, hops, true)
	if err != nil {
		return nil, fmt.Errorf("invoiceserver: build path: %w", err)
	}
	return path, nil
}
