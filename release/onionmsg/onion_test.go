package onionmsg

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

// TestRoundTrip sends [A: next_node_id=B] -> [B: path_id] with TLV 74 and a
// reply path, and peels it at A and then at B.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	require.True(t, f.path.IntroNode.IsEqual(f.a.PubKey()))
	require.Len(t, f.msg.OnionBlob, 1+33+1300+32)

	atA, err := peelerFor(f.a).Peel(f.msg)
	require.NoError(t, err)
	require.False(t, atA.Final)
	require.True(t, atA.NextNodeID.IsEqual(f.b.PubKey()))
	require.Nil(t, atA.NextSCID)
	require.Nil(t, atA.FinalTLVs)
	require.Nil(t, atA.ReplyPath)
	require.True(t, atA.Data.PathID.IsNone())
	require.NotNil(t, atA.NextMessage)

	// B is not fooled by the message addressed to A, and A cannot peel
	// B's layer.
	_, err = peelerFor(f.b).Peel(f.msg)
	require.ErrorIs(t, err, ErrBadOnion)
	_, err = peelerFor(f.a).Peel(atA.NextMessage)
	require.ErrorIs(t, err, ErrBadOnion)

	atB, err := peelerFor(f.b).Peel(atA.NextMessage)
	require.NoError(t, err)
	require.True(t, atB.Final)
	require.Equal(t, f.pathID, atB.Data.PathID.UnwrapOrFail(t).Val)
	require.Equal(t, map[uint64][]byte{74: {0}}, atB.FinalTLVs)
	require.Nil(t, atB.OddTLVs)
	require.NotNil(t, atB.ReplyPath)
	require.True(t, atB.ReplyPath.Equal(f.replyPath))
	require.Nil(t, atB.NextMessage)
	require.Nil(t, atB.NextNodeID)
}

// TestBuildMatchesLnd builds the same message with lnd's
// route.OnionMessageBlindedPathToSphinxPath and lightning-onion directly.
func TestBuildMatchesLnd(t *testing.T) {
	f := newFixture(t)
	sp, err := f.path.SphinxPath()
	require.NoError(t, err)
	reply, err := f.replyPath.SphinxPath()
	require.NoError(t, err)

	lndPath, err := route.OnionMessageBlindedPathToSphinxPath(sp, reply,
		[]*lnwire.FinalHopTLV{{TLVType: 74, Value: []byte{0}}})
	require.NoError(t, err)
	pkt, err := sphinx.NewOnionPacket(lndPath, testKey(0x33), nil,
		sphinx.DeterministicPacketFiller)
	require.NoError(t, err)
	var want bytes.Buffer
	require.NoError(t, pkt.Encode(&want))

	require.Equal(t, want.Bytes(), f.msg.OnionBlob)
	require.True(t, f.msg.PathKey.IsEqual(testKey(0x11).PubKey()))
}

func TestReplyPathSCIDDir(t *testing.T) {
	f := newFixture(t)
	reply := *f.replyPath
	reply.IntroNode = nil
	reply.IntroSCIDDir = &SCIDDir{
		Direction: 1,
		SCID: lnwire.ShortChannelID{
			BlockHeight: 800000, TxIndex: 12, TxPosition: 1,
		},
	}
	msg, err := BuildOnionMessage(testKey(0x55), f.path, &reply,
		map[uint64][]byte{72: {}})
	require.NoError(t, err)

	atA, err := peelerFor(f.a).Peel(msg)
	require.NoError(t, err)
	atB, err := peelerFor(f.b).Peel(atA.NextMessage)
	require.NoError(t, err)
	require.True(t, atB.Final)
	require.Equal(t, *reply.IntroSCIDDir, *atB.ReplyPath.IntroSCIDDir)
	require.Nil(t, atB.ReplyPath.IntroNode)
	require.True(t, atB.ReplyPath.Equal(&reply))

	// An empty value comes back empty but present.
	v, ok := atB.FinalTLVs[72]
	require.True(t, ok)
	require.NotNil(t, v)
	require.Empty(t, v)
}

