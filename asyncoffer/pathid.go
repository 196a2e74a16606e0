package asyncoffer

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/holdd/holdd/internal/pathmac"
)

// PathKind says which exchange a client path_id belongs to.
type PathKind byte

const (
	// KindOfferPaths is the reply path of offer_paths_request: the
	// server's offer_paths comes back over it.
	KindOfferPaths PathKind = 1

	// KindPersisted is the reply path of serve_static_invoice:
	// static_invoice_persisted comes back over it.
	KindPersisted PathKind = 2

	// KindInvoiceRequest is the forward_invoice_request_path: the
	// server forwards the offer's invoice_requests over it.
	KindInvoiceRequest PathKind = 3

	// KindPayment is the path_id in V's hop of the static invoice's
	// payment paths; the offer-payment code reads it.
	KindPayment PathKind = 4
)

// pathIDVersion is the first byte of every client path_id. Release path_ids
// start with 1, receive path_ids with 2, the invoice server's with 3, 4 or 5,
// so 6 tells them apart before any MAC is computed.
const pathIDVersion byte = 6

// PathIDLen is the length of a client path_id: version, kind, slot (u16),
// expiry (u64 Unix seconds), then the MAC.
const PathIDLen = 1 + 1 + 2 + 8 + sha256.Size

const pathIDBodyLen = PathIDLen - sha256.Size

// pathIDDomain separates client path_ids from every other kind holdd MACs
// with the same secret.
var pathIDDomain = []byte("holdd/async-offer-client-path-id/v1")

var (
	// ErrMalformedPathID is returned for a path_id that is not a client
	// path_id.
	ErrMalformedPathID = errors.New("asyncoffer: malformed path_id")

	// ErrForgedPathID is returned when a path_id's MAC does not verify.
	ErrForgedPathID = errors.New("asyncoffer: path_id MAC does not " +
		"verify")

	// ErrExpiredPathID is returned for a path_id past its expiry.
	ErrExpiredPathID = errors.New("asyncoffer: path_id expired")
)

// PathClaim is what a client path_id proves.
type PathClaim struct {
	Kind      PathKind
	Slot      uint16
	ExpiresAt time.Time
}

// PathAuth mints and verifies client path_ids.
type PathAuth struct {
	key *pathmac.Key
}

// NewPathAuth returns a PathAuth over holdd's path_id secret.
func NewPathAuth(secret []byte) (*PathAuth, error) {
	key, err := pathmac.New(secret)
	if err != nil {
		return nil, err
	}
	return &PathAuth{key: key}, nil
}

// Mint returns the path_id for c. Expiry is kept in whole seconds.
func (a *PathAuth) Mint(c PathClaim) []byte {
	id := make([]byte, 0, PathIDLen)
	id = append(id, pathIDVersion, byte(c.Kind))
	id = binary.BigEndian.AppendUint16(id, c.Slot)
	id = binary.BigEndian.AppendUint64(id, uint64(c.ExpiresAt.Unix()))
	return append(id, a.key.Sum(pathIDDomain, id)...)
}

// IsClientPathID reports whether id is shaped as a client path_id, without
// checking its MAC: what the intake's dispatch needs.
func IsClientPathID(id []byte) bool {
	if len(id) != PathIDLen || id[0] != pathIDVersion {
		return false
	}
	switch PathKind(id[1]) {
	case KindOfferPaths, KindPersisted, KindInvoiceRequest, KindPayment:
		return true
	}
	return false
}

// Verify checks id's MAC and expiry and returns its claim.
func (a *PathAuth) Verify(id []byte, now time.Time) (PathClaim, error) {
	if !IsClientPathID(id) {
		return PathClaim{}, fmt.Errorf("%w: %d bytes",
			ErrMalformedPathID, len(id))
	}
	body, mac := id[:pathIDBodyLen], id[pathIDBodyLen:]
	if !a.key.Verify(pathIDDomain, body, mac) {
		return PathClaim{}, ErrForgedPathID
	}
	c := PathClaim{
		Kind: PathKind(body[1]),
		Slot: binary.BigEndian.Uint16(body[2:4]),
		ExpiresAt: time.Unix(
			int64(binary.BigEndian.Uint64(body[4:12])), 0,
		),
	}
	if !now.Before(c.ExpiresAt) {
		return c, fmt.Errorf("%w: at %v", ErrExpiredPathID,
			c.ExpiresAt.UTC())
	}
	return c, nil
}
