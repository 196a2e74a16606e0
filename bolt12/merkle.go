package bolt12

import (
	"bytes"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// Signature tags: "lightning" || message name || field name.
const (
	// InvoiceRequestSignatureTag signs an invoice_request.
	InvoiceRequestSignatureTag = "lightninginvoice_requestsignature"

	// InvoiceSignatureTag signs an invoice.
	InvoiceSignatureTag = "lightninginvoicesignature"

	// StaticInvoiceSignatureTag signs a static invoice.
	StaticInvoiceSignatureTag = "lightningstatic_invoicesignature"

	// offerIDTag is the tag of LDK's offer id: the tagged hash of the
	// Merkle root of the offer's records.
	offerIDTag = "LDK Offer ID"

	// signatureType is the `signature` field of every signed message.
	signatureType = 240
)

// taggedHash is BIP 340's H(tag, msg) = SHA256(SHA256(tag) || SHA256(tag) ||
// msg), from chainhash.
func taggedHash(tag []byte, msg ...[]byte) chainhash.Hash {
	return *chainhash.TaggedHash(tag, msg...)
}

// MerkleRoot computes BOLT 12's Merkle root over records, in their order,
// leaving out the signature types 240-1000. Each record contributes a leaf
// H("LnLeaf", record) and a nonce leaf H("LnNonce"||first record, type);
// inner nodes are H("LnBranch", lesser||greater); with a leaf count that is
// not a power of two the lowest-order leaves get the deepest tree. It
// returns an error for a stream with no records.
func MerkleRoot(records []Record) (chainhash.Hash, error) {
	if len(records) == 0 {
		return chainhash.Hash{}, fmt.Errorf("%w: no records to hash",
			ErrMissingField)
	}
	nonceTag := append([]byte("LnNonce"), records[0].raw...)

	leaves := make([]chainhash.Hash, 0, 2*len(records))
	for _, r := range records {
		if signatureRange.contains(r.Type) {
			continue
		}
		leaves = append(leaves,
			taggedHash([]byte("LnLeaf"), r.raw),
			taggedHash(nonceTag, r.typeBytes),
		)
	}
	if len(leaves) == 0 {
		return chainhash.Hash{}, fmt.Errorf("%w: only signature "+
			"records", ErrMissingField)
	}

	// Pair neighbours level by level, in place: at each level the node
	// at i absorbs the one at i+offset.
	for step := 2; step/2 < len(leaves); step *= 2 {
		offset := step / 2
		for i := 0; i+offset < len(leaves); i += step {
			leaves[i] = branchHash(leaves[i], leaves[i+offset])
		}
	}
	return leaves[0], nil
}

// branchHash is H("LnBranch", lesser || greater).
func branchHash(a, b chainhash.Hash) chainhash.Hash {
	if bytes.Compare(a[:], b[:]) > 0 {
		a, b = b, a
	}
	return taggedHash([]byte("LnBranch"), a[:], b[:])
}

// SignatureDigest is the message a BOLT 12 signature signs: H(tag, Merkle
// root).
func SignatureDigest(tag string, records []Record) (chainhash.Hash, error) {
	root, err := MerkleRoot(records)
	if err != nil {
		return chainhash.Hash{}, err
	}
	return taggedHash([]byte(tag), root[:]), nil
}

// verifySignature checks sig over records with key.
func verifySignature(tag string, records []Record, sig []byte,
	key *btcec.PublicKey) error {

	if key == nil {
		return fmt.Errorf("%w: no signing key", ErrMissingField)
	}
	if sig == nil {
		return fmt.Errorf("%w: signature", ErrMissingField)
	}
	digest, err := SignatureDigest(tag, records)
	if err != nil {
		return err
	}
	s, err := schnorr.ParseSignature(sig)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if !s.Verify(digest[:], key) {
		return fmt.Errorf("%w: does not verify with key %x",
			ErrBadSignature, key.SerializeCompressed())
	}
	return nil
}

// sign appends a signature record to records (which must not have one)
// signed with key.
func sign(tag string, records []Record,
	key *btcec.PrivateKey) ([]Record, error) {

	digest, err := SignatureDigest(tag, records)
	if err != nil {
		return nil, err
	}
	// BIP 340 with all-zero auxiliary randomness, as LDK signs
	// (sign_schnorr_no_aux_rand): the same message and key give the
	// same bytes in both.
	sig, err := schnorr.Sign(key, digest[:], schnorr.CustomNonce([32]byte{}))
	if err != nil {
		return nil, fmt.Errorf("%w: sign: %w", ErrInvalidBuild, err)
	}
	out := make([]Record, 0, len(records)+1)
	for _, r := range records {
		if r.Type < signatureType {
			out = append(out, r)
		}
	}
	out = append(out, NewRecord(signatureType, sig.Serialize()))
	for _, r := range records {
		if r.Type > signatureType {
			out = append(out, r)
		}
	}
	return out, nil
}

// OfferID is LDK's offer id: H("LDK Offer ID", Merkle root of the records in
// the offer ranges 1-79 and 1000000000-1999999999). An offer, every
// invoice_request and invoice for it, and its static invoice share it.
type OfferID [32]byte

// String returns the id in hex.
func (id OfferID) String() string {
	return fmt.Sprintf("%x", id[:])
}

// offerID computes the offer id of any message's records.
func offerID(records []Record) (OfferID, error) {
	root, err := MerkleRoot(filterRecords(records, offerIDRanges))
	if err != nil {
		return OfferID{}, err
	}
	return OfferID(taggedHash([]byte(offerIDTag), root[:])), nil
}
