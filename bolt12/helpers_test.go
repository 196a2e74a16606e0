package bolt12

import (
	"bytes"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/release/onionmsg"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/stretchr/testify/require"
)

// key returns the private key whose 32 bytes are all b.
func key(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

func ptr[T any](v T) *T { return &v }

// testPath is a two-hop blinded path with fixed keys; last is the final
// blinded node id's key byte.
func testPath(intro, last byte) *onionmsg.BlindedPath {
	return &onionmsg.BlindedPath{
		IntroNode: key(intro).PubKey(),
		PathKey:   key(intro + 1).PubKey(),
		Hops: []*sphinx.BlindedHopInfo{
			{
				BlindedNodePub: key(intro + 2).PubKey(),
				CipherText:     bytes.Repeat([]byte{0xaa}, 20),
			},
			{
				BlindedNodePub: key(last).PubKey(),
				CipherText:     bytes.Repeat([]byte{0xbb}, 30),
			},
		},
	}
}

var (
	testnetChain = chainhash.Hash{0x43, 0x49, 0x7f, 0xd7}
	testNow      = time.Unix(1_700_000_000, 0)
)

// rawRecords builds a stream from (type, value) pairs, unchecked.
func rawRecords(pairs ...any) []Record {
	var out []Record
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, NewRecord(uint64(pairs[i].(int)),
			pairs[i+1].([]byte)))
	}
	return out
}

// signedStream signs records (sorted, without a signature) with tag and k
// and returns the encoded stream, whatever the records hold.
func signedStream(t *testing.T, tag string, records []Record,
	k *btcec.PrivateKey) []byte {

	t.Helper()
	signed, err := sign(tag, records, k)
	require.NoError(t, err)
	return encodeRecords(signed)
}

// replaceRecord returns records with type typ set to value (added in order
// if absent) or, with value nil, removed.
func replaceRecord(records []Record, typ uint64, value []byte) []Record {
	var out []Record
	done := false
	for _, r := range records {
		if r.Type == typ {
			if value != nil {
				out = append(out, NewRecord(typ, value))
			}
			done = true
			continue
		}
		if !done && r.Type > typ && value != nil {
			out = append(out, NewRecord(typ, value))
			done = true
		}
		out = append(out, r)
	}
	if !done && value != nil {
		out = append(out, NewRecord(typ, value))
	}
	return out
}

// withoutSignature drops the signature records.
func withoutSignature(records []Record) []Record {
	var out []Record
	for _, r := range records {
		if !signatureRange.contains(r.Type) {
			out = append(out, r)
		}
	}
	return out
}
