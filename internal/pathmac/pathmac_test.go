package pathmac

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSumAndVerify(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, SecretLen)
	k, err := New(secret)
	require.NoError(t, err)

	h := hmac.New(sha256.New, secret)
	h.Write([]byte("domain"))
	h.Write([]byte("body"))
	require.Equal(t, h.Sum(nil), k.Sum([]byte("domain"), []byte("body")))

	mac := k.Sum([]byte("a"), []byte("body"))
	require.True(t, k.Verify([]byte("a"), []byte("body"), mac))
	require.False(t, k.Verify([]byte("b"), []byte("body"), mac))
	require.False(t, k.Verify([]byte("a"), []byte("bodz"), mac))

	// The key keeps its own copy of the secret.
	secret[0] = 8
	require.Equal(t, mac, k.Sum([]byte("a"), []byte("body")))

	for _, n := range []int{0, 31, 33} {
		_, err := New(make([]byte, n))
		require.Error(t, err)
	}
}
