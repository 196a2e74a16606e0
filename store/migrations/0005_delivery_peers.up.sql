-- holdd schema version 4: peers that read holdd's path deliveries.
--
-- An async sender proves it reads release paths from custom message 48001
-- by sending release_paths_request (48007) over its own channel peer link;
-- the peer key is the one lnd authenticated (brontide). holdd holds
-- hold_htlc HTLCs only for such peers (see docs/operator.md), so the proof
-- must survive a restart. proven_at is the first request, refreshed_at the
-- latest, both in Unix nanoseconds.
CREATE TABLE delivery_peers (
    peer         BLOB    NOT NULL PRIMARY KEY CHECK (length(peer) = 33),
    proven_at    INTEGER NOT NULL,
    refreshed_at INTEGER NOT NULL
) WITHOUT ROWID;
