// Package asyncoffer owns the client side of the static invoice server
// protocol (LDK's AsyncPaymentsRole::Client) for holdd's recipient role: per
// invoice slot it asks the server for offer paths (offer_paths_request),
// builds an offer on them and a static invoice for that offer, has the
// server persist the invoice (serve_static_invoice, static_invoice_persisted)
// and keeps it fresh. It also owns the path_ids of the reply paths it mints
// for those exchanges, under their own MAC domain, and records the
// invoice_requests the server forwards.
//
// It is its own package rather than more of package recipient because it
// runs its own state machine against a remote server, with its own store
// rows and keys, while recipient only answers held_htlc_available; the two
// meet only through ReceivePaths.
package asyncoffer