func TestBuildOnionMessageSizes(t *testing.T) {
	f := newFixture(t)

	// Too big for 1300 bytes: the jumbo size.
	big := bytes.Repeat([]byte{0x77}, 2000)
	msg, err := BuildOnionMessage(testKey(0x66), f.path, nil,
		map[uint64][]byte{65: big})
	require.NoError(t, err)
	require.Len(t, msg.OnionBlob, 1+33+32768+32)
	atA, err := peelerFor(f.a).Peel(msg)
	require.NoError(t, err)
	atB, err := peelerFor(f.b).Peel(atA.NextMessage)
	require.NoError(t, err)
	require.Equal(t, big, atB.FinalTLVs[65])

	_, err = BuildOnionMessage(testKey(0x66), f.path, nil,
		map[uint64][]byte{65: make([]byte, 40000)})
	require.ErrorIs(t, err, ErrMessageTooLarge)

	for _, typ := range []uint64{0, 1, 2, 4, 63} {
		_, err = BuildOnionMessage(testKey(0x66), f.path, nil,
			map[uint64][]byte{typ: {0}})
		require.ErrorIs(t, err, ErrInvalidFinalTLV, "type %d", typ)
	}
	_, err = BuildOnionMessage(nil, f.path, nil, nil)
	require.Error(t, err)
	_, err = BuildOnionMessage(testKey(0x66), &BlindedPath{}, nil, nil)
	require.ErrorIs(t, err, ErrInvalidPath)
	_, err = BuildOnionMessage(testKey(0x66), f.path, &BlindedPath{}, nil)
	require.ErrorIs(t, err, ErrInvalidPath)

	long := *f.path
	long.Hops = make([]*sphinx.BlindedHopInfo, sphinx.NumMaxHops+1)
	for i := range long.Hops {
		long.Hops[i] = f.path.Hops[0]
	}
	_, err = BuildOnionMessage(testKey(0x66), &long, nil, nil)
	require.ErrorIs(t, err, ErrInvalidPath)
}

// TestPeelPayloadRules sends hand-made onionmsg_tlv payloads and checks
// which BOLT 4 lets through.
func TestPeelPayloadRules(t *testing.T) {
	a, b := testKey(0xa1), testKey(0xb2)
	pathID := []byte("path-id")

	oneHop, err := BuildBlindedPath(testKey(0x12), []Hop{{
		NodeID: b.PubKey(),
		Data:   record.NewFinalHopBlindedRouteData(nil, pathID),
	}}, false)
	require.NoError(t, err)
	enc := oneHop.Hops[0].CipherText
	replyBytes, err := newFixture(t).replyPath.Bytes()
	require.NoError(t, err)

	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	for _, tc := range []struct {
		name      string
		payload   []byte
		err       error
		finalTLVs map[uint64][]byte
		oddTLVs   map[uint64][]byte
	}{
		{name: "encrypted data only", payload: rawTLV(4, enc)},
		{name: "known and unknown even final TLVs",
			payload: cat(rawTLV(4, enc), rawTLV(72, nil),
				rawTLV(74, []byte{0}), rawTLV(101, []byte{9})),
			finalTLVs: map[uint64][]byte{72: {}, 74: {0},
				101: {9}}},
		{name: "unknown odd below 64 is kept aside",
			payload: cat(rawTLV(3, []byte{1}), rawTLV(4, enc),
				rawTLV(63, nil)),
			oddTLVs: map[uint64][]byte{3: {1}, 63: {}}},
		{name: "unknown even below 64",
			payload: cat(rawTLV(4, enc), rawTLV(6, []byte{1})),
			err:     ErrBadPayload},
		{name: "type 0",
			payload: cat(rawTLV(0, nil), rawTLV(4, enc)),
			err:     ErrBadPayload},
		{name: "empty payload", payload: nil,
			err: ErrNoEncryptedData},
		{name: "empty encrypted data", payload: rawTLV(4, nil),
			err: ErrNoEncryptedData},
		{name: "not in ascending order",
			payload: cat(rawTLV(74, []byte{0}), rawTLV(4, enc)),
			err:     ErrBadPayload},
		{name: "duplicate type",
			payload: cat(rawTLV(4, enc), rawTLV(4, enc)),
			err:     ErrBadPayload},
		{name: "record past the end",
			payload: cat(rawTLV(4, enc), []byte{74, 9, 0}),
			err:     ErrBadPayload},
		{name: "garbage reply path",
			payload: cat(rawTLV(2, []byte{7, 7, 7}), rawTLV(4, enc)),
			err:     ErrBadPayload},
		{name: "reply path with trailing byte",
			payload: cat(rawTLV(2, cat(replyBytes, []byte{0})),
				rawTLV(4, enc)),
			err: ErrBadPayload},
		{name: "encrypted data for someone else",
			payload: rawTLV(4, bytes.Repeat([]byte{1}, len(enc))),
			err:     ErrBadEncryptedData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := onionWithPayloads(t, oneHop, [][]byte{tc.payload})
			got, err := peelerFor(b).Peel(msg)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.True(t, got.Final)
			require.Equal(t, pathID,
				got.Data.PathID.UnwrapOrFail(t).Val)
			require.Equal(t, tc.finalTLVs, got.FinalTLVs)
			require.Equal(t, tc.oddTLVs, got.OddTLVs)
		})
	}

	// Encrypted data that decrypts but is not an encrypted_data_tlv.
	badPlain, err := BuildBlindedPathRaw(testKey(0x13), []*sphinx.HopInfo{{
		NodePub: b.PubKey(), PlainText: []byte{0x04, 0x21, 0x02},
	}})
	require.NoError(t, err)
	msg := onionWithPayloads(t, badPlain,
		[][]byte{rawTLV(4, badPlain.Hops[0].CipherText)})
	_, err = peelerFor(b).Peel(msg)
	require.ErrorIs(t, err, ErrBadEncryptedData)

	// A forwarding hop only takes encrypted_recipient_data.
	twoHop, err := BuildBlindedPath(testKey(0x14), []Hop{
		{NodeID: a.PubKey(), Data: forwardTo(b.PubKey())},
		{NodeID: b.PubKey(),
			Data: record.NewFinalHopBlindedRouteData(nil, pathID)},
	}, false)
	require.NoError(t, err)
	final := rawTLV(4, twoHop.Hops[1].CipherText)
	for _, extra := range [][]byte{
		rawTLV(3, nil), rawTLV(74, []byte{0}),
		rawTLV(2, replyBytes[:200]),
	} {
		msg := onionWithPayloads(t, twoHop, [][]byte{
			cat(rawTLV(4, twoHop.Hops[0].CipherText), extra), final,
		})
		if extra[0] == 2 {
			msg = onionWithPayloads(t, twoHop, [][]byte{
				cat(extra, rawTLV(4, twoHop.Hops[0].CipherText)),
				final,
			})
		}
		_, err := peelerFor(a).Peel(msg)
		require.ErrorIs(t, err, ErrBadPayload, "extra %x", extra[:2])
	}
}

