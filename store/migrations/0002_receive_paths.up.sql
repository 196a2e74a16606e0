-- holdd schema version 2: the recipient role's async-receive message paths.
--
-- A receive path is published (in a static invoice's message paths); senders
-- send held_htlc_available over it. holdd answers only for paths listed here
-- that are neither expired nor revoked, so an authentic but forgotten path_id
-- gets no reply.

CREATE TABLE receive_paths (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 8),
    path          BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    -- The LSP whose mailbox the path runs through, or empty.
    mailbox_lsp   BLOB    NOT NULL DEFAULT x'',
    revoked_at    INTEGER NOT NULL DEFAULT 0,
    replies       INTEGER NOT NULL DEFAULT 0,
    last_reply_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX receive_paths_expires_at ON receive_paths (expires_at);
