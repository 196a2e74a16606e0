// Package onionmsg is holdd's onion-message codec, a thin layer over
// lightning-onion and lnd's record, lnwire and tlv packages. It owns the
// BOLT 4 blinded_path wire format (pubkey or sciddir introduction node),
// building blinded message paths, building onion_message packets and peeling
// one layer of an incoming onion message with a node key.
//
// Every byte that reaches Peel or DecodeBlindedPath is treated as hostile:
// they never panic and report failures as errors wrapping the sentinels in
// errors.go. Final-hop payloads are parsed with a generic TLV stream rather
// than lnwire.OnionMessagePayload, because that decoder rejects unknown even
// types and holdd's own messages (72, 74) are even.
package onionmsg
