package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/plugin"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// protoJSON is lnrpc.ProtoJSONMarshalOpts without the indent: protojson
// deliberately adds random spaces to its indented output, so holdcli
// indents with encoding/json instead and prints the same bytes every time.
var protoJSON = protojson.MarshalOptions{
	EmitUnpopulated: true,
	UseProtoNames:   true,
	UseHexForBytes:  true,
}

const jsonIndent = "    "

// compactProto renders msg as one line of JSON with no optional spaces.
func compactProto(msg proto.Message) ([]byte, error) {
	raw, err := protoJSON.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", msg, err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return nil, fmt.Errorf("compact %T: %w", msg, err)
	}
	return out.Bytes(), nil
}

// printIndented writes compact JSON indented as lncli does, plus a newline.
func printIndented(w io.Writer, compact []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", jsonIndent); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := out.WriteTo(w)
	return err
}

// printProto prints a response the way lncli's printRespJSON does.
func printProto(w io.Writer, msg proto.Message) error {
	compact, err := compactProto(msg)
	if err != nil {
		return err
	}
	return printIndented(w, compact)
}

// printProtoLine prints msg as a single JSON line, for streams.
func printProtoLine(w io.Writer, msg proto.Message) error {
	compact, err := compactProto(msg)
	if err != nil {
		return err
	}
	_, err = w.Write(append(compact, '\n'))
	return err
}

// htlcExtras are the fields listheld derives for operators; the struct
// fixes their order in the output.
type htlcExtras struct {
	// AmountSat is the incoming amount, rounded down to whole satoshis.
	AmountSat uint64 `json:"amount_sat"`

	// Age is how long ago holdd took the HTLC, to the second; empty when
	// the hold time is unknown.
	Age string `json:"age"`

	// BlocksToFailback is failback_height - current_height; null once
	// holdd no longer holds the HTLC or the height is unknown.
	BlocksToFailback *int64 `json:"blocks_to_failback"`

	// PeerAlias repeats incoming_peer_alias under a shorter name.
	PeerAlias string `json:"peer_alias"`
}

func deriveExtras(h *holdrpc.HeldHtlc, now time.Time) htlcExtras {
	x := htlcExtras{
		AmountSat: h.IncomingAmtMsat / 1000,
		PeerAlias: h.IncomingPeerAlias,
	}
	if h.HeldAtUnixNs != 0 {
		age := now.Sub(time.Unix(0, h.HeldAtUnixNs))
		x.Age = age.Truncate(time.Second).String()
	}
	if plugin.HoldState(h.State).Active() && h.CurrentHeight != 0 {
		left := int64(h.FailbackHeight) - int64(h.CurrentHeight)
		x.BlocksToFailback = &left
	}
	return x
}

// decoratedHTLC is an HTLC's proto JSON with the derived fields appended
// to the same object, so scripts see one flat record per HTLC.
func decoratedHTLC(h *holdrpc.HeldHtlc, now time.Time) ([]byte, error) {
	base, err := compactProto(h)
	if err != nil {
		return nil, err
	}
	extras, err := json.Marshal(deriveExtras(h, now))
	if err != nil {
		return nil, err
	}

	// Both are compact JSON objects: splice extras' members in before
	// base's closing brace.
	out := make([]byte, 0, len(base)+len(extras))
	out = append(out, base[:len(base)-1]...)
	if len(base) > 2 {
		out = append(out, ',')
	}
	return append(out, extras[1:]...), nil
}

// printHTLCList prints {"htlcs": [...]} with derived fields on each HTLC.
func printHTLCList(w io.Writer, htlcs []*holdrpc.HeldHtlc,
	now time.Time) error {

	var buf bytes.Buffer
	buf.WriteString(`{"htlcs":[`)
	for i, h := range htlcs {
		if i > 0 {
			buf.WriteByte(',')
		}
		rec, err := decoratedHTLC(h, now)
		if err != nil {
			return err
		}
		buf.Write(rec)
	}
	buf.WriteString(`]}`)
	return printIndented(w, buf.Bytes())
}
