// Package invoiceserver is holdd's static invoice server, the LSP side of
// LDK v0.2's async-receive protocol (rust-lightning
// lightning/src/offers/flow.rs, onion_message/async_payments.rs). It owns:
//
//   - the path_ids of the three kinds of blinded paths the server mints,
//     MACed under their own domain: registration paths handed to a
//     recipient out of band (recipient id, expiry), offer paths the
//     recipient's offer carries (recipient id, slot, expiry) and serve
//     paths, the reply path of offer_paths over which the recipient sends
//     serve_static_invoice (recipient id, slot, expiry);
//   - the handlers of offer_paths_request, serve_static_invoice and of
//     invoice_requests arriving on an offer path, with their bounds (slots,
//     invoice size, recipients, rates) and counted drops;
//   - the consumer-side interfaces it needs: a Store for recipients and
//     their static invoices, a Sender for replies, a Forwarder for the
//     invoice_requests forwarded to the recipient, and a PathMinter.
//
// It neither peels onion messages nor talks to lnd: the intake hands it
// peeled messages, and the wiring supplies the sender and forwarder.
package invoiceserver
