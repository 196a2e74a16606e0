package release

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/tlv"
)

// PathDeliveryMsgType is the peer custom message holdd's lnd sends to the
// sender of a held HTLC. It is odd, so a peer that does not know it ignores
// it.
const PathDeliveryMsgType uint32 = 48001

// LDKReleasePathsType is the revoke_and_ack TLV in which LDK expects release
// paths (release_htlc_message_paths).
const LDKReleasePathsType tlv.Type = 75537

// maxDeliveryPaths bounds how many paths a delivery may carry, so a decoder
// never allocates for a hostile count.
const maxDeliveryPaths = 16

// ErrBadDelivery is returned for a path delivery that does not decode.
var ErrBadDelivery = errors.New("malformed path delivery")

// TLV types of the path-delivery message. All are even: a reader that does
// not understand one must not act on the message.
const (
	deliveryChanIDType    tlv.Type = 0
	deliveryHtlcIDType    tlv.Type = 2
	deliveryHashType      tlv.Type = 4
	deliveryAmountType    tlv.Type = 6
	deliveryExpiresAtType tlv.Type = 8
	deliveryPathsType     tlv.Type = 10
)

// PathDelivery tells the sender of a held HTLC which paths release it.
type PathDelivery struct {
	// Key is the HTLC's incoming circuit key at the LSP, which is the
	// sender's outgoing channel and HTLC index.
	Key         plugin.CircuitKey
	PaymentHash lntypes.Hash
	AmountMsat  uint64

	// ExpiresAt is when the paths stop working.
	ExpiresAt time.Time

	Paths []*onionmsg.BlindedPath
}

// Encode writes the delivery as a TLV stream.
func (d *PathDelivery) Encode() ([]byte, error) {
	if len(d.Paths) == 0 || len(d.Paths) > maxDeliveryPaths {
		return nil, fmt.Errorf("%w: %d paths", ErrBadDelivery,
			len(d.Paths))
	}
	var paths bytes.Buffer
	for _, p := range d.Paths {
		if err := p.Encode(&paths); err != nil {
			return nil, err
		}
	}
	f := deliveryFields{
		chanID:    d.Key.ChanID,
		htlcID:    d.Key.HtlcID,
		hash:      d.PaymentHash,
		amt:       d.AmountMsat,
		expires:   uint64(d.ExpiresAt.Unix()),
		pathBytes: paths.Bytes(),
	}
	stream, err := f.stream()
	if err != nil {
		return nil, err
	}
	return encodeStream(stream)
}

// deliveryFields are the path-delivery TLVs in wire form.
type deliveryFields struct {
	chanID, htlcID, amt, expires uint64
	hash                         [32]byte
	pathBytes                    []byte
}

// stream binds the delivery's TLV records to f, for encoding and decoding
// alike, so the two can never disagree on the layout.
func (f *deliveryFields) stream() (*tlv.Stream, error) {
	return tlv.NewStream(
		tlv.MakePrimitiveRecord(deliveryChanIDType, &f.chanID),
		tlv.MakePrimitiveRecord(deliveryHtlcIDType, &f.htlcID),
		tlv.MakePrimitiveRecord(deliveryHashType, &f.hash),
		tlv.MakeDynamicRecord(deliveryAmountType, &f.amt,
			func() uint64 { return tlv.SizeTUint64(f.amt) },
			tlv.ETUint64, tlv.DTUint64),
		tlv.MakePrimitiveRecord(deliveryExpiresAtType, &f.expires),
		tlv.MakePrimitiveRecord(deliveryPathsType, &f.pathBytes),
	)
}

