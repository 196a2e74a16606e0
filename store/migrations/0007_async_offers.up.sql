-- holdd schema version 7: the async offer client (package asyncoffer), the
-- recipient side of the static invoice server protocol.
--
-- async_offer_slots holds one row per offer slot: the offer built on the
-- server's offer paths, its signing key, V's key (the virtual final hop of
-- the static invoice's payment paths, which only this holdd holds) and the
-- fake channel P's hop names toward V, the server's serve path, the
-- server it was built against, and the
-- last static invoice the server persisted. Keys are secrets: the database
-- file is already 0600. paths_expires_at and invoice_expires_at are Unix
-- seconds (0: none); the other times are Unix nanoseconds.
CREATE TABLE async_offer_slots (
    slot               INTEGER NOT NULL PRIMARY KEY
                               CHECK (slot BETWEEN 0 AND 65535),
    phase              TEXT    NOT NULL
                               CHECK (phase IN ('requesting', 'serving',
                                                'live')),
    live               INTEGER NOT NULL DEFAULT 0 CHECK (live IN (0, 1)),
    offer              BLOB,
    offer_key          BLOB    CHECK (offer_key IS NULL OR
                                      length(offer_key) = 32),
    virtual_key        BLOB    CHECK (virtual_key IS NULL OR
                                      length(virtual_key) = 32),
    fake_scid          INTEGER NOT NULL DEFAULT 0,
    paths_expires_at   INTEGER NOT NULL DEFAULT 0,
    serve_path         BLOB,
    invoice            BLOB,
    invoice_expires_at INTEGER NOT NULL DEFAULT 0,
    served_at          INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL DEFAULT 0,
    -- server names the recipient.server paths the slot was built
    -- against (SHA-256 of them); another server's slot starts over.
    server             BLOB
);

-- forwarded_invoice_requests records the invoice_requests the server
-- forwarded over our forward_invoice_request_path; answering them with a
-- fresh invoice is later work.
CREATE TABLE forwarded_invoice_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    slot        INTEGER NOT NULL,
    request     BLOB    NOT NULL,
    reply_path  BLOB,
    received_at INTEGER NOT NULL
);