// TestPeelForwarding covers the ways a forwarding hop names its next hop.
func TestPeelForwarding(t *testing.T) {
	a, b := testKey(0xa1), testKey(0xb2)
	final := record.NewFinalHopBlindedRouteData(nil, []byte{1})
	override := testKey(0x99).PubKey()
	scid := lnwire.ShortChannelID{BlockHeight: 700000, TxIndex: 5,
		TxPosition: 2}

	byNode := forwardTo(b.PubKey())
	byNode.PadBy(3)

	for _, tc := range []struct {
		name     string
		data     *record.BlindedRouteData
		err      error
		nextNode *btcec.PublicKey
		nextSCID *lnwire.ShortChannelID
		override *btcec.PublicKey
	}{
		{name: "next node id", data: byNode, nextNode: b.PubKey()},
		{name: "short channel id",
			data: record.NewNonFinalBlindedRouteDataOnionMessage(
				fn.NewRight[*btcec.PublicKey](scid), nil, nil,
			),
			nextSCID: &scid},
		{name: "override",
			data: record.NewNonFinalBlindedRouteDataOnionMessage(
				fn.NewLeft[*btcec.PublicKey,
					lnwire.ShortChannelID](b.PubKey()),
				override, nil,
			),
			nextNode: b.PubKey(), override: override},
		{name: "no next hop",
			data: record.NewFinalHopBlindedRouteData(nil, []byte{2}),
			err:  ErrNoNextHop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, err := BuildBlindedPath(testKey(0x15), []Hop{
				{NodeID: a.PubKey(), Data: tc.data},
				{NodeID: b.PubKey(), Data: final},
			}, true)
			require.NoError(t, err)
			msg, err := BuildOnionMessage(testKey(0x16), path, nil,
				nil)
			require.NoError(t, err)

			got, err := peelerFor(a).Peel(msg)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.False(t, got.Final)
			require.Equal(t, tc.nextSCID, got.NextSCID)
			if tc.nextNode == nil {
				require.Nil(t, got.NextNodeID)
			} else {
				require.True(t, got.NextNodeID.IsEqual(
					tc.nextNode))
			}

			// Without an override the next path key is what the
			// path's creator derived for B.
			want := tc.override
			if want == nil {
				next, err := sphinx.NextEphemeralPriv(
					&sphinx.PrivKeyECDH{
						PrivKey: testKey(0x15),
					}, a.PubKey(),
				)
				require.NoError(t, err)
				want = next.PubKey()
			}
			require.True(t, got.NextMessage.PathKey.IsEqual(want))

			if tc.override == nil {
				atB, err := peelerFor(b).Peel(got.NextMessage)
				require.NoError(t, err)
				require.True(t, atB.Final)
			}
		})
	}
}