// encodeStream serializes a TLV stream.
func encodeStream(stream *tlv.Stream) ([]byte, error) {
	var b bytes.Buffer
	if err := stream.Encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// DecodePathDelivery parses a delivery. Every field is required.
func DecodePathDelivery(data []byte) (*PathDelivery, error) {
	var f deliveryFields
	stream, err := f.stream()
	if err != nil {
		return nil, err
	}
	parsed, err := stream.DecodeWithParsedTypesP2P(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDelivery, err)
	}
	// lnd's tlv skips unknown types of either parity; BOLT 1 says an
	// unknown even type makes the whole message unreadable.
	for t, raw := range parsed {
		if raw != nil && t%2 == 0 {
			return nil, fmt.Errorf("%w: unknown even TLV %d",
				ErrBadDelivery, t)
		}
	}
	for _, t := range []tlv.Type{deliveryChanIDType, deliveryHtlcIDType,
		deliveryHashType, deliveryAmountType, deliveryExpiresAtType,
		deliveryPathsType} {

		if _, ok := parsed[t]; !ok {
			return nil, fmt.Errorf("%w: missing TLV %d",
				ErrBadDelivery, t)
		}
	}
	if f.expires > 1<<62 {
		return nil, fmt.Errorf("%w: expiry %d out of range",
			ErrBadDelivery, f.expires)
	}

	d := &PathDelivery{
		Key:         plugin.CircuitKey{ChanID: f.chanID, HtlcID: f.htlcID},
		PaymentHash: f.hash,
		AmountMsat:  f.amt,
		ExpiresAt:   time.Unix(int64(f.expires), 0),
	}
	r := bytes.NewReader(f.pathBytes)
	for r.Len() > 0 {
		if len(d.Paths) == maxDeliveryPaths {
			return nil, fmt.Errorf("%w: more than %d paths",
				ErrBadDelivery, maxDeliveryPaths)
		}
		p, err := onionmsg.DecodeBlindedPath(r)
		if err != nil {
			return nil, fmt.Errorf("%w: path %d: %v",
				ErrBadDelivery, len(d.Paths), err)
		}
		d.Paths = append(d.Paths, p)
	}
	if len(d.Paths) == 0 {
		return nil, fmt.Errorf("%w: no paths", ErrBadDelivery)
	}
	return d, nil
}

// LDKReleasePath is one entry of LDK's release_htlc_message_paths: the
// sender's HTLC index on the channel and one path that releases it.
type LDKReleasePath struct {
	HtlcID uint64
	Path   *onionmsg.BlindedPath
}

// EncodeLDKReleasePaths returns the value of revoke_and_ack TLV 75537 as LDK
// reads it: (htlc_id u64 big-endian, blinded_path), repeated. lnd cannot
// attach it to revoke_and_ack yet; this is ready for when it can.
func EncodeLDKReleasePaths(entries []LDKReleasePath) ([]byte, error) {
	var b bytes.Buffer
	var buf [8]byte
	for _, e := range entries {
		if err := tlv.EUint64(&b, &e.HtlcID, &buf); err != nil {
			return nil, err
		}
		if err := e.Path.Encode(&b); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// DecodeLDKReleasePaths parses the value of revoke_and_ack TLV 75537.
func DecodeLDKReleasePaths(value []byte) ([]LDKReleasePath, error) {
	var entries []LDKReleasePath
	r := bytes.NewReader(value)
	var buf [8]byte
	for r.Len() > 0 {
		var e LDKReleasePath
		if err := tlv.DUint64(r, &e.HtlcID, &buf, 8); err != nil {
			return nil, fmt.Errorf("%w: htlc_id: %v", ErrBadDelivery,
				err)
		}
		p, err := onionmsg.DecodeBlindedPath(r)
		if err != nil {
			return nil, fmt.Errorf("%w: path: %v", ErrBadDelivery,
				err)
		}
		e.Path = p
		entries = append(entries, e)
	}
	return entries, nil
}

// EncodeLDKReleasePathsRecord returns the whole TLV record (type, length,
// value) as it would stand in revoke_and_ack's extension stream.
func EncodeLDKReleasePathsRecord(entries []LDKReleasePath) ([]byte, error) {
	value, err := EncodeLDKReleasePaths(entries)
	if err != nil {
		return nil, err
	}
	stream, err := tlv.NewStream(
		tlv.MakePrimitiveRecord(LDKReleasePathsType, &value),
	)
	if err != nil {
		return nil, err
	}
	return encodeStream(stream)
}
