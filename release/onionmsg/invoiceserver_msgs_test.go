package onionmsg

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Compressed points G, 2G and 3G: valid keys whose bytes a reader can check
// by eye.
const (
	hexG  = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	hex2G = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
	hex3G = "02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"
)

// handPathHex is a one-hop blinded path laid out by hand as LDK's
// BlindedPath::write writes it: introduction node G, path key 2G, one hop,
// blinded node id 3G, u16 length 2, encrypted data abcd. 104 bytes.
const handPathHex = hexG + hex2G + "01" + hex3G + "0002" + "abcd"

func spacedHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

func handPath(t testing.TB) *BlindedPath {
	t.Helper()
	p, err := DecodeBlindedPath(bytes.NewReader(spacedHex(t, handPathHex)))
	require.NoError(t, err)
	return p
}

func u64p(v uint64) *uint64 { return &v }

// TestAsyncMessagesExactBytes checks each encoder against bytes assembled
// by hand from LDK's rules: impl_writeable_tlv_based! writes a BigSize
// length and then the TLV stream; u16 and u64 are fixed width big endian;
// a Vec of paths is written without a count; the invoice without a length
// of its own.
func TestAsyncMessagesExactBytes(t *testing.T) {
	path := handPath(t)

	req := EncodeOfferPathsRequest(OfferPathsRequest{InvoiceSlot: 0x1234})
	require.Equal(t, spacedHex(t, "04 00 02 1234"), req)
	req = EncodeOfferPathsRequest(OfferPathsRequest{InvoiceSlot: 0})
	require.Equal(t, spacedHex(t, "04 00 02 0000"), req)

	// 104-byte path: record 0 is 00 68 <path> (106 bytes), record 2 is
	// 02 08 <u64> (10 bytes); 116 = 0x74.
	paths, err := EncodeOfferPaths(OfferPaths{
		Paths:               []*BlindedPath{path},
		PathsAbsoluteExpiry: u64p(1_800_000_000),
	})
	require.NoError(t, err)
	require.Equal(t, spacedHex(t, "74 00 68 "+handPathHex+
		" 02 08 000000006b49d200"), paths)

	// Without an expiry; two paths concatenated, 208 = 0xd0 bytes (a
	// one-byte BigSize below 253): the stream is 00 d0 <208>, 210 = 0xd2
	// bytes.
	paths, err = EncodeOfferPaths(OfferPaths{
		Paths: []*BlindedPath{path, path},
	})
	require.NoError(t, err)
	require.Equal(t, spacedHex(t, "d2 00 d0 "+handPathHex+handPathHex), paths)

	serve, err := EncodeServeStaticInvoice(ServeStaticInvoice{
		Invoice:                   []byte{1, 2, 3},
		ForwardInvoiceRequestPath: path,
	})
	require.NoError(t, err)
	// 00 03 010203 (5) + 02 68 <path> (106) = 111 = 0x6f.
	require.Equal(t, spacedHex(t, "6f 00 03 010203 02 68 "+handPathHex), serve)

	require.Equal(t, []byte{0}, EncodeStaticInvoicePersisted())
}

// TestAsyncMessagesRoundTrip: each decoder returns what its encoder was
// given.
func TestAsyncMessagesRoundTrip(t *testing.T) {
	f := newFixture(t)

	for _, slot := range []uint16{0, 1, 9, 0xffff} {
		got, err := DecodeOfferPathsRequest(EncodeOfferPathsRequest(
			OfferPathsRequest{InvoiceSlot: slot}))
		require.NoError(t, err)
		require.Equal(t, slot, got.InvoiceSlot)
	}

	for _, m := range []OfferPaths{
		{Paths: []*BlindedPath{f.path}},
		{Paths: []*BlindedPath{f.path, f.replyPath, handPath(t)},
			PathsAbsoluteExpiry: u64p(0)},
		{Paths: []*BlindedPath{f.replyPath},
			PathsAbsoluteExpiry: u64p(^uint64(0))},
	} {
		b, err := EncodeOfferPaths(m)
		require.NoError(t, err)
		got, err := DecodeOfferPaths(b)
		require.NoError(t, err)
		require.Len(t, got.Paths, len(m.Paths))
		for i := range m.Paths {
			require.True(t, m.Paths[i].Equal(got.Paths[i]))
		}
		require.Equal(t, m.PathsAbsoluteExpiry, got.PathsAbsoluteExpiry)
	}

	inv := bytes.Repeat([]byte{0x42}, 5*1024)
	b, err := EncodeServeStaticInvoice(ServeStaticInvoice{
		Invoice: inv, ForwardInvoiceRequestPath: f.replyPath,
	})
	require.NoError(t, err)
	got, err := DecodeServeStaticInvoice(b)
	require.NoError(t, err)
	require.Equal(t, inv, got.Invoice)
	require.True(t, f.replyPath.Equal(got.ForwardInvoiceRequestPath))

	require.NoError(t, DecodeStaticInvoicePersisted(
		EncodeStaticInvoicePersisted()))
}

