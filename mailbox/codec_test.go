package mailbox

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()

	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)

	return b
}

func TestRegisterEncoding(t *testing.T) {
	msg := RegisterMsg{RequestID: 0x0102030405060708}
	data, err := msg.Encode()
	require.NoError(t, err)
	require.Equal(t, unhex(t, "00 08 0102030405060708"), data)

	got, err := DecodeRegister(data)
	require.NoError(t, err)
	require.Equal(t, &msg, got)

	// Unknown odd types are skipped; types must still ascend.
	got, err = DecodeRegister(append(data, unhex(t, "01 02 abcd")...))
	require.NoError(t, err)
	require.Equal(t, &msg, got)
	_, err = DecodeRegister(unhex(t, "01 02 abcd 00 08 0102030405060708"))
	require.ErrorIs(t, err, ErrMalformed)
}

func TestRegisteredEncoding(t *testing.T) {
	key := testKey(t, 200).PubKey()
	keyHex := hex.EncodeToString(key.SerializeCompressed())

	accept := RegisteredMsg{
		RequestID:   7,
		MailboxKey:  key,
		MaxAge:      3 * time.Hour,
		MaxMessages: 100,
		MaxBytes:    1 << 20,
	}
	data, err := accept.Encode()
	require.NoError(t, err)
	require.Equal(t, unhex(t, "00 21 "+keyHex+
		" 02 08 0000000000002a30"+
		" 04 08 0000000000000064"+
		" 06 08 0000000000100000"+
		" 08 08 0000000000000007"), data)
	got, err := DecodeRegistered(data)
	require.NoError(t, err)
	require.Equal(t, &accept, got)
	require.False(t, got.Refused())

	refuse := RegisteredMsg{RequestID: 7, Error: "no"}
	data, err = refuse.Encode()
	require.NoError(t, err)
	require.Equal(t, unhex(t, "08 08 0000000000000007 09 02 6e6f"), data)
	got, err = DecodeRegistered(data)
	require.NoError(t, err)
	require.Equal(t, &refuse, got)
	require.True(t, got.Refused())

	// Sub-second ages are cut to whole seconds.
	accept.MaxAge = 90*time.Second + 999*time.Millisecond
	data, err = accept.Encode()
	require.NoError(t, err)
	got, err = DecodeRegistered(data)
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, got.MaxAge)
}

func TestRegisteredEncodeRefusesNonsense(t *testing.T) {
	key := testKey(t, 200).PubKey()

	_, err := (&RegisteredMsg{RequestID: 1}).Encode()
	require.ErrorIs(t, err, ErrMalformed)

	_, err = (&RegisteredMsg{MailboxKey: key, Error: "x"}).Encode()
	require.ErrorIs(t, err, ErrMalformed)

	_, err = (&RegisteredMsg{MailboxKey: key, MaxAge: -1}).Encode()
	require.ErrorIs(t, err, ErrMalformed)

	// A long or broken reason is cut so that the answer still decodes.
	long := strings.Repeat("é", MaxErrorLen) + "\xff"
	data, err := (&RegisteredMsg{RequestID: 1, Error: long}).Encode()
	require.NoError(t, err)
	got, err := DecodeRegistered(data)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("é", MaxErrorLen/2), got.Error)

	data, err = (&RegisteredMsg{RequestID: 1, Error: "a\xffb"}).Encode()
	require.NoError(t, err)
	got, err = DecodeRegistered(data)
	require.NoError(t, err)
	require.Equal(t, "a?b", got.Error)
}

func TestDecodeHostile(t *testing.T) {
	keyHex := hex.EncodeToString(
		testKey(t, 200).PubKey().SerializeCompressed())
	id := " 08 08 0000000000000007"
	acceptTail := " 02 08 0000000000002a30 04 08 0000000000000064" +
		" 06 08 0000000000100000"
	accept := "00 21 " + keyHex + acceptTail + id

	registered := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"truncated value", accept[:len(accept)-2]},
		{"truncated length", "00"},
		{"missing request id", "00 21 " + keyHex + acceptTail},
		{"missing mailbox key", acceptTail + id},
		{"missing max bytes", "00 21 " + keyHex +
			" 02 08 0000000000002a30 04 08 0000000000000064" + id},
		{"bad key prefix", "00 21 05" + keyHex[2:] + acceptTail + id},
		{"short key", "00 20 " + keyHex[:64] + acceptTail + id},
		{"short u64", "00 21 " + keyHex +
			" 02 04 00002a30 04 08 0000000000000064" +
			" 06 08 0000000000100000" + id},
		{"unknown even type", accept + " 0a 00"},
		{"types out of order", id + " 00 21 " + keyHex},
		{"age overflows a duration", "00 21 " + keyHex +
			" 02 08 ffffffffffffffff 04 08 0000000000000064" +
			" 06 08 0000000000100000" + id},
		{"refusal with a key", "00 21 " + keyHex + id + " 09 01 78"},
		{"refusal with limits", "04 08 0000000000000064" + id +
			" 09 01 78"},
		{"empty reason", id + " 09 00"},
		{"reason not utf-8", id + " 09 02 c328"},
		{"reason too long", id + " 09 fd0101 " +
			strings.Repeat("78", MaxErrorLen+1)},
		{"length past the end", id + " 09 fd0101 78"},
	}
	for _, tc := range registered {
		t.Run("registered/"+tc.name, func(t *testing.T) {
			_, err := DecodeRegistered(unhex(t, tc.data))
			require.ErrorIs(t, err, ErrMalformed)
		})
	}

	// An unknown odd type is fine.
	got, err := DecodeRegistered(unhex(t, accept+" 0b 01 00"))
	require.NoError(t, err)
	require.Equal(t, uint64(7), got.RequestID)

	register := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"truncated", "00 08 01020304050607"},
		{"short request id", "00 04 01020304"},
		{"unknown even type", "00 08 0102030405060708 02 00"},
		{"only odd types", "01 01 00"},
	}
	for _, tc := range register {
		t.Run("register/"+tc.name, func(t *testing.T) {
			_, err := DecodeRegister(unhex(t, tc.data))
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}
