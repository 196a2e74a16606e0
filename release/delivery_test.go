package release

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release/onionmsg"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/stretchr/testify/require"
)

func pubKey(b byte) *btcec.PublicKey {
	var k [32]byte
	k[31] = b
	priv, _ := btcec.PrivKeyFromBytes(k[:])
	return priv.PubKey()
}

// testPath is a two-hop path with fixed keys and ciphertexts, and its wire
// bytes assembled by hand from the BOLT 4 blinded_path layout.
func testPath(seed byte) (*onionmsg.BlindedPath, []byte) {
	intro, pathKey := pubKey(seed), pubKey(seed+1)
	b0, b1 := pubKey(seed+2), pubKey(seed+3)
	c0 := bytes.Repeat([]byte{seed}, 5)
	c1 := bytes.Repeat([]byte{seed + 1}, 300)
	p := &onionmsg.BlindedPath{
		IntroNode: intro,
		PathKey:   pathKey,
		Hops: []*sphinx.BlindedHopInfo{
			{BlindedNodePub: b0, CipherText: c0},
			{BlindedNodePub: b1, CipherText: c1},
		},
	}
	var want []byte
	want = append(want, intro.SerializeCompressed()...)
	want = append(want, pathKey.SerializeCompressed()...)
	want = append(want, 2)
	want = append(want, b0.SerializeCompressed()...)
	want = append(want, 0x00, 0x05)
	want = append(want, c0...)
	want = append(want, b1.SerializeCompressed()...)
	want = append(want, 0x01, 0x2c)
	want = append(want, c1...)
	return p, want
}

func TestPathDeliveryBytes(t *testing.T) {
	p1, p1Bytes := testPath(10)
	p2, p2Bytes := testPath(20)
	var hash lntypes.Hash
	for i := range hash {
		hash[i] = 0xab
	}
	d := &PathDelivery{
		Key:         plugin.CircuitKey{ChanID: 0x0102030405060708, HtlcID: 9},
		PaymentHash: hash,
		AmountMsat:  100_000,
		ExpiresAt:   time.Unix(1_900_000_000, 0),
		Paths:       []*onionmsg.BlindedPath{p1, p2},
	}
	got, err := d.Encode()
	require.NoError(t, err)

	paths := append(append([]byte(nil), p1Bytes...), p2Bytes...)
	var want []byte
	want = append(want, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8)
	want = append(want, 0x02, 0x08, 0, 0, 0, 0, 0, 0, 0, 9)
	want = append(want, 0x04, 0x20)
	want = append(want, hash[:]...)
	// tu64 100000 = 0x0186a0, three bytes.
	want = append(want, 0x06, 0x03, 0x01, 0x86, 0xa0)
	want = append(want, 0x08, 0x08)
	want = binary.BigEndian.AppendUint64(want, 1_900_000_000)
	// BigSize length of the paths: 0xfd + u16.
	want = append(want, 0x0a, 0xfd)
	want = binary.BigEndian.AppendUint16(want, uint16(len(paths)))
	want = append(want, paths...)
	require.Equal(t, want, got)

	back, err := DecodePathDelivery(got)
	require.NoError(t, err)
	require.Equal(t, d.Key, back.Key)
	require.Equal(t, d.PaymentHash, back.PaymentHash)
	require.Equal(t, d.AmountMsat, back.AmountMsat)
	require.True(t, d.ExpiresAt.Equal(back.ExpiresAt))
	require.Len(t, back.Paths, 2)
	for i, want := range [][]byte{p1Bytes, p2Bytes} {
		b, err := back.Paths[i].Bytes()
		require.NoError(t, err)
		require.Equal(t, want, b)
	}
}

func TestPathDeliveryRejects(t *testing.T) {
	p, _ := testPath(30)
	good, err := (&PathDelivery{Paths: []*onionmsg.BlindedPath{p},
		ExpiresAt: time.Unix(1, 0)}).Encode()
	require.NoError(t, err)

	// Drop the paths record: every field is required.
	withoutPaths := good[:bytes.Index(good, []byte{0x0a, 0xfd})]
	if withoutPaths == nil {
		withoutPaths = good[:len(good)-10]
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-1]},
		{"missing paths", withoutPaths},
		{"unknown even type", append(append([]byte(nil), good...),
			0x0c, 0x00)},
		{"garbage path", append(withoutPaths[:len(withoutPaths):len(withoutPaths)],
			0x0a, 0x03, 0x02, 0x00, 0x00)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePathDelivery(tc.data)
			require.ErrorIs(t, err, ErrBadDelivery)
		})
	}

	_, err = (&PathDelivery{}).Encode()
	require.ErrorIs(t, err, ErrBadDelivery)
}

func TestLDKReleasePathsBytes(t *testing.T) {
	p1, p1Bytes := testPath(40)
	p2, p2Bytes := testPath(50)
	entries := []LDKReleasePath{{HtlcID: 3, Path: p1},
		{HtlcID: 0x1122334455667788, Path: p2}}

	value, err := EncodeLDKReleasePaths(entries)
	require.NoError(t, err)
	var want []byte
	want = append(want, 0, 0, 0, 0, 0, 0, 0, 3)
	want = append(want, p1Bytes...)
	want = append(want, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88)
	want = append(want, p2Bytes...)
	require.Equal(t, want, value)

	rec, err := EncodeLDKReleasePathsRecord(entries)
	require.NoError(t, err)
	// BigSize(75537) = fe 00 01 27 11, then BigSize(len).
	wantRec := []byte{0xfe, 0x00, 0x01, 0x27, 0x11, 0xfd}
	wantRec = binary.BigEndian.AppendUint16(wantRec, uint16(len(want)))
	wantRec = append(wantRec, want...)
	require.Equal(t, wantRec, rec)

	back, err := DecodeLDKReleasePaths(value)
	require.NoError(t, err)
	require.Len(t, back, 2)
	require.Equal(t, uint64(3), back[0].HtlcID)
	require.Equal(t, uint64(0x1122334455667788), back[1].HtlcID)
	b, err := back[1].Path.Bytes()
	require.NoError(t, err)
	require.Equal(t, p2Bytes, b)

	_, err = DecodeLDKReleasePaths(value[:len(value)-1])
	require.ErrorIs(t, err, ErrBadDelivery)
}

func FuzzDecodePathDelivery(f *testing.F) {
	p, _ := testPath(60)
	good, err := (&PathDelivery{Paths: []*onionmsg.BlindedPath{p},
		ExpiresAt: time.Unix(5, 0)}).Encode()
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodePathDelivery(data)
		if err != nil {
			return
		}
		// What decodes re-encodes to a stream that decodes the same.
		again, err := d.Encode()
		require.NoError(t, err)
		d2, err := DecodePathDelivery(again)
		require.NoError(t, err)
		require.Equal(t, d.Key, d2.Key)
		require.Len(t, d2.Paths, len(d.Paths))
	})
}
