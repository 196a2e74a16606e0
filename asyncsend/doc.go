// Package asyncsend is the sender role of an async payment on an lnd node:
// it greets its LSP with release_paths_request (custom message 48007, which
// tells holdd this sender reads path deliveries), pays through the LSP with
// the hold_htlc signal on the first hop, picks up the release paths the
// LSP's holdd delivers (custom message 48001), asking for them again with
// 48007 when they do not come,
// and tells the recipient that an HTLC is held by sending held_htlc_available
// onion messages whose reply paths are those release paths. It follows the
// payment until lnd reports a final state and reports each step to a
// callback. It owns no CLI and no connection to lnd: both are handed in.
package asyncsend
