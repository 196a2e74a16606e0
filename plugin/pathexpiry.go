package plugin

import "time"

// DefaultPathBlockInterval is the block interval release path expiries
// are computed with: twice bitcoin's 10-minute target, so that the paths
// of a held HTLC outlast its fail-back height unless blocks come more than
// twice as slowly as intended for the whole hold.
const DefaultPathBlockInterval = 20 * time.Minute

// maxPathBlocks bounds the blocks a path expiry is computed for (about
// four years at DefaultPathBlockInterval), so that a nonsensical
// auto_fail_height cannot overflow the duration. An HTLC held that long
// is failed back by its fail-back height anyway.
const maxPathBlocks = 100_000

// PathExpiry is when the release paths of an HTLC held at now stop
// working. The paths must work for as long as the HTLC can stay held, so
// the expiry is derived from the HTLC's fail-back height:
//
//	now + (failback - height) * blockInterval
//
// with blockInterval a conservative bound on the time between blocks
// (DefaultPathBlockInterval). It is earlier only where the hold ends
// earlier anyway: at the hold deadline (hold.maxholdtime), if set, or at
// now + maxLife (release.pathexpiry), if set. The result is rounded down
// to the second and one second added, as path_ids carry whole seconds and
// a path must not expire before the moment it stands for.
//
// Blocks can still come slower than blockInterval for a whole hold; the
// engine then fails the HTLC back when its paths expire (FailPathExpired),
// so no HTLC is held without a valid path.
func PathExpiry(now time.Time, height, failback int32,
	blockInterval, maxLife time.Duration, deadline time.Time) time.Time {

	blocks := int64(failback) - int64(height)
	blocks = max(0, min(blocks, maxPathBlocks))
	expires := now.Add(time.Duration(blocks) * blockInterval)
	if maxLife > 0 && now.Add(maxLife).Before(expires) {
		expires = now.Add(maxLife)
	}
	if !deadline.IsZero() && deadline.Before(expires) {
		expires = deadline
	}
	return expires.Truncate(time.Second).Add(time.Second)
}
