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
// # Hold state machine
//
// A held HTLC enters the store in state held and moves only along these
// edges (Transition enforces them, as a compare-and-set on the current
// state):
//
//	held     -> released   a valid release arrived and was recorded
//	held     -> failed     holdd failed it back (deadline, failback height,
//	                       policy, operator)
//	held     -> gone       lnd resolved it itself (channel closed, lnd's
//	                       own auto-fail) and stopped offering it
//	released -> resumed    holdd sent the resume to lnd
//	released -> failed     as from held, e.g. failback height reached
//	                       before lnd offered the key again
//	released -> gone       as from held
//
// The states mean:
//
//   - held: parked, waiting for a release.
//   - released: a valid release arrived and was recorded; the resume has not
//     been sent yet, typically because lnd is not offering the key on the
//     current interceptor stream. It is resumed when lnd replays it.
//   - resumed, failed, gone: final. A final state never changes again; a
//     replay of a key in a final state is answered from the stored record.
//
// There is no held -> resumed edge: a release is always made durable
// (released) before the resume is sent, so a crash in between cannot lose
// a release the sender already considers delivered.
//
// Every insert and transition also appends a row to the HTLC's event log
// (Events), which keeps the notes of all moves for audit.
package store
