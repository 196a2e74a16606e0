// Package custommsg is holdd's onion-message transport for lnd 0.18-0.20,
// which have no onion-message support of their own.
//
// With protocol.custom-message=513 in lnd.conf those releases hand raw
// onion_message peer messages (type 513) to SubscribeCustomMessages and send
// them with SendCustomMessage. This package owns that stream (subscribe,
// resubscribe with capped backoff, decode of the 513 payload into an
// lnwire.OnionMessage) and the ECDH that lets holdd peel a Sphinx packet
// addressed to lnd's node key without that key ever leaving lnd: NodeKeyECDH
// asks signrpc's DeriveSharedKey for every shared secret.
//
// In this mode release paths end at lnd's own node id, and holdd reads their
// final hop. The transport does not peel, forward or judge messages: it
// hands every decoded message, in arrival order, to a handler such as
// release.Intake.HandleOnionMessage, which also drops messages with a next
// hop (lnd 0.20 cannot forward them for us).
package custommsg
