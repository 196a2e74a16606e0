-- holdd schema version 6: the static invoice server (package invoiceserver).
--
-- async_recipients are the recipients registered with addasyncrecipient;
-- their ids (up to 1 KiB) are the operator's, carried in the path_ids of
-- the paths the server mints for them. expires_at is 0 for a registration
-- that never expires; times are Unix nanoseconds.
CREATE TABLE async_recipients (
    id         BLOB    NOT NULL PRIMARY KEY
                       CHECK (length(id) BETWEEN 1 AND 1024),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- static_invoices holds one static invoice per (recipient, slot): a
-- replacement is one upsert, so a reader sees the old invoice or the new
-- one, never neither. Removing a recipient removes its invoices.
-- expires_at is the invoice's own expiry in Unix seconds (a relative
-- expiry may put it past what nanoseconds can hold); stored_at is in
-- nanoseconds.
CREATE TABLE static_invoices (
    recipient_id BLOB    NOT NULL
                         REFERENCES async_recipients (id) ON DELETE CASCADE,
    slot         INTEGER NOT NULL CHECK (slot BETWEEN 0 AND 65535),
    invoice      BLOB    NOT NULL CHECK (length(invoice) BETWEEN 1 AND 5120),
    offer_id     BLOB    NOT NULL CHECK (length(offer_id) = 32),
    forward_path BLOB    NOT NULL,
    expires_at   INTEGER NOT NULL,
    stored_at    INTEGER NOT NULL,
    PRIMARY KEY (recipient_id, slot)
) WITHOUT ROWID;
