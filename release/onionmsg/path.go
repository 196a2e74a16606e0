package onionmsg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/btcsuite/btcd/btcec/v2"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
)

const (
	// MaxPathHops is the most hops a blinded_path can carry: num_hops is
	// a u8.
	MaxPathHops = math.MaxUint8

	// pubKeyLen is the length of a compressed public key.
	pubKeyLen = btcec.PubKeyBytesLenCompressed

	// sciddirLen is the length of a sciddir introduction node: the
	// direction byte and the 8-byte short channel id.
	sciddirLen = 1 + 8
)

// SCIDDir is a sciddir introduction node: direction byte 0 or 1 + short
// channel id. The direction selects which end of the channel is meant: 0 is
// the node with the lesser node id.
type SCIDDir struct {
	Direction byte
	SCID      lnwire.ShortChannelID
}

// BlindedPath is a BOLT 4 blinded_path with either a pubkey or a sciddir
// introduction node.
type BlindedPath struct {
	// IntroNode is set when the introduction node is a pubkey.
	IntroNode *btcec.PublicKey

	// IntroSCIDDir is set when the introduction node is a sciddir.
	// Exactly one of IntroNode and IntroSCIDDir is set.
	IntroSCIDDir *SCIDDir

	// PathKey is first_path_key, the blinding point the introduction
	// node combines with its key.
	PathKey *btcec.PublicKey

	// Hops are the blinded node ids with their encrypted data, the
	// introduction node's first.
	Hops []*sphinx.BlindedHopInfo
}

// NewBlindedPath wraps a path built by lightning-onion (always a pubkey
// introduction node).
func NewBlindedPath(p *sphinx.BlindedPath) *BlindedPath {
	return &BlindedPath{
		IntroNode: p.IntroductionPoint,
		PathKey:   p.BlindingPoint,
		Hops:      append([]*sphinx.BlindedHopInfo(nil), p.BlindedHops...),
	}
}

// validate checks everything Encode needs, so that Encode writes either the
// whole path or nothing.
func (p *BlindedPath) validate() error {
	if p == nil {
		return fmt.Errorf("%w: nil path", ErrInvalidPath)
	}
	switch {
	case p.IntroNode == nil && p.IntroSCIDDir == nil:
		return fmt.Errorf("%w: no introduction node", ErrInvalidPath)

	case p.IntroNode != nil && p.IntroSCIDDir != nil:
		return fmt.Errorf("%w: both a pubkey and a sciddir "+
			"introduction node", ErrInvalidPath)

	case p.IntroSCIDDir != nil && p.IntroSCIDDir.Direction > 1:
		return fmt.Errorf("%w: sciddir direction %d", ErrInvalidPath,
			p.IntroSCIDDir.Direction)
	}
	if p.PathKey == nil {
		return fmt.Errorf("%w: no first_path_key", ErrInvalidPath)
	}
	if len(p.Hops) == 0 || len(p.Hops) > MaxPathHops {
		return fmt.Errorf("%w: %d hops", ErrInvalidPath, len(p.Hops))
	}
	for i, h := range p.Hops {
		switch {
		case h == nil || h.BlindedNodePub == nil:
			return fmt.Errorf("%w: hop %d has no blinded node id",
				ErrInvalidPath, i)

		case len(h.CipherText) == 0 ||
			len(h.CipherText) > math.MaxUint16:

			return fmt.Errorf("%w: hop %d has %d bytes of "+
				"encrypted data", ErrInvalidPath, i,
				len(h.CipherText))
		}
	}
	return nil
}

