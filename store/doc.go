// Package store owns holdd's durable state: held HTLCs and their state
// history, releases that arrived before their HTLC was offered, secrets
// (such as the release path authenticator key) and small policy settings.
//
// The database is SQLite (modernc.org/sqlite, pure Go) in WAL mode with
// synchronous=FULL, so every write has been fsynced when the call returns:
// the engine persists a decision before it answers lnd, and a crash after
// that answer never loses it. The schema is created and upgraded by the
// numbered migrations embedded from migrations/; a database written by a
// newer holdd is refused (ErrSchemaTooNew) rather than misread.
//
// # Domain types
//
// The records are owned by the packages that decide about them, which also
// declare the store interfaces they need (the taproot-assets tapdb
// pattern): plugin (circuit keys, hold states and their state machine, held
// HTLCs, early releases), mailbox (recipients and stored messages),
// recipient (receive paths) and release (delivery peers). store imports
// them and implements their interfaces; none of them imports store. A
// missing record matches both ErrNotFound and the owning package's
// sentinel (plugin.ErrUnknownHTLC, mailbox.ErrNotRegistered,
// recipient.ErrUnknownPath).
//
// Transition enforces plugin's state machine as a compare-and-set on the
// current state. Every insert and transition also appends a row to the
// HTLC's event log (Events), which keeps the notes of all moves for audit.
package store
