package release

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/stretchr/testify/require"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func testClaim() Claim {
	var hash lntypes.Hash
	for i := range hash {
		hash[i] = byte(i)
	}
	return Claim{
		Key:         plugin.CircuitKey{ChanID: 0x8000000000000123, HtlcID: 7},
		PaymentHash: hash,
		ExpiresAt:   time.Unix(1_900_000_000, 0),
	}
}

// TestPathIDLayout checks the path_id bytes against a layout and MAC
// assembled independently here.
func TestPathIDLayout(t *testing.T) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	c := testClaim()
	id := auth.Mint(c)
	require.Len(t, id, 89)

	body := []byte{0x01}
	body = binary.BigEndian.AppendUint64(body, 0x8000000000000123)
	body = binary.BigEndian.AppendUint64(body, 7)
	body = append(body, c.PaymentHash[:]...)
	body = binary.BigEndian.AppendUint64(body, 1_900_000_000)
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte("holdd/release-path-id/v1"))
	mac.Write(body)
	require.Equal(t, append(body, mac.Sum(nil)...), id)
}

func TestPathIDVerify(t *testing.T) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	other, err := NewAuthenticator([]byte(
		"fedcba9876543210fedcba9876543210"))
	require.NoError(t, err)
	c := testClaim()
	good := auth.Mint(c)
	before := c.ExpiresAt.Add(-time.Second)

	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		id      []byte
		now     time.Time
		wantErr error
	}{
		{"authentic", good, before, nil},
		{"at expiry", good, c.ExpiresAt, ErrExpiredPathID},
		{"after expiry", good, c.ExpiresAt.Add(time.Hour), ErrExpiredPathID},
		{"other secret", other.Mint(c), before, ErrForgedPathID},
		{"flipped chan id", flip(3), before, ErrForgedPathID},
		{"flipped htlc id", flip(16), before, ErrForgedPathID},
		{"flipped hash", flip(20), before, ErrForgedPathID},
		{"extended expiry", flip(56), before, ErrForgedPathID},
		{"flipped mac", flip(88), before, ErrForgedPathID},
		{"wrong version", flip(0), before, ErrMalformedPathID},
		{"truncated", good[:88], before, ErrMalformedPathID},
		{"extended", append(append([]byte(nil), good...), 0), before,
			ErrMalformedPathID},
		{"empty", nil, before, ErrMalformedPathID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth.Verify(tc.id, tc.now)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.Key, got.Key)
			require.Equal(t, c.PaymentHash, got.PaymentHash)
			require.True(t, c.ExpiresAt.Equal(got.ExpiresAt))
		})
	}
}

func TestNewAuthenticatorSecretLength(t *testing.T) {
	_, err := NewAuthenticator(make([]byte, 31))
	require.Error(t, err)
	_, err = NewAuthenticator(make([]byte, 33))
	require.Error(t, err)
}

func FuzzVerifyPathID(f *testing.F) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(f, err)
	f.Add(auth.Mint(testClaim()))
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, id []byte) {
		c, err := auth.Verify(id, now)
		if err != nil {
			return
		}
		// Anything that verifies must be exactly what we would mint.
		require.Equal(t, auth.Mint(c), id)
	})
}

// TestReceivePathIDLayout checks receive path_id bytes against a layout and
// MAC assembled independently here.
func TestReceivePathIDLayout(t *testing.T) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	c := ReceiveClaim{
		PathID:    [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
		ExpiresAt: time.Unix(1_900_000_000, 0),
	}
	id := auth.MintReceive(c)
	require.Len(t, id, 49)

	body := []byte{0x02, 1, 2, 3, 4, 5, 6, 7, 8}
	body = binary.BigEndian.AppendUint64(body, 1_900_000_000)
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte("holdd/receive-path-id/v1"))
	mac.Write(body)
	require.Equal(t, append(body, mac.Sum(nil)...), id)
	require.Equal(t, PathIDReceive, KindOf(id))
	require.Equal(t, PathIDRelease, KindOf(auth.Mint(testClaim())))
}

func TestReceivePathIDVerify(t *testing.T) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	other, err := NewAuthenticator([]byte(
		"fedcba9876543210fedcba9876543210"))
	require.NoError(t, err)
	c := ReceiveClaim{
		PathID:    [8]byte{9, 9, 9, 9, 9, 9, 9, 9},
		ExpiresAt: time.Unix(1_900_000_000, 0),
	}
	good := auth.MintReceive(c)
	before := c.ExpiresAt.Add(-time.Second)
	flipped := append([]byte(nil), good...)
	flipped[3] ^= 0x01

	// A release path_id whose MAC verified under the receive domain
	// would let one role's path drive the other; pad one to the receive
	// length to prove the domains differ.
	release := auth.Mint(testClaim())
	crossed := append([]byte{0x02}, release[1:ReceivePathIDLen]...)

	tests := []struct {
		name string
		auth *Authenticator
		id   []byte
		now  time.Time
		want error
	}{
		{"good", auth, good, before, nil},
		{"expired at expiry", auth, good, c.ExpiresAt, ErrExpiredPathID},
		{"other secret", other, good, before, ErrForgedPathID},
		{"flipped bit", auth, flipped, before, ErrForgedPathID},
		{"release path_id", auth, release, before, ErrMalformedPathID},
		{"crossed domains", auth, crossed, before, ErrForgedPathID},
		{"short", auth, good[:48], before, ErrMalformedPathID},
		{"empty", auth, nil, before, ErrMalformedPathID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.auth.VerifyReceive(tc.id, tc.now)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.PathID, got.PathID)
			require.Equal(t, c.ExpiresAt, got.ExpiresAt)
		})
	}
}