// Encode writes the path in its wire form:
// first_node_id | first_path_key | num_hops u8 |
// num_hops x (blinded_node_id | u16 enc_len | encrypted_recipient_data).
func (p *BlindedPath) Encode(w io.Writer) error {
	b, err := p.Bytes()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Bytes returns the wire form of the path.
func (p *BlindedPath) Bytes() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}

	size := pubKeyLen + 1
	for _, h := range p.Hops {
		size += pubKeyLen + 2 + len(h.CipherText)
	}
	if p.IntroNode != nil {
		size += pubKeyLen
	} else {
		size += sciddirLen
	}
	b := make([]byte, 0, size)

	if p.IntroNode != nil {
		b = append(b, p.IntroNode.SerializeCompressed()...)
	} else {
		b = append(b, p.IntroSCIDDir.Direction)
		b = binary.BigEndian.AppendUint64(
			b, p.IntroSCIDDir.SCID.ToUint64(),
		)
	}
	b = append(b, p.PathKey.SerializeCompressed()...)
	b = append(b, byte(len(p.Hops)))
	for _, h := range p.Hops {
		b = append(b, h.BlindedNodePub.SerializeCompressed()...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(h.CipherText)))
		b = append(b, h.CipherText...)
	}
	return b, nil
}

// DecodeBlindedPath reads exactly one blinded path from r. It is strict:
// the introduction node must be a valid pubkey or a sciddir with direction
// 0 or 1, all points must be on the curve, num_hops must be at least one and
// every hop must carry encrypted data. It reads nothing past the path, so
// paths can be read back to back.
func DecodeBlindedPath(r io.Reader) (*BlindedPath, error) {
	var (
		p     BlindedPath
		first [1]byte
	)
	if _, err := io.ReadFull(r, first[:]); err != nil {
		return nil, readErr("first_node_id", err)
	}
	switch first[0] {
	case 0, 1:
		var scid [8]byte
		if _, err := io.ReadFull(r, scid[:]); err != nil {
			return nil, readErr("sciddir", err)
		}
		p.IntroSCIDDir = &SCIDDir{
			Direction: first[0],
			SCID: lnwire.NewShortChanIDFromInt(
				binary.BigEndian.Uint64(scid[:]),
			),
		}

	case 2, 3:
		var key [pubKeyLen]byte
		key[0] = first[0]
		if _, err := io.ReadFull(r, key[1:]); err != nil {
			return nil, readErr("first_node_id", err)
		}
		intro, err := btcec.ParsePubKey(key[:])
		if err != nil {
			return nil, fmt.Errorf("%w: first_node_id: %w",
				ErrInvalidPath, err)
		}
		p.IntroNode = intro

	default:
		return nil, fmt.Errorf("%w: first_node_id starts with %#02x, "+
			"neither a sciddir direction nor a pubkey",
			ErrInvalidPath, first[0])
	}

	pathKey, err := readPubKey(r, "first_path_key")
	if err != nil {
		return nil, err
	}
	p.PathKey = pathKey

	var numHops [1]byte
	if _, err := io.ReadFull(r, numHops[:]); err != nil {
		return nil, readErr("num_hops", err)
	}
	if numHops[0] == 0 {
		return nil, fmt.Errorf("%w: num_hops is 0", ErrInvalidPath)
	}

	p.Hops = make([]*sphinx.BlindedHopInfo, 0, numHops[0])
	for i := range int(numHops[0]) {
		field := fmt.Sprintf("hop %d", i)
		node, err := readPubKey(r, field+" blinded_node_id")
		if err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, readErr(field+" enc_len", err)
		}
		dataLen := binary.BigEndian.Uint16(l[:])
		if dataLen == 0 {
			return nil, fmt.Errorf("%w: %s has no encrypted data",
				ErrInvalidPath, field)
		}
		data := make([]byte, dataLen)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, readErr(field+" encrypted data", err)
		}
		p.Hops = append(p.Hops, &sphinx.BlindedHopInfo{
			BlindedNodePub: node,
			CipherText:     data,
		})
	}
	return &p, nil
}

func readPubKey(r io.Reader, field string) (*btcec.PublicKey, error) {
	var b [pubKeyLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, readErr(field, err)
	}
	// ParsePubKey also rejects x >= p, so a parsed key serializes back to
	// exactly these bytes.
	key, err := btcec.ParsePubKey(b[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidPath, field, err)
	}
	return key, nil
}

