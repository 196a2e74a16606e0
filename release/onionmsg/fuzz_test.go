package onionmsg

import (
	"bytes"
	"errors"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeBlindedPath checks that decoding never panics, that every
// failure is ErrInvalidPath, and that a decoded path re-encodes to exactly
// the bytes it was read from.
func FuzzDecodeBlindedPath(f *testing.F) {
	_, pubkeyPath := layoutPath(false)
	_, scidPath := layoutPath(true)
	f.Add(pubkeyPath)
	f.Add(scidPath)

	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeBlindedPath(bytes.NewReader(data))
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidPath)
			return
		}
		b, err := p.Bytes()
		require.NoError(t, err)
		require.LessOrEqual(t, len(b), len(data))
		require.Equal(t, data[:len(b)], b)
	})
}

// fuzzPeelKey is the node key FuzzPeel peels with; the committed seeds
// include messages addressed to it.
var fuzzPeelKey = testKey(0xa1)

// FuzzPeel checks that Peel never panics on any packet and path key, and
// fails only with the package's sentinel errors.
func FuzzPeel(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.msg.OnionBlob, fx.msg.PathKey.SerializeCompressed())
	f.Add([]byte{0}, fx.msg.PathKey.SerializeCompressed())

	peeler := peelerFor(fuzzPeelKey)
	sentinels := []error{ErrBadOnion, ErrBadPayload, ErrNoEncryptedData,
		ErrBadEncryptedData, ErrNoNextHop}

	f.Fuzz(func(t *testing.T, onion, pathKey []byte) {
		key, err := btcec.ParsePubKey(pathKey)
		if err != nil {
			return
		}
		got, err := peeler.Peel(&lnwire.OnionMessage{
			PathKey: key, OnionBlob: onion,
		})
		if err != nil {
			require.Nil(t, got)
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		require.NotNil(t, got.Data)
		if !got.Final {
			require.NotNil(t, got.NextMessage)
		}
	})
}

// FuzzParsePayload reaches the onionmsg_tlv parser directly: behind a real
// onion it only sees payloads whose HMAC checks, which random bytes never do.
func FuzzParsePayload(f *testing.F) {
	enc := bytes.Repeat([]byte{0xee}, 20)
	f.Add(rawTLV(4, enc), true)
	f.Add(bytes.Join([][]byte{rawTLV(3, nil), rawTLV(4, enc),
		rawTLV(74, []byte{0})}, nil), true)
	f.Add(bytes.Join([][]byte{rawTLV(4, enc), rawTLV(6, nil)}, nil), false)
	_, path := layoutPath(true)
	f.Add(append([]byte{0x02, 0xfd, byte(len(path) >> 8), byte(len(path))},
		append(path, rawTLV(4, enc)...)...), true)

	sentinels := []error{ErrBadPayload, ErrNoEncryptedData}
	f.Fuzz(func(t *testing.T, payload []byte, final bool) {
		var out Peeled
		enc, err := parsePayload(payload, final, &out)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		require.NotEmpty(t, enc)
		if !final {
			require.Nil(t, out.ReplyPath)
			require.Nil(t, out.FinalTLVs)
			require.Nil(t, out.OddTLVs)
		}
		for typ := range out.FinalTLVs {
			require.GreaterOrEqual(t, typ, MinFinalTLVType)
		}
	})
}
