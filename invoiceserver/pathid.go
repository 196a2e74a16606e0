package invoiceserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/internal/pathmac"
	"github.com/holdd/holdd/release/onionmsg"
)

// PathKind says which of the server's paths a path_id belongs to. The
// values are the path_id's first byte, after release's 1 (release paths)
// and 2 (receive paths), so a glance at that byte tells the roles apart.
type PathKind byte

const (
	// KindRegistration is a path handed to a recipient by
	// addasyncrecipient; offer_paths_request arrives over it (LDK's
	// AsyncPaymentsContext::OfferPathsRequest).
	KindRegistration PathKind = 3

	// KindOffer is a path in a recipient's offer; invoice_requests
	// arrive over it (LDK's OffersContext::StaticInvoiceRequested).
	KindOffer PathKind = 4

	// KindServe is the reply path of offer_paths; serve_static_invoice
	// arrives over it (LDK's AsyncPaymentsContext::ServeStaticInvoice).
	KindServe PathKind = 5
)

const (
	// MaxRecipientIDLen is the longest recipient id, as LDK's
	// blinded_paths_for_async_recipient allows.
	MaxRecipientIDLen = 1024

	// pathIDHeaderLen is version, expiry and slot.
	pathIDHeaderLen = 1 + 8 + 2

	// MinPathIDLen is a path_id with a one-byte recipient id.
	MinPathIDLen = pathIDHeaderLen + 1 + pathmac.Size

	// MaxPathIDLen is a path_id with the longest recipient id.
	MaxPathIDLen = pathIDHeaderLen + MaxRecipientIDLen + pathmac.Size
)

// pathIDDomain separates the server's path_ids from release and receive
// path_ids, which MAC under the same secret.
var pathIDDomain = []byte("holdd/invoice-server-path-id/v1")

// offerKeyDomain derives the session keys of offer paths, so that the
// server can mint an offer's paths again to check a static invoice.
var offerKeyDomain = []byte("holdd/invoice-server-offer-path-key/v1")

var (
	// ErrMalformedPathID is returned for a path_id the server cannot
	// have minted.
	ErrMalformedPathID = errors.New("invoiceserver: malformed path_id")

	// ErrForgedPathID is returned when the MAC does not verify.
	ErrForgedPathID = errors.New("invoiceserver: path_id MAC does not " +
		"verify")

	// ErrExpiredPathID is returned for an authentic path_id past its
	// expiry.
	ErrExpiredPathID = errors.New("invoiceserver: path_id expired")
)

// Claim is what an authentic path_id says.
type Claim struct {
	Kind        PathKind
	RecipientID []byte

	// Slot is zero on registration paths.
	Slot uint16

	// ExpiresAt is zero for a registration path that never expires.
	ExpiresAt time.Time
}

// Authenticator mints and verifies the server's path_ids: version | expiry
// u64 (unix seconds, 0 = never) | slot u16 | recipient id | HMAC-SHA256
// under pathIDDomain.
type Authenticator struct {
	key *pathmac.Key
}

// NewAuthenticator returns an Authenticator for holdd's path_id secret.
func NewAuthenticator(secret []byte) (*Authenticator, error) {
	key, err := pathmac.New(secret)
	if err != nil {
		return nil, err
	}
	return &Authenticator{key: key}, nil
}

// KindOf returns the kind a path_id claims by its first byte and length;
// it authenticates nothing. ok is false for a path_id not shaped like the
// server's, which the intake then leaves to other roles.
func KindOf(id []byte) (PathKind, bool) {
	if len(id) < MinPathIDLen || len(id) > MaxPathIDLen {
		return 0, false
	}
	switch k := PathKind(id[0]); k {
	case KindRegistration, KindOffer, KindServe:
		return k, true
	}
	return 0, false
}

// Mint returns the path_id for c. The expiry is kept to the second.
func (a *Authenticator) Mint(c Claim) ([]byte, error) {
	if len(c.RecipientID) == 0 || len(c.RecipientID) > MaxRecipientIDLen {
		return nil, fmt.Errorf("%w: recipient id of %d bytes",
			ErrInvalidRecipientID, len(c.RecipientID))
	}
	if _, ok := KindOf(append([]byte{byte(c.Kind)},
		make([]byte, MinPathIDLen-1)...)); !ok {

		return nil, fmt.Errorf("%w: kind %d", ErrMalformedPathID, c.Kind)
	}
	var exp uint64
	if !c.ExpiresAt.IsZero() {
		exp = uint64(c.ExpiresAt.Unix())
	}
	id := make([]byte, 0, pathIDHeaderLen+len(c.RecipientID)+pathmac.Size)
	id = append(id, byte(c.Kind))
	id = binary.BigEndian.AppendUint64(id, exp)
	id = binary.BigEndian.AppendUint16(id, c.Slot)
	id = append(id, c.RecipientID...)
	return append(id, a.key.Sum(pathIDDomain, id)...), nil
}

// Verify checks a path_id and returns its claim. It fails with
// ErrMalformedPathID, ErrForgedPathID or ErrExpiredPathID (then with the
// claim filled in).
func (a *Authenticator) Verify(id []byte, now time.Time) (Claim, error) {
	kind, ok := KindOf(id)
	if !ok {
		return Claim{}, fmt.Errorf("%w: %d bytes", ErrMalformedPathID,
			len(id))
	}
	body, mac := id[:len(id)-pathmac.Size], id[len(id)-pathmac.Size:]
	if !a.key.Verify(pathIDDomain, body, mac) {
		return Claim{}, ErrForgedPathID
	}
	c := Claim{
		Kind:        kind,
		Slot:        binary.BigEndian.Uint16(body[9:11]),
		RecipientID: append([]byte(nil), body[pathIDHeaderLen:]...),
	}
	if exp := binary.BigEndian.Uint64(body[1:9]); exp != 0 {
		c.ExpiresAt = time.Unix(int64(min(exp, 1<<62)), 0)
		if !now.Before(c.ExpiresAt) {
			return c, fmt.Errorf("%w: at %v", ErrExpiredPathID,
				c.ExpiresAt.UTC())
		}
	}
	return c, nil
}

// offerSessionKey derives the session key of an offer path from its
// path_id and index, so the server can mint the same path again when the
// recipient's static invoice comes, without remembering it. To anyone
// without the secret the keys are as random as fresh ones.
func (a *Authenticator) offerSessionKey(pathID []byte,
	index int) *btcec.PrivateKey {

	body := append(binary.BigEndian.AppendUint32(nil, uint32(index)),
		pathID...)
	sum := a.key.Sum(offerKeyDomain, body)
	// A sum of 0 or >= n has probability ~2^-128; the reduction mod n
	// of PrivKeyFromBytes keeps it a valid key anyway.
	k, _ := btcec.PrivKeyFromBytes(sum)
	return k
}

// decodeOnePath decodes exactly one blinded path.
func decodeOnePath(b []byte) (*onionmsg.BlindedPath, error) {
	r := bytes.NewReader(b)
	p, err := onionmsg.DecodeBlindedPath(r)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the path",
			onionmsg.ErrInvalidPath, r.Len())
	}
	return p, nil
}
