// Package pathmac owns the keyed MAC that authenticates the path_ids holdd
// puts in the blinded paths it mints. Each kind of path_id MACs under its
// own domain string, so one kind can never be passed off as another even
// though they share the node's secret.
package pathmac

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

const (
	// SecretLen is the length of the path_id secret.
	SecretLen = 32

	// Size is the length of a MAC.
	Size = sha256.Size
)

// Key MACs path_id bodies under holdd's secret.
type Key struct {
	secret []byte
}

// New returns a Key for a SecretLen-byte secret.
func New(secret []byte) (*Key, error) {
	if len(secret) != SecretLen {
		return nil, fmt.Errorf("path_id secret must be %d bytes, got %d",
			SecretLen, len(secret))
	}
	return &Key{secret: append([]byte(nil), secret...)}, nil
}

// Sum returns HMAC-SHA256(secret, domain || body).
func (k *Key) Sum(domain, body []byte) []byte {
	h := hmac.New(sha256.New, k.secret)
	h.Write(domain)
	h.Write(body)
	return h.Sum(nil)
}

// Verify reports, in constant time, whether mac is Sum(domain, body).
func (k *Key) Verify(domain, body, mac []byte) bool {
	return hmac.Equal(mac, k.Sum(domain, body))
}
