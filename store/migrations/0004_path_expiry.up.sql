-- holdd schema version 4: the expiry of a held HTLC's release paths.
--
-- path_expires_at is fixed when the HTLC is held (unix nanoseconds, whole
-- seconds, as path_ids carry them): every release path minted for the HTLC,
-- then or after a restart, carries this expiry, and the engine fails the
-- HTLC back (fail_reason 'path_expired') if it is still held when it
-- passes. 0 means none is known.
ALTER TABLE held_htlcs ADD COLUMN path_expires_at INTEGER NOT NULL DEFAULT 0;

-- HTLCs held before this version got paths expiring at the hold start plus
-- release.pathexpiry (default 7 days), or at the hold deadline if earlier,
-- rounded down to the second plus one second. Record that, so that a path
-- delivered before the upgrade and every path minted after it agree, and
-- the engine fails the HTLC back rather than hold it with no valid path.
UPDATE held_htlcs SET path_expires_at =
    ((CASE WHEN hold_deadline != 0 AND hold_deadline < held_at + 604800000000000
           THEN hold_deadline
           ELSE held_at + 604800000000000 END) / 1000000000 + 1) * 1000000000
    WHERE state IN ('held', 'released');
