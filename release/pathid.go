package release

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/holdd/holdd/store"
)

const (
	// pathIDVersion is the first byte of every path_id holdd mints.
	pathIDVersion byte = 1

	// PathIDLen is the length of a version 1 path_id: version, chan id,
	// htlc id, payment hash, expiry, HMAC-SHA256.
	PathIDLen = 1 + 8 + 8 + 32 + 8 + sha256.Size

	// SecretLen is the length of the path_id secret.
	SecretLen = 32
)

// pathIDDomain separates holdd's path_id MAC from any other use of the
// secret.
var pathIDDomain = []byte("holdd/release-path-id/v1")

var (
	// ErrMalformedPathID is returned for a path_id holdd cannot have
	// minted (wrong length or version).
	ErrMalformedPathID = errors.New("malformed path_id")

	// ErrForgedPathID is returned when the MAC does not verify.
	ErrForgedPathID = errors.New("path_id MAC does not verify")

	// ErrExpiredPathID is returned for an authentic path_id past its
	// expiry.
	ErrExpiredPathID = errors.New("path_id expired")
)

// Claim is what an authentic path_id says: which HTLC it releases, and
// until when.
type Claim struct {
	Key         store.CircuitKey
	PaymentHash [32]byte
	ExpiresAt   time.Time
}

// Authenticator mints and verifies path_ids under holdd's secret.
type Authenticator struct {
	secret []byte
}

// NewAuthenticator returns an Authenticator for a SecretLen-byte secret.
func NewAuthenticator(secret []byte) (*Authenticator, error) {
	if len(secret) != SecretLen {
		return nil, fmt.Errorf("path_id secret must be %d bytes, got %d",
			SecretLen, len(secret))
	}
	return &Authenticator{secret: append([]byte(nil), secret...)}, nil
}

// Mint returns the path_id for a claim. The expiry is kept to the second.
func (a *Authenticator) Mint(c Claim) []byte {
	id := make([]byte, 0, PathIDLen)
	id = append(id, pathIDVersion)
	id = binary.BigEndian.AppendUint64(id, c.Key.ChanID)
	id = binary.BigEndian.AppendUint64(id, c.Key.HtlcID)
	id = append(id, c.PaymentHash[:]...)
	id = binary.BigEndian.AppendUint64(id, uint64(c.ExpiresAt.Unix()))
	return append(id, a.mac(id)...)
}

// Verify checks a path_id and returns its claim. It fails with
// ErrMalformedPathID, ErrForgedPathID or ErrExpiredPathID.
func (a *Authenticator) Verify(id []byte, now time.Time) (Claim, error) {
	if len(id) != PathIDLen || id[0] != pathIDVersion {
		return Claim{}, fmt.Errorf("%w: %d bytes", ErrMalformedPathID,
			len(id))
	}
	body, mac := id[:PathIDLen-sha256.Size], id[PathIDLen-sha256.Size:]
	if !hmac.Equal(mac, a.mac(body)) {
		return Claim{}, ErrForgedPathID
	}

	var c Claim
	c.Key.ChanID = binary.BigEndian.Uint64(body[1:9])
	c.Key.HtlcID = binary.BigEndian.Uint64(body[9:17])
	copy(c.PaymentHash[:], body[17:49])
	c.ExpiresAt = time.Unix(int64(binary.BigEndian.Uint64(body[49:57])), 0)
	if !now.Before(c.ExpiresAt) {
		return c, fmt.Errorf("%w: at %v", ErrExpiredPathID,
			c.ExpiresAt.UTC())
	}
	return c, nil
}

func (a *Authenticator) mac(body []byte) []byte {
	h := hmac.New(sha256.New, a.secret)
	h.Write(pathIDDomain)
	h.Write(body)
	return h.Sum(nil)
}