// TestAsyncMessagesDecodeErrors: every malformed value fails with
// ErrBadAsyncMessage, and what LDK reads (unknown odd fields) is read.
func TestAsyncMessagesDecodeErrors(t *testing.T) {
	p := handPathHex
	tests := []struct {
		name   string
		decode func([]byte) error
		in     string
		ok     bool
	}{
		{"request ok with odd field", decReq, "07 00 02 0001 01 01 ff",
			true},
		{"request empty", decReq, "", false},
		{"request no slot", decReq, "00", false},
		{"request truncated u16 (no tu16)", decReq, "03 00 01 01",
			false},
		{"request wide slot", decReq, "05 00 03 000001", false},
		{"request unknown even", decReq, "07 00 02 0001 04 01 ff",
			false},
		{"request trailing byte", decReq, "04 00 02 0001 00", false},
		{"request short length", decReq, "05 00 02 0001", false},
		{"request non-canonical length", decReq, "fd0004 00 02 0001",
			false},
		{"request types out of order", decReq,
			"07 01 01 ff 00 02 0001", false},
		{"request duplicate type", decReq,
			"08 00 02 0001 00 02 0001", false},
		{"paths ok", decPaths, "6a 00 68 " + p, true},
		{"paths empty list", decPaths, "02 00 00", false},
		{"paths missing", decPaths, "0a 02 08 0000000000000001", false},
		{"paths trailing garbage", decPaths, "6b 00 69 " + p + "00",
			false},
		{"paths short expiry", decPaths, "70 00 68 " + p +
			" 02 04 00000001", false},
		{"paths unknown even", decPaths, "6d 00 68 " + p + " 04 01 00",
			false},
		{"serve ok", decServe, "6f 00 03 010203 02 68 " + p, true},
		{"serve no path", decServe, "05 00 03 010203", false},
		{"serve no invoice", decServe, "6a 02 68 " + p, false},
		{"serve empty invoice", decServe, "6c 00 00 02 68 " + p, false},
		{"serve two paths", decServe, "d7 00 03 010203 02 d0 " + p + p,
			false},
		{"serve bad path", decServe, "0a 00 03 010203 02 03 000000",
			false},
		{"persisted ok", decPersisted, "00", true},
		{"persisted odd field", decPersisted, "03 01 01 00", true},
		{"persisted even field", decPersisted, "03 02 01 00", false},
		{"persisted empty", decPersisted, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(spacedHex(t, tc.in))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBadAsyncMessage)
		})
	}
}

// TestOfferPathsBound: more than MaxOfferPaths paths are refused both ways.
func TestOfferPathsBound(t *testing.T) {
	path := handPath(t)
	many := make([]*BlindedPath, MaxOfferPaths+1)
	for i := range many {
		many[i] = path
	}
	_, err := EncodeOfferPaths(OfferPaths{Paths: many})
	require.ErrorIs(t, err, ErrBadAsyncMessage)
	_, err = EncodeOfferPaths(OfferPaths{})
	require.ErrorIs(t, err, ErrBadAsyncMessage)

	ok, err := EncodeOfferPaths(OfferPaths{Paths: many[:MaxOfferPaths]})
	require.NoError(t, err)
	_, err = DecodeOfferPaths(ok)
	require.NoError(t, err)

	raw := bytes.Repeat(spacedHex(t, handPathHex), MaxOfferPaths+1)
	b := encodeLDKStruct([]ldkField{{typ: 0, value: raw}})
	_, err = DecodeOfferPaths(b)
	require.ErrorIs(t, err, ErrBadAsyncMessage)
}

func decReq(b []byte) error {
	_, err := DecodeOfferPathsRequest(b)
	return err
}

func decPaths(b []byte) error {
	_, err := DecodeOfferPaths(b)
	return err
}

func decServe(b []byte) error {
	_, err := DecodeServeStaticInvoice(b)
	return err
}

func decPersisted(b []byte) error {
	return DecodeStaticInvoicePersisted(b)
}

// FuzzDecodeAsyncMessages checks that the static invoice server decoders
// never panic, fail only with ErrBadAsyncMessage, and that what they accept
// re-encodes to a value that decodes to the same message.
func FuzzDecodeAsyncMessages(f *testing.F) {
	path := handPathHex
	for _, s := range []string{
		"04 00 02 1234",
		"07 00 02 0001 01 01 ff",
		"74 00 68 " + path + " 02 08 000000006b49d200",
		"d2 00 d0 " + path + path,
		"6f 00 03 010203 02 68 " + path,
		"00",
		"fd0004 00 02 0001",
	} {
		f.Add(spacedHex(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if req, err := DecodeOfferPathsRequest(data); err != nil {
			require.ErrorIs(t, err, ErrBadAsyncMessage)
		} else {
			again, err := DecodeOfferPathsRequest(
				EncodeOfferPathsRequest(req))
			require.NoError(t, err)
			require.Equal(t, req, again)
		}

		if m, err := DecodeOfferPaths(data); err != nil {
			require.ErrorIs(t, err, ErrBadAsyncMessage)
		} else {
			b, err := EncodeOfferPaths(m)
			require.NoError(t, err)
			again, err := DecodeOfferPaths(b)
			require.NoError(t, err)
			require.Len(t, again.Paths, len(m.Paths))
			for i := range m.Paths {
				require.True(t, m.Paths[i].Equal(again.Paths[i]))
			}
			require.Equal(t, m.PathsAbsoluteExpiry,
				again.PathsAbsoluteExpiry)
		}

		if m, err := DecodeServeStaticInvoice(data); err != nil {
			require.ErrorIs(t, err, ErrBadAsyncMessage)
		} else {
			b, err := EncodeServeStaticInvoice(m)
			require.NoError(t, err)
			again, err := DecodeServeStaticInvoice(b)
			require.NoError(t, err)
			require.Equal(t, m.Invoice, again.Invoice)
			require.True(t, m.ForwardInvoiceRequestPath.Equal(
				again.ForwardInvoiceRequestPath))
		}

		if err := DecodeStaticInvoicePersisted(data); err != nil {
			require.ErrorIs(t, err, ErrBadAsyncMessage)
		}
	})
}
