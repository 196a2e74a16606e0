package onionmsg

import (
	"bytes"
	"io"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/tlv"
	"github.com/stretchr/testify/require"
)

// layoutPath returns a two-hop path and its wire bytes assembled by hand
// from the BOLT 4 layout. With scid set the introduction node is a sciddir.
func layoutPath(scid bool) (*BlindedPath, []byte) {
	intro := testKey(1).PubKey()
	pathKey := testKey(2).PubKey()
	b0, b1 := testKey(3).PubKey(), testKey(4).PubKey()
	c0 := bytes.Repeat([]byte{0xc0}, 17)
	c1 := bytes.Repeat([]byte{0xc1}, 300)

	p := &BlindedPath{
		PathKey: pathKey,
		Hops: []*sphinx.BlindedHopInfo{
			{BlindedNodePub: b0, CipherText: c0},
			{BlindedNodePub: b1, CipherText: c1},
		},
	}
	var want []byte
	if scid {
		p.IntroSCIDDir = &SCIDDir{
			Direction: 1,
			SCID:      lnwire.NewShortChanIDFromInt(0x0102030405060708),
		}
		want = append(want, 0x01, 1, 2, 3, 4, 5, 6, 7, 8)
	} else {
		p.IntroNode = intro
		want = append(want, intro.SerializeCompressed()...)
	}
	want = append(want, pathKey.SerializeCompressed()...)
	want = append(want, 0x02)
	want = append(want, b0.SerializeCompressed()...)
	want = append(want, 0x00, 0x11)
	want = append(want, c0...)
	want = append(want, b1.SerializeCompressed()...)
	want = append(want, 0x01, 0x2c)
	want = append(want, c1...)
	return p, want
}

func TestBlindedPathEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		scid bool
	}{
		{name: "pubkey intro"},
		{name: "sciddir intro", scid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, want := layoutPath(tc.scid)

			got, err := p.Bytes()
			require.NoError(t, err)
			require.Equal(t, want, got)

			var buf bytes.Buffer
			require.NoError(t, p.Encode(&buf))
			require.Equal(t, want, buf.Bytes())

			// Decoding consumes exactly one path, so two back to
			// back come out as two.
			r := bytes.NewReader(append(append([]byte{}, want...),
				want...))
			for range 2 {
				d, err := DecodeBlindedPath(r)
				require.NoError(t, err)
				require.True(t, d.Equal(p))
				require.Equal(t, tc.scid, d.IntroSCIDDir != nil)
				require.Equal(t, !tc.scid, d.IntroNode != nil)
				if tc.scid {
					require.Equal(t, *p.IntroSCIDDir,
						*d.IntroSCIDDir)
				}
			}
			require.Zero(t, r.Len())

			sp, err := p.SphinxPath()
			if tc.scid {
				require.ErrorIs(t, err, ErrSCIDDirIntro)
				return
			}
			require.NoError(t, err)
			require.True(t, sp.IntroductionPoint.IsEqual(p.IntroNode))
			require.True(t, sp.BlindingPoint.IsEqual(p.PathKey))
			require.Equal(t, p.Hops, sp.BlindedHops)
			require.True(t, NewBlindedPath(sp).Equal(p))
		})
	}
}

