// Package release owns holdd's release paths: the authenticated path_id that
// names one held HTLC, the minting of blinded message paths that end at
// holdd, the formats that deliver those paths to the sender (holdd's peer
// custom message and LDK's revoke_and_ack TLV layout), and the intake that
// turns a peeled release_held_htlc onion message into a release of the
// matching HTLC. Every incoming message is hostile until its path_id
// verifies; anything else is logged, counted and otherwise ignored.
package release
