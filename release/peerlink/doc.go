// Package peerlink owns holdd's own Lightning peer connection to its lnd.
//
// lnd v0.21 drops, at its own final hop, onion messages whose payload has an
// unknown even TLV, so a release_held_htlc (type 74) addressed to lnd never
// reaches a subscriber. lnd does forward a message to the next_node_id of a
// blinded hop if that node is a connected peer, channel or not. holdd therefore
// holds its own node key and keeps a channel-less peer connection to lnd's p2p
// port: Noise handshake (lnd's brontide), Init with data_loss_protect (which
// lnd insists on) and onion messages, ping/pong, and reconnect with capped
// backoff. Onion messages arriving over the link are handed to a
// MessageHandler in arrival order; peeling them is release/onionmsg's job.
package peerlink