func readErr(field string, err error) error {
	// A path that ends early is truncated wherever the reader ran out.
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalidPath, field, err)
}

// SphinxPath returns the path in lightning-onion's form, which only knows
// pubkey introduction nodes.
func (p *BlindedPath) SphinxPath() (*sphinx.BlindedPath, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if p.IntroNode == nil {
		return nil, ErrSCIDDirIntro
	}
	return &sphinx.BlindedPath{
		IntroductionPoint: p.IntroNode,
		BlindingPoint:     p.PathKey,
		BlindedHops:       append([]*sphinx.BlindedHopInfo(nil), p.Hops...),
	}, nil
}

// Hop is one hop of a path being built: the real node id and its plaintext
// encrypted_data_tlv.
type Hop struct {
	NodeID *btcec.PublicKey
	Data   *record.BlindedRouteData
}

// BuildBlindedPath blinds hops with sessionKey (first_path_key =
// sessionKey*G). With pad=true every hop's data is padded (TLV 1) to the same
// length, as BOLT 4 recommends, so that the encrypted data does not tell an
// observer which hop is the last; any padding the caller set is replaced.
// The hops' Data is not modified.
func BuildBlindedPath(sessionKey *btcec.PrivateKey, hops []Hop,
	pad bool) (*BlindedPath, error) {

	if len(hops) == 0 || len(hops) > MaxPathHops {
		return nil, fmt.Errorf("%w: %d hops", ErrInvalidHops, len(hops))
	}
	for i, h := range hops {
		if h.NodeID == nil || h.Data == nil {
			return nil, fmt.Errorf("%w: hop %d needs a node id and "+
				"data", ErrInvalidHops, i)
		}
		// lnd's encoder dereferences these keys without a check.
		nodeID := h.Data.NextNodeID.ValOpt()
		override := h.Data.NextBlindingOverride.ValOpt()
		if (nodeID.IsSome() && nodeID.UnwrapOr(nil) == nil) ||
			(override.IsSome() && override.UnwrapOr(nil) == nil) {

			return nil, fmt.Errorf("%w: hop %d has a nil key in "+
				"its data", ErrInvalidHops, i)
		}
	}

	plaintexts, err := encodeHopData(hops, pad)
	if err != nil {
		return nil, err
	}
	infos := make([]*sphinx.HopInfo, len(hops))
	for i, h := range hops {
		infos[i] = &sphinx.HopInfo{
			NodePub:   h.NodeID,
			PlainText: plaintexts[i],
		}
	}
	return BuildBlindedPathRaw(sessionKey, infos)
}

// BuildBlindedPathRaw blinds hops whose encrypted_data_tlv plaintexts the
// caller has already encoded, e.g. with records record.BlindedRouteData does
// not know.
func BuildBlindedPathRaw(sessionKey *btcec.PrivateKey,
	hops []*sphinx.HopInfo) (*BlindedPath, error) {

	if sessionKey == nil {
		return nil, fmt.Errorf("%w: no session key", ErrInvalidHops)
	}
	if len(hops) == 0 || len(hops) > MaxPathHops {
		return nil, fmt.Errorf("%w: %d hops", ErrInvalidHops, len(hops))
	}
	for i, h := range hops {
		switch {
		case h == nil || h.NodePub == nil:
			return nil, fmt.Errorf("%w: hop %d has no node id",
				ErrInvalidHops, i)

		// The ciphertext adds a 16-byte tag and must fit enc_len.
		case len(h.PlainText) > math.MaxUint16-16:
			return nil, fmt.Errorf("%w: hop %d data is %d bytes",
				ErrInvalidHops, i, len(h.PlainText))
		}
	}

	info, err := sphinx.BuildBlindedPath(sessionKey, hops)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidHops, err)
	}
	return NewBlindedPath(info.Path), nil
}

