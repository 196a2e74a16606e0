// Package recipient owns the async-payment recipient role: it mints the
// async-receive message paths that a static invoice publishes, and answers
// held_htlc_available arriving over them with release_held_htlc along the
// sender's reply path. It decides whom to answer (authentic, known, unexpired
// paths, within a per-path rate); sending is left to a ReplySender.
package recipient
