package release

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/holdd/holdd/internal/pathmac"
	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/lntypes"
)

const (
	// pathIDVersion is the first byte of every path_id holdd mints.
	pathIDVersion byte = 1

	// PathIDLen is the length of a version 1 path_id: version, chan id,
	// htlc id, payment hash, expiry, HMAC-SHA256.
	PathIDLen = 1 + 8 + 8 + 32 + 8 + sha256.Size

	// SecretLen is the length of the path_id secret.
	SecretLen = pathmac.SecretLen

	// receivePathIDVersion is the first byte of the path_ids in the
	// recipient role's async-receive message paths.
	receivePathIDVersion byte = 2

	// ReceivePathIDLen is the length of a receive path_id: version,
	// path id, expiry, HMAC-SHA256.
	ReceivePathIDLen = 1 + 8 + 8 + sha256.Size
)

// pathIDDomain separates holdd's path_id MAC from any other use of the
// secret.
var pathIDDomain = []byte("holdd/release-path-id/v1")

// receivePathIDDomain separates receive path_ids from release path_ids, so
// one can never be passed off as the other.
var receivePathIDDomain = []byte("holdd/receive-path-id/v1")

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
	Key         plugin.CircuitKey
	PaymentHash lntypes.Hash
	ExpiresAt   time.Time
}

// Authenticator mints and verifies path_ids under holdd's secret.
type Authenticator struct {
	key *pathmac.Key
}

// NewAuthenticator returns an Authenticator for a SecretLen-byte secret.
func NewAuthenticator(secret []byte) (*Authenticator, error) {
	key, err := pathmac.New(secret)
	if err != nil {
		return nil, err
	}
	return &Authenticator{key: key}, nil
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
	return a.macIn(pathIDDomain, body)
}

func (a *Authenticator) macIn(domain, body []byte) []byte {
	return a.key.Sum(domain, body)
}

// PathIDKind says which of holdd's roles a path_id is addressed to.
type PathIDKind uint8

const (
	// PathIDUnknown is a path_id holdd did not mint.
	PathIDUnknown PathIDKind = iota

	// PathIDRelease is a release path's path_id (lsp role).
	PathIDRelease

	// PathIDReceive is an async-receive message path's path_id
	// (recipient role).
	PathIDReceive
)

// KindOf returns the role a path_id is for, judged by its version byte and
// length only; it authenticates nothing.
func KindOf(id []byte) PathIDKind {
	switch {
	case len(id) == PathIDLen && id[0] == pathIDVersion:
		return PathIDRelease
	case len(id) == ReceivePathIDLen && id[0] == receivePathIDVersion:
		return PathIDReceive
	}
	return PathIDUnknown
}

// ReceiveClaim is what an authentic receive path_id says: which of the
// recipient's paths the message came over, and until when that path works.
type ReceiveClaim struct {
	PathID    [8]byte
	ExpiresAt time.Time
}

// MintReceive returns the path_id for an async-receive message path.
func (a *Authenticator) MintReceive(c ReceiveClaim) []byte {
	id := make([]byte, 0, ReceivePathIDLen)
	id = append(id, receivePathIDVersion)
	id = append(id, c.PathID[:]...)
	id = binary.BigEndian.AppendUint64(id, uint64(c.ExpiresAt.Unix()))
	return append(id, a.macIn(receivePathIDDomain, id)...)
}

// VerifyReceive checks a receive path_id and returns its claim. It fails
// with ErrMalformedPathID, ErrForgedPathID or ErrExpiredPathID.
func (a *Authenticator) VerifyReceive(id []byte,
	now time.Time) (ReceiveClaim, error) {

	if KindOf(id) != PathIDReceive {
		return ReceiveClaim{}, fmt.Errorf("%w: not a receive path_id "+
			"(%d bytes)", ErrMalformedPathID, len(id))
	}
	body, mac := id[:ReceivePathIDLen-sha256.Size],
		id[ReceivePathIDLen-sha256.Size:]
	if !hmac.Equal(mac, a.macIn(receivePathIDDomain, body)) {
		return ReceiveClaim{}, ErrForgedPathID
	}
	var c ReceiveClaim
	copy(c.PathID[:], body[1:9])
	c.ExpiresAt = time.Unix(int64(binary.BigEndian.Uint64(body[9:17])), 0)
	if !now.Before(c.ExpiresAt) {
		return c, fmt.Errorf("%w: at %v", ErrExpiredPathID,
			c.ExpiresAt.UTC())
	}
	return c, nil
}
