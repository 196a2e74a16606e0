-- holdd schema version 1.
--
-- Encoding rules (see store/codec.go):
--   * lnd short channel ids and HTLC ids are unsigned 64-bit; they are stored
--     as 8-byte big-endian BLOBs so that every value round-trips and the
--     byte-wise ordering SQLite uses for BLOBs equals numeric ordering.
--   * msat amounts are uint64 stored as INTEGER by two's-complement bit cast
--     (amounts never come near 2^63 msat, but the cast is still exact).
--   * times are unix nanoseconds (UTC) as INTEGER; 0 means "not set".
--   * hashes and public keys are BLOBs of fixed length.

CREATE TABLE held_htlcs (
    chan_id           BLOB    NOT NULL CHECK (length(chan_id) = 8),
    htlc_id           BLOB    NOT NULL CHECK (length(htlc_id) = 8),
    payment_hash      BLOB    NOT NULL CHECK (length(payment_hash) = 32),
    incoming_peer     BLOB    NOT NULL CHECK (length(incoming_peer) = 33),
    incoming_amt_msat INTEGER NOT NULL,
    outgoing_amt_msat INTEGER NOT NULL,
    incoming_expiry   INTEGER NOT NULL CHECK (incoming_expiry BETWEEN 0 AND 4294967295),
    outgoing_expiry   INTEGER NOT NULL CHECK (outgoing_expiry BETWEEN 0 AND 4294967295),
    outgoing_chan_id  BLOB    NOT NULL CHECK (length(outgoing_chan_id) = 8),
    auto_fail_height  INTEGER NOT NULL,
    failback_height   INTEGER NOT NULL,
    hold_deadline     INTEGER NOT NULL DEFAULT 0,
    state             TEXT    NOT NULL
        CHECK (state IN ('held', 'released', 'resumed', 'failed', 'gone')),
    fail_reason       TEXT    NOT NULL DEFAULT '',
    release_source    TEXT    NOT NULL DEFAULT '',
    held_at           INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    released_at       INTEGER NOT NULL DEFAULT 0,
    resolved_at       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chan_id, htlc_id)
) WITHOUT ROWID;

CREATE INDEX held_htlcs_state_held_at ON held_htlcs (state, held_at);
CREATE INDEX held_htlcs_peer_held_at ON held_htlcs (incoming_peer, held_at);
CREATE INDEX held_htlcs_held_at ON held_htlcs (held_at);
CREATE INDEX held_htlcs_payment_hash ON held_htlcs (payment_hash);

-- Append-only audit log of every state a held HTLC has been in. Rows go away
-- only together with their HTLC (PruneResolved).
CREATE TABLE htlc_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    chan_id    BLOB    NOT NULL,
    htlc_id    BLOB    NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    note       TEXT    NOT NULL DEFAULT '',
    at         INTEGER NOT NULL,
    FOREIGN KEY (chan_id, htlc_id)
        REFERENCES held_htlcs (chan_id, htlc_id) ON DELETE CASCADE
);

CREATE INDEX htlc_events_key ON htlc_events (chan_id, htlc_id, id);

-- Verified releases that arrived while their HTLC was unknown or not offered
-- on the current interceptor stream.
CREATE TABLE pending_releases (
    chan_id      BLOB    NOT NULL CHECK (length(chan_id) = 8),
    htlc_id      BLOB    NOT NULL CHECK (length(htlc_id) = 8),
    payment_hash BLOB    NOT NULL CHECK (length(payment_hash) = 32),
    source       TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (chan_id, htlc_id, payment_hash)
) WITHOUT ROWID;

CREATE INDEX pending_releases_expires_at ON pending_releases (expires_at);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL CHECK (length(value) > 0)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
