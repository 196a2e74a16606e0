package plugin

import (
	"errors"
	"fmt"
	"time"
)

// DefaultHoldType is LDK's experimental hold_htlc TLV on update_add_htlc: a
// sender's asyncsend sets it (empty) to ask the LSP to hold the HTLC, and the
// engine holds HTLCs that carry it.
const DefaultHoldType uint64 = 75537

// MinFailbackMargin is the smallest fail-back margin holdd accepts.
const MinFailbackMargin = 3

// MaxPolicyDuration bounds MaxHoldTime and PendingReleaseTTL. An HTLC
// cannot be held for more than a few weeks (its CLTV expiry), so anything
// longer means "no limit" at best; and a deadline must stay a time the
// store can write (nanoseconds since 1970 in an int64, until 2262).
const MaxPolicyDuration = 10 * 365 * 24 * time.Hour

// ErrInvalidPolicy is returned for a policy that cannot be enforced.
var ErrInvalidPolicy = errors.New("invalid hold policy")

// Policy is what the engine enforces. Zero caps mean "no cap".
type Policy struct {
	// HoldTypes are the update_add_htlc TLV types that ask for a hold.
	HoldTypes []uint64

	// FailbackMargin is how many blocks before lnd's auto_fail_height
	// holdd fails a held HTLC back.
	FailbackMargin int32

	// MaxHoldTime fails an HTLC back after it was held this long; zero
	// disables the limit.
	MaxHoldTime time.Duration

	// MaxHeldPerPeer and MaxHeldMsatPerPeer cap what one incoming peer
	// can have held at once.
	MaxHeldPerPeer     int
	MaxHeldMsatPerPeer uint64

	// MaxHeldTotal and MaxHeldMsatTotal cap what is held at once.
	MaxHeldTotal     int
	MaxHeldMsatTotal uint64

	// PendingReleaseTTL is how long a release that arrives before its
	// HTLC is kept.
	PendingReleaseTTL time.Duration
}

// DefaultMaxHeldMsatPerPeer is the default cap on what one incoming peer
// can have held at once: 0.1 BTC, more than a wallet client of an LSP
// keeps on its channel, so real clients never meet it, while one peer
// cannot make the LSP promise more than that of its outbound liquidity
// for later (docs/operator.md).
const DefaultMaxHeldMsatPerPeer uint64 = 10_000_000 * 1000

// DefaultPolicy is what holdd runs with unless configured otherwise.
func DefaultPolicy() Policy {
	return Policy{
		HoldTypes:          []uint64{DefaultHoldType},
		FailbackMargin:     12,
		MaxHeldPerPeer:     100,
		MaxHeldMsatPerPeer: DefaultMaxHeldMsatPerPeer,
		MaxHeldTotal:       10000,
		MaxHeldMsatTotal:   0,
		PendingReleaseTTL:  10 * time.Minute,
	}
}

// Validate checks that the policy can be enforced.
func (p Policy) Validate() error {
	if len(p.HoldTypes) == 0 {
		return fmt.Errorf("%w: no hold types", ErrInvalidPolicy)
	}
	for _, t := range p.HoldTypes {
		// Custom records below 65536 never reach the interceptor's
		// in_wire_custom_records, so such a type could never match.
		if t < 65536 {
			return fmt.Errorf("%w: hold type %d is below the custom "+
				"record range (65536)", ErrInvalidPolicy, t)
		}
	}
	// A block or two of lag in holdd's block stream must not let lnd's
	// own auto-fail come first.
	if p.FailbackMargin < MinFailbackMargin {
		return fmt.Errorf("%w: failback margin must be at least %d "+
			"blocks, got %d", ErrInvalidPolicy, MinFailbackMargin,
			p.FailbackMargin)
	}
	if p.MaxHoldTime < 0 || p.MaxHeldPerPeer < 0 || p.MaxHeldTotal < 0 {
		return fmt.Errorf("%w: negative limit", ErrInvalidPolicy)
	}
	if p.PendingReleaseTTL <= 0 {
		return fmt.Errorf("%w: pending release TTL must be positive",
			ErrInvalidPolicy)
	}
	if p.MaxHoldTime > MaxPolicyDuration ||
		p.PendingReleaseTTL > MaxPolicyDuration {

		return fmt.Errorf("%w: max hold time and pending release TTL "+
			"must be at most %v", ErrInvalidPolicy, MaxPolicyDuration)
	}
	return nil
}

// wantsHold reports whether records carry one of the hold types.
func (p Policy) wantsHold(records map[uint64][]byte) bool {
	for _, t := range p.HoldTypes {
		if _, ok := records[t]; ok {
			return true
		}
	}
	return false
}
