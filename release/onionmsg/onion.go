package onionmsg

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/btcsuite/btcd/btcec/v2"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/tlv"
)

const (
	// ReplyPathType is the onionmsg_tlv type of reply_path.
	ReplyPathType uint64 = 2

	// EncryptedDataType is the onionmsg_tlv type of
	// encrypted_recipient_data.
	EncryptedDataType uint64 = 4

	// MinFinalTLVType is the first onionmsg_tlv type reserved for the
	// final hop's message contents.
	MinFinalTLVType uint64 = 64

	// HeldHTLCAvailableType is the final-hop onionmsg TLV
	// held_htlc_available, which a sender sends to the recipient.
	HeldHTLCAvailableType uint64 = 72

	// ReleaseHeldHTLCType is the final-hop onionmsg TLV
	// release_held_htlc, which the recipient sends back over a release
	// path.
	ReleaseHeldHTLCType uint64 = 74
)

// BuildOnionMessage builds a lnwire.OnionMessage that travels path and
// carries, at the final hop, an optional reply path (onionmsg TLV 2) and
// final TLVs (types >= 64, e.g. 74 => []byte{0}). The onion payload is 1300
// bytes, or 32768 when it does not fit.
//
// The onion only names blinded node ids, so path may start at a sciddir; the
// caller sends the message to the introduction node it names.
func BuildOnionMessage(sessionKey *btcec.PrivateKey, path *BlindedPath,
	replyPath *BlindedPath,
	finalTLVs map[uint64][]byte) (*lnwire.OnionMessage, error) {

	for t := range finalTLVs {
		if t < MinFinalTLVType {
			return nil, fmt.Errorf("%w: %d", ErrInvalidFinalTLV, t)
		}
	}
	return buildOnionMessage(sessionKey, path, replyPath, finalTLVs)
}

// buildOnionMessage builds the message with any extra final-hop TLVs but 2
// and 4. BOLT 4's test vector puts type 1 in the final payload, which
// BuildOnionMessage does not allow callers to do.
func buildOnionMessage(sessionKey *btcec.PrivateKey, path *BlindedPath,
	replyPath *BlindedPath,
	finalTLVs map[uint64][]byte) (*lnwire.OnionMessage, error) {

	if sessionKey == nil {
		return nil, fmt.Errorf("%w: no session key", ErrInvalidHops)
	}
	if err := path.validate(); err != nil {
		return nil, err
	}
	if len(path.Hops) > sphinx.NumMaxHops {
		return nil, fmt.Errorf("%w: %d hops, an onion holds at most %d",
			ErrInvalidPath, len(path.Hops), sphinx.NumMaxHops)
	}

	var replyBytes []byte
	if replyPath != nil {
		b, err := replyPath.Bytes()
		if err != nil {
			return nil, fmt.Errorf("reply path: %w", err)
		}
		replyBytes = b
	}

	var sphinxPath sphinx.PaymentPath
	last := len(path.Hops) - 1
	for i, hop := range path.Hops {
		records := map[uint64][]byte{EncryptedDataType: hop.CipherText}
		if i == last {
			for t, v := range finalTLVs {
				if t == ReplyPathType || t == EncryptedDataType {
					return nil, fmt.Errorf("%w: %d is "+
						"reserved", ErrInvalidFinalTLV,
						t)
				}
				records[t] = v
			}
			if replyBytes != nil {
				records[ReplyPathType] = replyBytes
			}
		}
		payload, err := encodePayload(records)
		if err != nil {
			return nil, err
		}
		hopPayload, err := sphinx.NewTLVHopPayload(payload)
		if err != nil {
			return nil, err
		}
		sphinxPath[i] = sphinx.OnionHop{
			NodePub:    *hop.BlindedNodePub,
			HopPayload: hopPayload,
		}
	}

	size := sphinx.MaxRoutingPayloadSize
	if sphinxPath.TotalPayloadSize() > size {
		size = sphinx.MaxOnionMessagePayloadSize
	}
	if sphinxPath.TotalPayloadSize() > size {
		return nil, fmt.Errorf("%w: %d bytes", ErrMessageTooLarge,
			sphinxPath.TotalPayloadSize())
	}

	// The deterministic filler is BOLT 4's: keyed by the session key,
	// which is fresh for every message.
	pkt, err := sphinx.NewOnionPacket(
		&sphinxPath, sessionKey, nil, sphinx.DeterministicPacketFiller,
		sphinx.WithMaxPayloadSize(size),
	)
	if err != nil {
		return nil, fmt.Errorf("build onion: %w", err)
	}
	var blob bytes.Buffer
	if err := pkt.Encode(&blob); err != nil {
		return nil, err
	}
	return lnwire.NewOnionMessage(path.PathKey, blob.Bytes()), nil
}

// encodePayload encodes an onionmsg_tlv stream with the records in
// ascending type order.
func encodePayload(records map[uint64][]byte) ([]byte, error) {
	types := slices.Sorted(maps.Keys(records))
	values := make([][]byte, len(types))
	tlvRecords := make([]tlv.Record, len(types))
	for i, t := range types {
		values[i] = records[t]
		tlvRecords[i] = tlv.MakePrimitiveRecord(tlv.Type(t), &values[i])
	}
	stream, err := tlv.NewStream(tlvRecords...)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := stream.Encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
