// Package mailbox owns the mailbox role: holdd at a recipient's LSP keeps
// onion messages for registered recipients that are offline and hands them
// to the LSP's lnd once the recipient is ready again.
//
// A recipient's async-receive message paths run
//
//	[LSP lnd: next = mailbox] -> [mailbox (LSP holdd): next = recipient lnd]
//	  -> [recipient lnd: next = recipient holdd] -> [recipient holdd: path_id]
//
// so the LSP's lnd forwards each message to holdd over the peer link, the
// intake peels holdd's hop and calls Mailbox.Handle with the next node and
// the already re-wrapped message. The mailbox stores it first, then sends it
// with lnd's SendOnionMessage when the recipient is ready; otherwise it
// sends it when the recipient is ready again: connected (lnd's peer
// events), registered again by its holdd, and its channel with the LSP
// active. Messages of a recipient go out in the order they arrived and at
// most once.
//
// The mailbox serves only recipients that registered with the custom
// message mailbox_register (48003); it answers with mailbox_registered
// (48005). Client is the recipient side of that exchange.
//
// It never sees a payment: the messages it stores are Sphinx packets and
// path keys blinded for the recipient. See docs/mailbox.md.
package mailbox
