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
//
// # Who owns what
//
//   - The store owns the messages and registrations; it is the truth the
//     rest follows. The gauges in Stats move only by what a store call
//     reports it committed (stored, evicted, deleted, expired,
//     unregistered, also the chunks of a bulk delete that failed half
//     way), and each sweep re-reads them from the store.
//   - A recipient's queue (queue.go) owns its stored messages while it
//     runs: a goroutine that alone stores, claims, sends and deletes that
//     recipient's messages, one send at a time, oldest first. Messages
//     reach it through its inbox (Handle waits for the answer, the
//     AsyncForwarder does not) and readiness or a sweep reaches it as a
//     kick. It runs the send from a goroutine of its own, so it keeps
//     storing what arrives meanwhile, behind it. The mailbox starts a
//     queue on demand and the queue retires once idle; Stop waits for
//     every queue and the send it has in flight. Sends in flight across
//     all queues are bounded by Limits.MaxDrains.
//   - Mailbox.mu guards the table of registered recipients (readiness and
//     the offline count a channel waiter checks), the running queues, the
//     lifecycle flags and the counters. Nothing holds it across a store
//     call or a call to lnd.
//   - The peer goroutine owns the peer event subscription, the
//     registration goroutine owns the exchange with registering peers and
//     their rate limit, and the sweeper owns expiry; each readiness waiter
//     (one per recipient at most) polls lnd for an active channel.
//
// lnd's actor package was considered for the queues; at the lnd version
// holdd builds with, an actor's Stop does not wait for its goroutine and
// an actor does not retire when idle, both of which the mailbox needs.
package mailbox