// encodeHopData encodes each hop's encrypted_data_tlv, padded to one length
// when pad is set.
func encodeHopData(hops []Hop, pad bool) ([][]byte, error) {
	data := make([]record.BlindedRouteData, len(hops))
	out := make([][]byte, len(hops))
	maxLen := 0
	for i, h := range hops {
		data[i] = *h.Data
		if pad {
			data[i].Padding = record.BlindedRouteData{}.Padding
		}
		b, err := record.EncodeBlindedRouteData(&data[i])
		if err != nil {
			return nil, fmt.Errorf("%w: hop %d: %w", ErrInvalidHops,
				i, err)
		}
		out[i] = b
		maxLen = max(maxLen, len(b))
	}
	if !pad {
		return out, nil
	}

	// Every hop gets a padding record, the longest an empty one, so all
	// hops look alike. A gap of 255 or 256 bytes cannot be filled with a
	// single record (its length prefix grows from 1 to 3 bytes), so the
	// target grows until every gap can.
	padding := make([]int, len(hops))
	for target := maxLen + 2; ; target++ {
		if target > math.MaxUint16-16 {
			return nil, fmt.Errorf("%w: cannot pad hop data to one "+
				"length", ErrInvalidHops)
		}
		ok := true
		for i, b := range out {
			n, fits := paddingFor(target - len(b))
			if !fits {
				ok = false
				break
			}
			padding[i] = n
		}
		if !ok {
			continue
		}
		for i := range data {
			data[i].PadBy(padding[i])
			b, err := record.EncodeBlindedRouteData(&data[i])
			if err != nil {
				return nil, fmt.Errorf("%w: hop %d: %w",
					ErrInvalidHops, i, err)
			}
			if len(b) != target {
				return nil, fmt.Errorf("%w: hop %d padded to "+
					"%d bytes, not %d", ErrInvalidHops, i,
					len(b), target)
			}
			out[i] = b
		}
		return out, nil
	}
}

// paddingFor returns how many padding bytes make a type-1 record that is
// exactly gap bytes long: a 1-byte type, a BigSize length and the bytes.
func paddingFor(gap int) (int, bool) {
	switch {
	case gap >= 2 && gap-2 < 0xfd:
		return gap - 2, true

	case gap-4 >= 0xfd && gap-4 <= math.MaxUint16:
		return gap - 4, true

	default:
		return 0, false
	}
}

// Equal reports whether two valid paths have the same wire form.
func (p *BlindedPath) Equal(o *BlindedPath) bool {
	pb, errP := p.Bytes()
	ob, errO := o.Bytes()
	return errP == nil && errO == nil && bytes.Equal(pb, ob)
}

// ForwardHop is a hop at from whose encrypted data names the next node,
// to, by key: how lnd is told to hand a message on to holdd's peer link,
// or a mailbox LSP to its holdd.
func ForwardHop(from, to *btcec.PublicKey) Hop {
	return Hop{
		NodeID: from,
		Data: record.NewNonFinalBlindedRouteDataOnionMessage(
			fn.NewLeft[*btcec.PublicKey, lnwire.ShortChannelID](to),
			nil, nil),
	}
}

// HopsToHoldd are the hops of a path that ends at holdd behind its lnd:
// [lnd: next = holdd] -> [holdd: pathID]. With a nil holddKey lnd is the
// final hop, [lnd: pathID]: the custom-message transport, where holdd
// reads lnd's own final hop.
func HopsToHoldd(lndKey, holddKey *btcec.PublicKey, pathID []byte) []Hop {
	if holddKey == nil {
		return []Hop{{
			NodeID: lndKey,
			Data:   record.NewFinalHopBlindedRouteData(nil, pathID),
		}}
	}
	return []Hop{ForwardHop(lndKey, holddKey), {
		NodeID: holddKey,
		Data:   record.NewFinalHopBlindedRouteData(nil, pathID),
	}}
}
