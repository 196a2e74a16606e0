package onionmsg

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/tlv"
)

const (
	// onionHeaderLen is the onion_message_packet's version byte and
	// public key.
	onionHeaderLen = 1 + pubKeyLen

	// minOnionLen is the shortest packet with any payload: header, one
	// payload byte and the HMAC.
	minOnionLen = onionHeaderLen + 1 + sphinx.HMACSize

	// maxOnionLen is the longest packet BOLT 4 defines (32768 payload).
	maxOnionLen = onionHeaderLen + sphinx.MaxOnionMessagePayloadSize +
		sphinx.HMACSize
)

// Peeler peels onion messages addressed to the holder of an ECDH key. It
// keeps no state between messages and is safe for concurrent use if the
// ECDH is.
type Peeler struct {
	router *sphinx.Router
}

// taggedECDH marks the key's own failures with ErrECDH, so that a node key
// that is unavailable is not reported as a bad onion.
type taggedECDH struct {
	sphinx.SingleKeyECDH
}

func (k taggedECDH) ECDH(pub *btcec.PublicKey) ([32]byte, error) {
	ss, err := k.SingleKeyECDH.ECDH(pub)
	if err != nil {
		return ss, fmt.Errorf("%w: %w", ErrECDH, err)
	}
	return ss, nil
}

// wrapErr wraps err in sentinel unless it is the key's own failure.
func wrapErr(sentinel, err error) error {
	if errors.Is(err, ErrECDH) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// NewPeeler returns a Peeler for ecdh, which may be keychain.PrivKeyECDH or
// an implementation backed by lnd's signrpc DeriveSharedKey.
func NewPeeler(ecdh sphinx.SingleKeyECDH) *Peeler {
	// No replay log: onion messages are not replay-protected by BOLT 4,
	// and a replayed release is harmless because the hold engine treats
	// a second release of the same HTLC as a duplicate.
	return &Peeler{
		router: sphinx.NewRouter(
			taggedECDH{ecdh}, sphinx.NewNoOpReplayLog(),
		),
	}
}

// Peeled is the result of peeling one layer.
type Peeled struct {
	// Final is set when there is no next hop: the message is for us.
	Final bool

	// Data is our decrypted encrypted_recipient_data (PathID for the
	// final hop).
	Data *record.BlindedRouteData

	// ReplyPath is onionmsg TLV 2 if present (pubkey or sciddir intro).
	ReplyPath *BlindedPath

	// FinalTLVs are the onionmsg TLVs >= 64 with their raw values (an
	// empty value is len 0, non-nil). Unknown even types are returned
	// too: the caller decides which it understands.
	FinalTLVs map[uint64][]byte

	// OddTLVs are the final hop's odd onionmsg TLVs below 64 other than
	// reply_path, which BOLT 4 lets a reader ignore; kept for callers
	// that want to look.
	OddTLVs map[uint64][]byte

	// NextNodeID is the next node of a forwarding hop, from our
	// encrypted data.
	NextNodeID *btcec.PublicKey

	// NextSCID is the next channel of a forwarding hop when our
	// encrypted data names one.
	NextSCID *lnwire.ShortChannelID

	// NextMessage is the message to pass on from a forwarding hop. Its
	// path key honours next_path_key_override.
	NextMessage *lnwire.OnionMessage
}

// Peel peels our layer off msg. All input is hostile: any failure is
// returned as an error wrapping ErrBadOnion, ErrBadPayload,
// ErrNoEncryptedData, ErrBadEncryptedData or ErrNoNextHop, except a failure
// of the node key itself, which wraps ErrECDH.
func (p *Peeler) Peel(msg *lnwire.OnionMessage) (*Peeled, error) {
	if msg == nil || msg.PathKey == nil {
		return nil, fmt.Errorf("%w: no path key", ErrBadOnion)
	}
	// btcec only yields points on the curve when parsing, but a caller
	// may hand us a key built by other means.
	if !msg.PathKey.IsOnCurve() {
		return nil, fmt.Errorf("%w: path key not on the curve",
			ErrBadOnion)
	}
	if len(msg.OnionBlob) < minOnionLen || len(msg.OnionBlob) > maxOnionLen {
		return nil, fmt.Errorf("%w: packet is %d bytes", ErrBadOnion,
			len(msg.OnionBlob))
	}

	var pkt sphinx.OnionPacket
	if err := pkt.Decode(bytes.NewReader(msg.OnionBlob)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOnion, err)
	}
	processed, err := p.router.ProcessOnionPacket(
		&pkt, nil, 0, sphinx.WithBlindingPoint(msg.PathKey),
		sphinx.WithTLVPayloadOnly(),
	)
	if err != nil {
		return nil, wrapErr(ErrBadOnion, err)
	}
	final := processed.Action == sphinx.ExitNode

	out := &Peeled{Final: final}
	encData, err := parsePayload(processed.Payload.Payload, final, out)
	if err != nil {
		return nil, err
	}

	plain, err := p.router.DecryptBlindedHopData(msg.PathKey, encData)
	if err != nil {
		return nil, wrapErr(ErrBadEncryptedData, err)
	}
	data, err := record.DecodeBlindedRouteData(bytes.NewReader(plain))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEncryptedData, err)
	}
	out.Data = data
	if final {
		return out, nil
	}

	out.NextNodeID = data.NextNodeID.ValOpt().UnwrapOr(nil)
	data.ShortChannelID.WhenSomeV(func(scid lnwire.ShortChannelID) {
		out.NextSCID = &scid
	})
	if out.NextNodeID == nil && out.NextSCID == nil {
		return nil, ErrNoNextHop
	}

	nextPathKey := data.NextBlindingOverride.ValOpt().UnwrapOr(nil)
	if nextPathKey == nil {
		nextPathKey, err = p.router.NextEphemeral(msg.PathKey)
		if err != nil {
			return nil, wrapErr(ErrBadOnion, err)
		}
	}

	var next bytes.Buffer
	if err := processed.NextPacket.Encode(&next); err != nil {
		return nil, fmt.Errorf("%w: next packet: %w", ErrBadOnion, err)
	}
	out.NextMessage = lnwire.NewOnionMessage(nextPathKey, next.Bytes())
	return out, nil
}

