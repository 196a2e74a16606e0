package invoiceserver

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHopMinter: paths enter at lnd, have two hops (one without a holdd
// key), and are the same for the same session key and path_id, which the
// server's check of a static invoice's offer paths relies on.
func TestHopMinter(t *testing.T) {
	lnd, holdd := testKey(0x11).PubKey(), testKey(0x22).PubKey()
	m, err := NewHopMinter(lnd, holdd)
	require.NoError(t, err)
	a, err := m.MintPath(testKey(0x33), []byte("path id"))
	require.NoError(t, err)
	b, err := m.MintPath(testKey(0x33), []byte("path id"))
	require.NoError(t, err)
	require.True(t, a.Equal(b))
	require.True(t, a.IntroNode.IsEqual(lnd))
	require.Len(t, a.Hops, 2)
	require.True(t, a.PathKey.IsEqual(testKey(0x33).PubKey()))

	c, err := m.MintPath(testKey(0x34), []byte("path id"))
	require.NoError(t, err)
	require.False(t, a.Equal(c))

	one, err := NewHopMinter(lnd, nil)
	require.NoError(t, err)
	p, err := one.MintPath(testKey(0x33), []byte("path id"))
	require.NoError(t, err)
	require.Len(t, p.Hops, 1)

	_, err = NewHopMinter(nil, holdd)
	require.Error(t, err)
}
