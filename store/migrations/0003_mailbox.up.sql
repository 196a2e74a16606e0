-- holdd schema version 3: the mailbox role's onion-message store.
--
-- The mailbox keeps onion messages for registered, often-offline recipients
-- until lnd reports them online. It stores only what it relays: the
-- recipient's node key, the message's path key and the Sphinx packet, all of
-- which are blinded or encrypted for the recipient. No payment details ever
-- reach it, so none are stored.

-- Recipients the mailbox serves. A recipient registers with custom message
-- mailbox_register; the peer key is the one lnd authenticated (brontide).
CREATE TABLE mailbox_recipients (
    peer          BLOB    NOT NULL PRIMARY KEY CHECK (length(peer) = 33),
    registered_at INTEGER NOT NULL,
    refreshed_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Stored messages. id orders a recipient's messages (delivery order) and all
-- messages (eviction order); AUTOINCREMENT never reuses an id, so a message
-- stored after a deletion still sorts after every older one. claimed_at is
-- set (persisted) before a message is handed to lnd and the row is deleted
-- once lnd took it; a row still claimed at start-up may have been sent, so it
-- is dropped rather than sent twice. size is the packet's length, kept so
-- the byte bounds never read the packets.
CREATE TABLE mailbox_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient   BLOB    NOT NULL CHECK (length(recipient) = 33)
        REFERENCES mailbox_recipients (peer) ON DELETE CASCADE,
    path_key    BLOB    NOT NULL CHECK (length(path_key) = 33),
    onion       BLOB    NOT NULL CHECK (length(onion) > 0),
    size        INTEGER NOT NULL CHECK (size = length(onion)),
    received_at INTEGER NOT NULL,
    claimed_at  INTEGER NOT NULL DEFAULT 0
);

-- Covers a recipient's queue and its per-recipient sums without reading the
-- packets.
CREATE INDEX mailbox_messages_recipient
    ON mailbox_messages (recipient, id, claimed_at, size);
CREATE INDEX mailbox_messages_received_at ON mailbox_messages (received_at);

-- Running totals of mailbox_messages, kept by the triggers below, so the
-- total bounds are checked with one row read rather than a scan of every
-- stored message on each insert. Derived data only.
CREATE TABLE mailbox_usage (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    messages INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
);

INSERT INTO mailbox_usage (id, messages, bytes) VALUES (1, 0, 0);

CREATE TRIGGER mailbox_messages_count_insert AFTER INSERT ON mailbox_messages
BEGIN
    UPDATE mailbox_usage SET messages = messages + 1,
        bytes = bytes + NEW.size WHERE id = 1;
END;

CREATE TRIGGER mailbox_messages_count_delete AFTER DELETE ON mailbox_messages
BEGIN
    UPDATE mailbox_usage SET messages = messages - 1,
        bytes = bytes - OLD.size WHERE id = 1;
END;
