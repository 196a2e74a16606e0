package onionmsg

import (
	"bytes"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/stretchr/testify/require"
)

// testKey returns the private key whose 32 bytes are all b.
func testKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

func peelerFor(k *btcec.PrivateKey) *Peeler {
	return NewPeeler(&sphinx.PrivKeyECDH{PrivKey: k})
}

func forwardTo(next *btcec.PublicKey) *record.BlindedRouteData {
	return record.NewNonFinalBlindedRouteDataOnionMessage(
		fn.NewLeft[*btcec.PublicKey, lnwire.ShortChannelID](next),
		nil, nil,
	)
}

// fixture is a release-path-shaped message: [A: next_node_id=B] ->
// [B: path_id], with a reply path and TLV 74 = 00.
type fixture struct {
	a, b      *btcec.PrivateKey
	pathID    []byte
	path      *BlindedPath
	replyPath *BlindedPath
	msg       *lnwire.OnionMessage
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		a:      testKey(0xa1),
		b:      testKey(0xb2),
		pathID: bytes.Repeat([]byte{0x5a}, 48),
	}

	var err error
	f.path, err = BuildBlindedPath(testKey(0x11), []Hop{
		{NodeID: f.a.PubKey(), Data: forwardTo(f.b.PubKey())},
		{NodeID: f.b.PubKey(),
			Data: record.NewFinalHopBlindedRouteData(nil, f.pathID)},
	}, true)
	require.NoError(t, err)

	// The reply path leads back to a sender S through C.
	c, s := testKey(0xc3), testKey(0xd4)
	f.replyPath, err = BuildBlindedPath(testKey(0x22), []Hop{
		{NodeID: c.PubKey(), Data: forwardTo(s.PubKey())},
		{NodeID: s.PubKey(), Data: record.NewFinalHopBlindedRouteData(
			nil, []byte("reply"),
		)},
	}, true)
	require.NoError(t, err)

	f.msg, err = BuildOnionMessage(testKey(0x33), f.path, f.replyPath,
		map[uint64][]byte{74: {0}})
	require.NoError(t, err)
	return f
}

// onionWithPayloads builds an onion message along path whose per-hop
// onionmsg_tlv payloads are given raw, so tests can send what BuildOnionMessage
// never would.
func onionWithPayloads(t testing.TB, path *BlindedPath,
	payloads [][]byte) *lnwire.OnionMessage {

	t.Helper()
	require.Len(t, payloads, len(path.Hops))
	var sp sphinx.PaymentPath
	for i, hop := range path.Hops {
		hp, err := sphinx.NewTLVHopPayload(payloads[i])
		require.NoError(t, err)
		sp[i] = sphinx.OnionHop{
			NodePub:    *hop.BlindedNodePub,
			HopPayload: hp,
		}
	}
	pkt, err := sphinx.NewOnionPacket(&sp, testKey(0x44), nil,
		sphinx.DeterministicPacketFiller)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, pkt.Encode(&b))
	return lnwire.NewOnionMessage(path.PathKey, b.Bytes())
}

// rawTLV is one record of a hand-assembled TLV stream (types and lengths
// below 253).
func rawTLV(typ byte, value []byte) []byte {
	return append([]byte{typ, byte(len(value))}, value...)
}
