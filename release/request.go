package release

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/tlv"
)

// Peer custom messages of the redelivery exchange. Both are odd, so a peer
// that does not know them ignores them, and in lnd's custom range, so lnd
// hands them to SubscribeCustomMessages.
const (
	// PathsRequestMsgType is release_paths_request, sender -> LSP: "send
	// me the release paths of my held HTLC", or, naming no HTLC, a hello
	// that says the sender reads path deliveries.
	PathsRequestMsgType uint32 = 48007

	// PathsAckMsgType is release_paths_ack, LSP -> sender: the answer to
	// a hello, an empty TLV stream.
	PathsAckMsgType uint32 = 48009
)

// MaxPathsRequestSize bounds a release_paths_request on the wire: the
// largest well-formed one is 56 bytes.
const MaxPathsRequestSize = 256

// TLV types of release_paths_request. All even: a reader that does not
// understand one must not act on the message.
const (
	requestChanIDType tlv.Type = 0
	requestHtlcIDType tlv.Type = 2
	requestHashType   tlv.Type = 4
)

// ErrBadRequest is returned for a release_paths_request that does not
// decode.
var ErrBadRequest = errors.New("malformed release_paths_request")

// PathsRequest is release_paths_request. The sender's identity is the peer
// key lnd reports, never anything in the message. With neither Key nor
// PaymentHash it is a hello.
type PathsRequest struct {
	// Key names one HTLC by its incoming circuit key at the LSP (the
	// sender's outgoing channel and HTLC index).
	Key *plugin.CircuitKey

	// PaymentHash names the sender's held HTLCs with this hash.
	PaymentHash *lntypes.Hash
}

// Hello reports whether the request names no HTLC.
func (r *PathsRequest) Hello() bool {
	return r.Key == nil && r.PaymentHash == nil
}

// Encode writes the request as a TLV stream.
func (r *PathsRequest) Encode() ([]byte, error) {
	var recs []tlv.Record
	if r.Key != nil {
		chanID, htlcID := r.Key.ChanID, r.Key.HtlcID
		recs = append(recs,
			tlv.MakePrimitiveRecord(requestChanIDType, &chanID),
			tlv.MakePrimitiveRecord(requestHtlcIDType, &htlcID))
	}
	if r.PaymentHash != nil {
		hash := [32]byte(*r.PaymentHash)
		recs = append(recs,
			tlv.MakePrimitiveRecord(requestHashType, &hash))
	}
	stream, err := tlv.NewStream(recs...)
	if err != nil {
		return nil, err
	}
	return encodeStream(stream)
}

// DecodePathsRequest parses a release_paths_request. chan_id and htlc_id
// come together or not at all; an unknown even type refuses the message.
func DecodePathsRequest(data []byte) (*PathsRequest, error) {
	if len(data) > MaxPathsRequestSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadRequest, len(data))
	}
	var (
		chanID, htlcID uint64
		hash           [32]byte
	)
	stream, err := tlv.NewStream(
		tlv.MakePrimitiveRecord(requestChanIDType, &chanID),
		tlv.MakePrimitiveRecord(requestHtlcIDType, &htlcID),
		tlv.MakePrimitiveRecord(requestHashType, &hash),
	)
	if err != nil {
		return nil, err
	}
	parsed, err := stream.DecodeWithParsedTypesP2P(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	for t, raw := range parsed {
		if raw != nil && t%2 == 0 {
			return nil, fmt.Errorf("%w: unknown even TLV %d",
				ErrBadRequest, t)
		}
	}
	_, hasChan := parsed[requestChanIDType]
	_, hasHtlc := parsed[requestHtlcIDType]
	_, hasHash := parsed[requestHashType]
	if hasChan != hasHtlc {
		return nil, fmt.Errorf("%w: chan_id and htlc_id must come "+
			"together", ErrBadRequest)
	}
	r := &PathsRequest{}
	if hasChan {
		r.Key = &plugin.CircuitKey{ChanID: chanID, HtlcID: htlcID}
	}
	if hasHash {
		paymentHash := lntypes.Hash(hash)
		r.PaymentHash = &paymentHash
	}
	return r, nil
}

// PathsAck is the value of release_paths_ack: an empty TLV stream.
var PathsAck = []byte{}