func TestDecodeBlindedPathRejects(t *testing.T) {
	valid, validBytes := layoutPath(false)
	_, scidBytes := layoutPath(true)
	require.NotNil(t, valid)

	// Offsets into the pubkey-intro layout.
	const (
		pathKeyAt = 33
		numHopsAt = 66
		hop0At    = 67
		hop0LenAt = hop0At + 33
	)
	// x = 0 is not on secp256k1 (7 is not a square mod p).
	notOnCurve := append([]byte{0x02}, make([]byte, 32)...)
	_, err := btcec.ParsePubKey(notOnCurve)
	require.Error(t, err)

	with := func(b []byte, at int, patch ...byte) []byte {
		out := append([]byte{}, b...)
		copy(out[at:], patch)
		return out
	}

	for _, tc := range []struct {
		name  string
		input []byte
		eof   bool
	}{
		{name: "empty", input: nil, eof: true},
		{name: "num_hops 0",
			input: with(validBytes, numHopsAt, 0x00)},
		{name: "bad first_node_id point",
			input: with(validBytes, 0, notOnCurve...)},
		{name: "bad first_path_key point",
			input: with(validBytes, pathKeyAt, notOnCurve...)},
		{name: "bad blinded_node_id point",
			input: with(validBytes, hop0At, notOnCurve...)},
		{name: "uncompressed key prefix",
			input: with(validBytes, pathKeyAt, 0x04)},
		{name: "sciddir direction 4",
			input: with(scidBytes, 0, 0x04)},
		{name: "sciddir direction ff",
			input: with(scidBytes, 0, 0xff)},
		{name: "enc_len 0",
			input: with(validBytes, hop0LenAt, 0x00, 0x00)},
		{name: "enc_len past the end",
			input: with(validBytes, hop0LenAt, 0xff, 0xff),
			eof:   true},
		{name: "more hops than bytes",
			input: with(validBytes, numHopsAt, 0x03), eof: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBlindedPath(bytes.NewReader(tc.input))
			require.ErrorIs(t, err, ErrInvalidPath)
			if tc.eof {
				require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			}
		})
	}

	// Every strict prefix of a valid path is truncated.
	for _, b := range [][]byte{validBytes, scidBytes} {
		for n := range len(b) {
			_, err := DecodeBlindedPath(bytes.NewReader(b[:n]))
			require.ErrorIs(t, err, ErrInvalidPath, "prefix %d", n)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF,
				"prefix %d", n)
		}
	}
}

