package custommsg

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// malformedPayloads are 513 bodies that are not an onion_message.
func malformedPayloads() []struct {
	name string
	data []byte
} {
	pk := testKey(0x31).PubKey().SerializeCompressed()
	// x = p (the field prime) is not a valid coordinate.
	badX := append([]byte{0x02}, bytes.Repeat([]byte{0xff}, 32)...)
	copy(badX[1:], []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xfc, 0x2f,
	})
	badPrefix := append([]byte{0x05}, pk[1:]...)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	return []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated path key", pk[:20]},
		{"path key only", pk},
		{"half a length", cat(pk, []byte{0x00})},
		{"bad point prefix", cat(badPrefix, []byte{0, 1, 0xaa})},
		{"x not a field element", cat(badX, []byte{0, 1, 0xaa})},
		{"uncompressed prefix", cat(append([]byte{0x04}, pk[1:]...),
			[]byte{0, 1, 0xaa})},
		{"packet shorter than length", cat(pk, []byte{0x00, 0x64},
			pattern(1, 50))},
		{"length over 32k, short packet", cat(pk, []byte{0xff, 0xff},
			pattern(1, 100))},
		{"one trailing byte", cat(pk, []byte{0x00, 0x0a},
			pattern(1, 11))},
		{"longer than a message body", cat(pk, []byte{0xff, 0xdb},
			pattern(1, 65499))},
		{"zero length with trailing bytes", cat(pk, []byte{0, 0},
			[]byte{0x00})},
	}
}

func TestDecodeOnionMessage(t *testing.T) {
	pathKey := testKey(0x31).PubKey()

	for _, n := range []int{0, 1, 1366, 32834, 65498} {
		packet := pattern(byte(n), n)
		body := wireOnionMessage(pathKey, packet)
		msg, err := decodeOnionMessage(body)
		require.NoError(t, err, "packet of %d bytes", n)
		require.Equal(t, pathKey.SerializeCompressed(),
			msg.PathKey.SerializeCompressed())
		require.Equal(t, packet, msg.OnionBlob)
	}

	for _, tc := range malformedPayloads() {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := decodeOnionMessage(tc.data)
			require.ErrorIs(t, err, ErrUndecodable)
			require.Nil(t, msg)
		})
	}
}

// FuzzDecodeCustomOnionMessage checks that decoding a 513 body never panics,
// fails only with ErrUndecodable, and that whatever decodes re-encodes to
// exactly the bytes it came from (the decoder accepts no slack).
func FuzzDecodeCustomOnionMessage(f *testing.F) {
	pathKey := testKey(0x31).PubKey()
	valid := wireOnionMessage(pathKey, pattern(7, 1366))
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(append(append([]byte(nil), valid...), 0))
	f.Add(wireOnionMessage(pathKey, nil))
	f.Add([]byte{})
	for _, tc := range malformedPayloads() {
		f.Add(tc.data)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := decodeOnionMessage(data)
		if err != nil {
			require.ErrorIs(t, err, ErrUndecodable)
			require.Nil(t, msg)
			return
		}
		b, err := EncodeOnionMessage(msg)
		require.NoError(t, err)
		require.Equal(t, data, b)
	})
}
