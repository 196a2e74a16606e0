package custommsg

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnrpc/signrpc"
	"google.golang.org/grpc"
)

// DefaultECDHTimeout bounds one DeriveSharedKey call when NewNodeKeyECDH is
// given no timeout.
const DefaultECDHTimeout = 10 * time.Second

var (
	// ErrNilKey is returned by ECDH for a nil public key.
	ErrNilKey = errors.New("custommsg: nil public key")

	// ErrDeriveSharedKey wraps every error of the DeriveSharedKey call.
	ErrDeriveSharedKey = errors.New("custommsg: DeriveSharedKey failed")

	// ErrBadSharedKey is returned when lnd answers with a shared key that
	// is not 32 bytes.
	ErrBadSharedKey = errors.New("custommsg: DeriveSharedKey returned " +
		"a malformed shared key")
)

// SignerClient is the part of signrpc the ECDH needs.
type SignerClient interface {
	DeriveSharedKey(ctx context.Context, in *signrpc.SharedKeyRequest,
		opts ...grpc.CallOption) (*signrpc.SharedKeyResponse, error)
}

// NodeKeyECDH implements sphinx.SingleKeyECDH with lnd's node key via
// DeriveSharedKey (key family 6, index 0). lnd returns
// SHA256(compressed(k*P)), exactly what sphinx expects of an ECDH.
//
// Peeling one final-hop message asks for the secret with the path key twice
// (once to unblind our onion key, once to decrypt encrypted_recipient_data),
// so the most recent answer is kept to save an lnd round trip.
type NodeKeyECDH struct {
	signer  SignerClient
	nodePub *btcec.PublicKey
	timeout time.Duration

	mu       sync.Mutex
	lastPub  [btcec.PubKeyBytesLenCompressed]byte
	lastKey  [32]byte
	lastSeen bool
}

// A compile-time check that NodeKeyECDH is what the Sphinx router takes.
var _ sphinx.SingleKeyECDH = (*NodeKeyECDH)(nil)

// NewNodeKeyECDH returns an ECDH with lnd's node key. nodePub is lnd's
// identity key (GetInfo), reported by PubKey; timeout bounds each
// DeriveSharedKey call (DefaultECDHTimeout if not positive), because the
// sphinx interface carries no context.
func NewNodeKeyECDH(signer SignerClient, nodePub *btcec.PublicKey,
	timeout time.Duration) *NodeKeyECDH {

	if timeout <= 0 {
		timeout = DefaultECDHTimeout
	}
	return &NodeKeyECDH{
		signer:  signer,
		nodePub: nodePub,
		timeout: timeout,
	}
}

// PubKey returns lnd's node key.
func (e *NodeKeyECDH) PubKey() *btcec.PublicKey {
	return e.nodePub
}

// ECDH returns SHA256(compressed(k*pub)) for lnd's node key k, computed by
// lnd.
func (e *NodeKeyECDH) ECDH(pub *btcec.PublicKey) ([32]byte, error) {
	if pub == nil {
		return [32]byte{}, ErrNilKey
	}
	var ser [btcec.PubKeyBytesLenCompressed]byte
	copy(ser[:], pub.SerializeCompressed())

	e.mu.Lock()
	if e.lastSeen && e.lastPub == ser {
		key := e.lastKey
		e.mu.Unlock()
		return key, nil
	}
	e.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()

	// key_desc rather than the deprecated key_loc; no raw key, so lnd
	// derives the node key by locator alone.
	resp, err := e.signer.DeriveSharedKey(ctx, &signrpc.SharedKeyRequest{
		EphemeralPubkey: ser[:],
		KeyDesc: &signrpc.KeyDescriptor{
			KeyLoc: &signrpc.KeyLocator{
				KeyFamily: int32(keychain.KeyFamilyNodeKey),
				KeyIndex:  0,
			},
		},
	})
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: %w", ErrDeriveSharedKey, err)
	}
	if resp == nil || len(resp.SharedKey) != 32 {
		return [32]byte{}, fmt.Errorf("%w: %d bytes", ErrBadSharedKey,
			len(resp.GetSharedKey()))
	}

	var key [32]byte
	copy(key[:], resp.SharedKey)

	e.mu.Lock()
	e.lastPub, e.lastKey, e.lastSeen = ser, key, true
	e.mu.Unlock()

	return key, nil
}
