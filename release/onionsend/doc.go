// Package onionsend sends onion messages along BOLT 4 blinded paths through
// the lnd node holdd runs next to. It owns the choice of the first hop: the
// path's introduction node when lnd is connected to it, otherwise one hop
// through a connected LSP that the sender blinds itself and joins in front of
// the path, which is how BOLT 4 lets a sender reach an introduction node it
// has no connection to. It hands the finished lnwire.OnionMessage to lnd with
// SendOnionMessage (lnd >= 0.21) or as custom message 513 (older lnd, which
// must run with protocol.custom-message=513).
package onionsend
