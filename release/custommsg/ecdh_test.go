package custommsg

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnrpc/signrpc"
	"github.com/stretchr/testify/require"
)

// TestNodeKeyECDH checks the secret against the sender's side of the
// exchange, SHA256(compressed(e*K)), and the request against what lnd's
// DeriveSharedKey needs to pick the node key.
func TestNodeKeyECDH(t *testing.T) {
	node := testKey(0x42)
	signer := &fakeSigner{key: node}
	ecdh := NewNodeKeyECDH(signer, node.PubKey(), 3*time.Second)

	require.True(t, ecdh.PubKey().IsEqual(node.PubKey()))

	for i, ephemeral := range []*btcec.PrivateKey{
		testKey(0x01), testKey(0x02), testKey(0xfe),
	} {
		before := time.Now()
		got, err := ecdh.ECDH(ephemeral.PubKey())
		require.NoError(t, err)

		// The ephemeral key holder computes e*K: the same point.
		x, y := btcec.S256().ScalarMult(
			node.PubKey().X(), node.PubKey().Y(),
			ephemeral.Serialize(),
		)
		compressed := make([]byte, 33)
		compressed[0] = 0x02 + byte(y.Bit(0))
		x.FillBytes(compressed[1:])
		want := sha256.Sum256(compressed)
		require.Equal(t, want, got)

		calls := signer.calls()
		require.Len(t, calls, i+1)
		req := calls[i]
		require.Equal(t, ephemeral.PubKey().SerializeCompressed(),
			req.EphemeralPubkey)
		require.Nil(t, req.KeyLoc, "deprecated key_loc must not be set")
		require.NotNil(t, req.KeyDesc)
		require.Empty(t, req.KeyDesc.RawKeyBytes)
		require.NotNil(t, req.KeyDesc.KeyLoc)
		require.EqualValues(t, 6, req.KeyDesc.KeyLoc.KeyFamily)
		require.EqualValues(t, 0, req.KeyDesc.KeyLoc.KeyIndex)

		signer.mu.Lock()
		deadline := signer.deadlines[i]
		signer.mu.Unlock()
		require.WithinDuration(t, before.Add(3*time.Second), deadline,
			time.Second)
	}
}

// TestNodeKeyECDHCache checks that only an immediate repeat of the same key
// skips lnd.
func TestNodeKeyECDHCache(t *testing.T) {
	node := testKey(0x42)
	signer := &fakeSigner{key: node}
	ecdh := NewNodeKeyECDH(signer, node.PubKey(), time.Second)
	a, b := testKey(0x0a).PubKey(), testKey(0x0b).PubKey()

	first, err := ecdh.ECDH(a)
	require.NoError(t, err)
	again, err := ecdh.ECDH(a)
	require.NoError(t, err)
	require.Equal(t, first, again)
	require.Len(t, signer.calls(), 1)

	other, err := ecdh.ECDH(b)
	require.NoError(t, err)
	require.NotEqual(t, first, other)
	require.Len(t, signer.calls(), 2)

	back, err := ecdh.ECDH(a)
	require.NoError(t, err)
	require.Equal(t, first, back)
	require.Len(t, signer.calls(), 3)

	// A failure is not cached: the next call asks again.
	signer.mu.Lock()
	signer.err = errors.New("wallet locked")
	signer.mu.Unlock()
	_, err = ecdh.ECDH(b)
	require.ErrorIs(t, err, ErrDeriveSharedKey)
	signer.mu.Lock()
	signer.err = nil
	signer.mu.Unlock()
	again, err = ecdh.ECDH(b)
	require.NoError(t, err)
	require.Equal(t, other, again)
	require.Len(t, signer.calls(), 5)
}

func TestNodeKeyECDHErrors(t *testing.T) {
	node := testKey(0x42)
	rpcErr := errors.New("permission denied")

	tests := []struct {
		name    string
		signer  *fakeSigner
		pub     *btcec.PublicKey
		timeout time.Duration
		wantErr []error
		noCall  bool
	}{{
		name:    "rpc error",
		signer:  &fakeSigner{key: node, err: rpcErr},
		pub:     testKey(1).PubKey(),
		wantErr: []error{ErrDeriveSharedKey, rpcErr},
	}, {
		name: "short key",
		signer: &fakeSigner{key: node, resp: &signrpc.SharedKeyResponse{
			SharedKey: make([]byte, 31),
		}},
		pub:     testKey(1).PubKey(),
		wantErr: []error{ErrBadSharedKey},
	}, {
		name: "long key",
		signer: &fakeSigner{key: node, resp: &signrpc.SharedKeyResponse{
			SharedKey: make([]byte, 33),
		}},
		pub:     testKey(1).PubKey(),
		wantErr: []error{ErrBadSharedKey},
	}, {
		name: "empty response",
		signer: &fakeSigner{
			key: node, resp: &signrpc.SharedKeyResponse{},
		},
		pub:     testKey(1).PubKey(),
		wantErr: []error{ErrBadSharedKey},
	}, {
		name:    "timeout",
		signer:  &fakeSigner{key: node, block: true},
		pub:     testKey(1).PubKey(),
		timeout: 20 * time.Millisecond,
		wantErr: []error{ErrDeriveSharedKey, context.DeadlineExceeded},
	}, {
		name:    "nil key",
		signer:  &fakeSigner{key: node},
		wantErr: []error{ErrNilKey},
		noCall:  true,
	}}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = time.Second
			}
			ecdh := NewNodeKeyECDH(
				tc.signer, node.PubKey(), timeout,
			)
			got, err := ecdh.ECDH(tc.pub)
			for _, want := range tc.wantErr {
				require.ErrorIs(t, err, want)
			}
			require.Equal(t, [32]byte{}, got)
			if tc.noCall {
				require.Empty(t, tc.signer.calls())
			} else {
				require.Len(t, tc.signer.calls(), 1)
			}
		})
	}
}

func TestNodeKeyECDHDefaultTimeout(t *testing.T) {
	node := testKey(0x42)
	signer := &fakeSigner{key: node}
	before := time.Now()
	_, err := NewNodeKeyECDH(signer, node.PubKey(), 0).ECDH(
		testKey(3).PubKey(),
	)
	require.NoError(t, err)
	require.WithinDuration(t, before.Add(DefaultECDHTimeout),
		signer.deadlines[0], time.Second)
}
