package invoiceserver

import (
	"bytes"
	"testing"
	"time"

	"github.com/holdd/holdd/internal/pathmac"
	"github.com/stretchr/testify/require"
)

// TestPathIDLayout checks the exact bytes of a path_id and that it
// verifies back to its claim.
func TestPathIDLayout(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	auth, err := NewAuthenticator(secret)
	require.NoError(t, err)
	c := Claim{Kind: KindOffer, RecipientID: []byte("alice"), Slot: 0x0102,
		ExpiresAt: time.Unix(0x0a0b0c0d, 0)}
	id, err := auth.Mint(c)
	require.NoError(t, err)
	body := []byte{4, 0, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 1, 2,
		'a', 'l', 'i', 'c', 'e'}
	key, err := pathmac.New(secret)
	require.NoError(t, err)
	require.Equal(t, append(body, key.Sum(pathIDDomain, body)...), id)

	got, err := auth.Verify(id, time.Unix(0x0a0b0c0c, 0))
	require.NoError(t, err)
	require.Equal(t, c.RecipientID, got.RecipientID)
	require.Equal(t, c.Slot, got.Slot)
	require.Equal(t, KindOffer, got.Kind)
	require.True(t, c.ExpiresAt.Equal(got.ExpiresAt))

	_, err = auth.Verify(id, time.Unix(0x0a0b0c0d, 0))
	require.ErrorIs(t, err, ErrExpiredPathID)
}

func TestPathIDVerify(t *testing.T) {
	auth, err := NewAuthenticator(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	other, err := NewAuthenticator(bytes.Repeat([]byte{8}, 32))
	require.NoError(t, err)
	now := time.Unix(1_800_000_000, 0)

	never, err := auth.Mint(Claim{Kind: KindRegistration,
		RecipientID: []byte{1}})
	require.NoError(t, err)
	c, err := auth.Verify(never, now.Add(100*365*24*time.Hour))
	require.NoError(t, err)
	require.True(t, c.ExpiresAt.IsZero())

	longest, err := auth.Mint(Claim{Kind: KindServe,
		RecipientID: make([]byte, MaxRecipientIDLen)})
	require.NoError(t, err)
	require.Len(t, longest, MaxPathIDLen)

	foreign, err := other.Mint(Claim{Kind: KindRegistration,
		RecipientID: []byte{1}})
	require.NoError(t, err)

	// A receive path_id (release.ReceivePathIDLen bytes, version 2) is
	// not ours. (Importing release here would be a cycle through store.)
	relID := append([]byte{2}, make([]byte, 48)...)

	tests := []struct {
		name string
		id   []byte
		want error
	}{
		{"other secret", foreign, ErrForgedPathID},
		{"receive path_id", relID, ErrMalformedPathID},
		{"empty", nil, ErrMalformedPathID},
		{"too long", append(longest, 0), ErrMalformedPathID},
		{"kind changed", append([]byte{byte(KindOffer)}, never[1:]...),
			ErrForgedPathID},
	}
	for _, tc := range tests {
		_, err := auth.Verify(tc.id, now)
		require.ErrorIs(t, err, tc.want, tc.name)
	}

	_, err = auth.Mint(Claim{Kind: 9, RecipientID: []byte{1}})
	require.ErrorIs(t, err, ErrMalformedPathID)
	_, err = auth.Mint(Claim{Kind: KindOffer})
	require.ErrorIs(t, err, ErrInvalidRecipientID)
	_, ok := KindOf(relID)
	require.False(t, ok)
}