func TestBlindedPathEncodeRejects(t *testing.T) {
	key := testKey(9).PubKey()
	hop := &sphinx.BlindedHopInfo{BlindedNodePub: key, CipherText: []byte{1}}
	tooMany := make([]*sphinx.BlindedHopInfo, 256)
	for i := range tooMany {
		tooMany[i] = hop
	}

	for _, tc := range []struct {
		name string
		path *BlindedPath
	}{
		{name: "nil", path: nil},
		{name: "no intro", path: &BlindedPath{PathKey: key,
			Hops: []*sphinx.BlindedHopInfo{hop}}},
		{name: "both intros", path: &BlindedPath{IntroNode: key,
			IntroSCIDDir: &SCIDDir{}, PathKey: key,
			Hops: []*sphinx.BlindedHopInfo{hop}}},
		{name: "direction 2", path: &BlindedPath{
			IntroSCIDDir: &SCIDDir{Direction: 2}, PathKey: key,
			Hops: []*sphinx.BlindedHopInfo{hop}}},
		{name: "no path key", path: &BlindedPath{IntroNode: key,
			Hops: []*sphinx.BlindedHopInfo{hop}}},
		{name: "no hops", path: &BlindedPath{IntroNode: key,
			PathKey: key}},
		{name: "256 hops", path: &BlindedPath{IntroNode: key,
			PathKey: key, Hops: tooMany}},
		{name: "nil hop", path: &BlindedPath{IntroNode: key,
			PathKey: key, Hops: []*sphinx.BlindedHopInfo{nil}}},
		{name: "empty data", path: &BlindedPath{IntroNode: key,
			PathKey: key, Hops: []*sphinx.BlindedHopInfo{
				{BlindedNodePub: key}}}},
		{name: "data over u16", path: &BlindedPath{IntroNode: key,
			PathKey: key, Hops: []*sphinx.BlindedHopInfo{
				{BlindedNodePub: key,
					CipherText: make([]byte, 65536)}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.ErrorIs(t, tc.path.Encode(&buf), ErrInvalidPath)
			require.Zero(t, buf.Len(), "nothing written")
			_, err := tc.path.SphinxPath()
			require.ErrorIs(t, err, ErrInvalidPath)
		})
	}
}

// TestBuildBlindedPathPadding checks that padded hops all have the same
// length, across the gaps where a padding record's length prefix grows.
func TestBuildBlindedPathPadding(t *testing.T) {
	a, b := testKey(0x0a), testKey(0x0b)
	session := testKey(0x0c)
	const longID = 300

	for short := 0; short <= longID; short++ {
		first := forwardTo(b.PubKey())
		first.PadBy(7) // replaced, not kept
		last := record.NewFinalHopBlindedRouteData(
			nil, bytes.Repeat([]byte{0xee}, short),
		)
		hops := []Hop{
			{NodeID: a.PubKey(), Data: first},
			{NodeID: b.PubKey(), Data: last},
			{NodeID: a.PubKey(), Data: record.NewFinalHopBlindedRouteData(
				nil, bytes.Repeat([]byte{0xdd}, longID),
			)},
		}
		p, err := BuildBlindedPath(session, hops, true)
		require.NoError(t, err, "short %d", short)
		require.Len(t, p.Hops, 3)
		for _, h := range p.Hops[1:] {
			require.Len(t, h.CipherText, len(p.Hops[0].CipherText),
				"short %d", short)
		}

		// The caller's data is left alone.
		require.Len(t, first.Padding.UnwrapOrFail(t).Val, 7)
		require.True(t, last.Padding.IsNone())

		// The hops decrypt to their data plus padding.
		pathKey := p.PathKey
		for i, k := range []*btcec.PrivateKey{a, b, a} {
			r := sphinx.NewRouter(&sphinx.PrivKeyECDH{PrivKey: k},
				sphinx.NewNoOpReplayLog())
			plain, err := r.DecryptBlindedHopData(pathKey,
				p.Hops[i].CipherText)
			require.NoError(t, err)
			d, err := record.DecodeBlindedRouteData(
				bytes.NewReader(plain),
			)
			require.NoError(t, err)
			require.True(t, d.Padding.IsSome())
			for _, b := range d.Padding.UnwrapOrFail(t).Val {
				require.Zero(t, b)
			}
			want := *hops[i].Data
			want.Padding = d.Padding
			wantBytes, err := record.EncodeBlindedRouteData(&want)
			require.NoError(t, err)
			require.Equal(t, wantBytes, plain)

			pathKey, err = r.NextEphemeral(pathKey)
			require.NoError(t, err)
		}
	}

	// Without padding the caller's records go through unchanged.
	data := forwardTo(b.PubKey())
	data.PadBy(3)
	p, err := BuildBlindedPath(session, []Hop{{NodeID: a.PubKey(),
		Data: data}}, false)
	require.NoError(t, err)
	plain, err := record.EncodeBlindedRouteData(data)
	require.NoError(t, err)
	require.Len(t, p.Hops[0].CipherText, len(plain)+16)
	require.True(t, p.PathKey.IsEqual(session.PubKey()))
	require.True(t, p.IntroNode.IsEqual(a.PubKey()))
}

func TestPaddingFor(t *testing.T) {
	var gaps []int
	for gap := range 1024 {
		gaps = append(gaps, gap)
	}
	for gap := 65530; gap < 65550; gap++ {
		gaps = append(gaps, gap)
	}
	for _, gap := range gaps {
		n, ok := paddingFor(gap)
		if !ok {
			if gap <= 4+65535 {
				require.Contains(t, []int{0, 1, 255, 256}, gap)
			}
			continue
		}
		var d record.BlindedRouteData
		d.PadBy(n)
		b, err := record.EncodeBlindedRouteData(&d)
		require.NoError(t, err)
		require.Len(t, b, gap, "gap %d", gap)
	}
}

func TestBuildBlindedPathRejects(t *testing.T) {
	k := testKey(5)
	data := record.NewFinalHopBlindedRouteData(nil, []byte{1})
	for _, tc := range []struct {
		name    string
		session *btcec.PrivateKey
		hops    []Hop
	}{
		{name: "no hops", session: k},
		{name: "no node id", session: k, hops: []Hop{{Data: data}}},
		{name: "no data", session: k,
			hops: []Hop{{NodeID: k.PubKey()}}},
		{name: "no session key",
			hops: []Hop{{NodeID: k.PubKey(), Data: data}}},
		{name: "nil next node id", session: k, hops: []Hop{{
			NodeID: k.PubKey(),
			Data: &record.BlindedRouteData{
				NextNodeID: tlv.SomeRecordT(
					tlv.NewPrimitiveRecord[tlv.TlvType4,
						*btcec.PublicKey](nil),
				),
			},
		}}},
		{name: "nil override", session: k, hops: []Hop{{
			NodeID: k.PubKey(),
			Data: &record.BlindedRouteData{
				NextBlindingOverride: tlv.SomeRecordT(
					tlv.NewPrimitiveRecord[tlv.TlvType8,
						*btcec.PublicKey](nil),
				),
			},
		}}},
		{name: "data too long to pad", session: k, hops: []Hop{{
			NodeID: k.PubKey(),
			Data: record.NewFinalHopBlindedRouteData(
				nil, make([]byte, 65600),
			),
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildBlindedPath(tc.session, tc.hops, true)
			require.ErrorIs(t, err, ErrInvalidHops)
		})
	}
}