// parsePayload checks our hop's onionmsg_tlv and returns its encrypted data.
// On the final hop it fills out's reply path and final TLVs.
func parsePayload(payload []byte, final bool, out *Peeled) ([]byte, error) {
	// A stream with no known records hands back every record raw; the
	// P2P variant caps record lengths so a hostile length cannot make it
	// allocate more than the payload can hold.
	stream, err := tlv.NewStream()
	if err != nil {
		return nil, err
	}
	records, err := stream.DecodeWithParsedTypesP2P(
		bytes.NewReader(payload),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}

	encData, ok := records[tlv.Type(EncryptedDataType)]
	if !ok || len(encData) == 0 {
		return nil, ErrNoEncryptedData
	}

	for t, v := range records {
		typ := uint64(t)
		switch {
		case typ == EncryptedDataType:

		// BOLT 4: a forwarding hop ignores a message whose payload
		// has anything but encrypted_recipient_data.
		case !final:
			return nil, fmt.Errorf("%w: TLV %d on a forwarding hop",
				ErrBadPayload, typ)

		case typ == ReplyPathType:
			r := bytes.NewReader(v)
			path, err := DecodeBlindedPath(r)
			if err != nil {
				return nil, fmt.Errorf("%w: reply path: %w",
					ErrBadPayload, err)
			}
			if r.Len() != 0 {
				return nil, fmt.Errorf("%w: %d bytes after "+
					"reply path", ErrBadPayload, r.Len())
			}
			out.ReplyPath = path

		case typ >= MinFinalTLVType:
			if out.FinalTLVs == nil {
				out.FinalTLVs = make(map[uint64][]byte)
			}
			out.FinalTLVs[typ] = v

		// "It's OK to be odd": an unknown even type below the final
		// range must make us ignore the message.
		case typ%2 == 0:
			return nil, fmt.Errorf("%w: unknown even TLV %d",
				ErrBadPayload, typ)

		default:
			if out.OddTLVs == nil {
				out.OddTLVs = make(map[uint64][]byte)
			}
			out.OddTLVs[typ] = v
		}
	}
	return encData, nil
}
