// Package bolt12 is holdd's BOLT 12 codec: offers (lno), invoice requests
// (lnr), invoices (lni), invoice errors and the static invoices LDK v0.2
// writes for async payments.
//
// Every message is kept as the TLV records it was decoded from (or built
// into), so encoding is the concatenation of those records: a decoded
// message re-encodes to the same bytes, and unknown odd fields, including
// the experimental ranges (1000000000 and up), are carried and signed over.
// The typed fields are a checked view of those records.
//
// Decoders are strict and treat every byte as hostile: they bound the input
// size first, never panic, and report failures as errors wrapping the
// sentinels in errors.go. Checks that need the caller's context (the time,
// the chain) are separate methods taking it as an argument.
//
// The layout follows lnd's unreleased bolt12 package and LDK's
// lightning/src/offers so that holdd can move to lnd's once it ships; the
// code is holdd's own, on lnd's tlv package, btcec/v2/schnorr, chainhash and
// holdd's release/onionmsg blinded_path codec.
package bolt12