// TestPeelHostile feeds Peel broken messages: every one is an error, none
// panics.
func TestPeelHostile(t *testing.T) {
	f := newFixture(t)
	peeler := peelerFor(f.a)
	blob := f.msg.OnionBlob

	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 0x01
		return b
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	withVersion := func(v byte) []byte {
		b := bytes.Clone(blob)
		b[0] = v
		return b
	}
	badKey := bytes.Clone(blob)
	copy(badKey[1:], append([]byte{0x02}, make([]byte, 32)...))

	otherKey := testKey(0x77).PubKey()
	for _, tc := range []struct {
		name    string
		pathKey *btcec.PublicKey
		blob    []byte
	}{
		{name: "version 1", blob: withVersion(1)},
		{name: "version ff", blob: withVersion(0xff)},
		{name: "ephemeral key not on curve", blob: badKey},
		{name: "ephemeral key flipped", blob: flip(5)},
		{name: "payload flipped", blob: flip(40)},
		{name: "payload tail flipped", blob: flip(len(blob) - 33)},
		{name: "hmac flipped", blob: flip(len(blob) - 1)},
		{name: "empty", blob: nil},
		{name: "header only", blob: blob[:34]},
		{name: "header and hmac", blob: blob[:34+32]},
		{name: "truncated by one", blob: blob[:len(blob)-1]},
		{name: "truncated to half", blob: blob[:len(blob)/2]},
		{name: "one byte too long", blob: append(bytes.Clone(blob), 0)},
		{name: "oversized", blob: make([]byte, maxOnionLen+1)},
		{name: "random", blob: random(len(blob))},
		{name: "random with version 0",
			blob: append([]byte{0}, random(len(blob)-1)...)},
		{name: "wrong path key", pathKey: otherKey, blob: blob},
		{name: "no path key", pathKey: nil, blob: blob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pathKey := f.msg.PathKey
			if tc.name == "wrong path key" ||
				tc.name == "no path key" {

				pathKey = tc.pathKey
			}
			got, err := peeler.Peel(&lnwire.OnionMessage{
				PathKey: pathKey, OnionBlob: tc.blob,
			})
			require.ErrorIs(t, err, ErrBadOnion)
			require.Nil(t, got)
		})
	}

	_, err := peeler.Peel(nil)
	require.ErrorIs(t, err, ErrBadOnion)

	// Any single bit flip anywhere in the packet is caught.
	for i := range blob {
		b := bytes.Clone(blob)
		b[i] ^= 1 << (i % 8)
		_, err := peeler.Peel(&lnwire.OnionMessage{
			PathKey: f.msg.PathKey, OnionBlob: b,
		})
		require.ErrorIs(t, err, ErrBadOnion, "byte %d", i)
	}

	// Random packets of random sizes under random path keys.
	for i := range 200 {
		pathKey := testKey(byte(i + 1)).PubKey()
		blob := random(rng.IntN(maxOnionLen + 100))
		if len(blob) > 0 && i%2 == 0 {
			blob[0] = 0
		}
		_, err := peeler.Peel(&lnwire.OnionMessage{
			PathKey: pathKey, OnionBlob: blob,
		})
		require.Error(t, err)
	}

	// The untouched message still peels.
	_, err = peeler.Peel(f.msg)
	require.NoError(t, err)
}

// failingECDH is a node key whose ECDH fails after n successes, like a
// signrpc DeriveSharedKey whose lnd went away.
type failingECDH struct {
	sphinx.SingleKeyECDH
	n int
}

var errKeyGone = errors.New("key gone")

func (k *failingECDH) ECDH(pub *btcec.PublicKey) ([32]byte, error) {
	if k.n == 0 {
		return [32]byte{}, errKeyGone
	}
	k.n--
	return k.SingleKeyECDH.ECDH(pub)
}

// TestPeelECDHFailure checks that a failing node key is reported as such at
// each step that needs it, never as a bad message.
func TestPeelECDHFailure(t *testing.T) {
	f := newFixture(t)
	// Peeling at A takes four ECDHs: two for the onion's shared secret,
	// one to decrypt the data, one for the next path key.
	for n := range 4 {
		p := NewPeeler(&failingECDH{
			SingleKeyECDH: &sphinx.PrivKeyECDH{PrivKey: f.a}, n: n,
		})
		_, err := p.Peel(f.msg)
		require.ErrorIs(t, err, ErrECDH, "after %d", n)
		require.ErrorIs(t, err, errKeyGone)
		require.NotErrorIs(t, err, ErrBadOnion)
		require.NotErrorIs(t, err, ErrBadEncryptedData)
	}
	p := NewPeeler(&failingECDH{
		SingleKeyECDH: &sphinx.PrivKeyECDH{PrivKey: f.a}, n: 4,
	})
	_, err := p.Peel(f.msg)
	require.NoError(t, err)
}
