package asyncoffer

import (
	"bytes"
	"context"
	"errors"

	"github.com/holdd/holdd/release/onionmsg"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// Handler takes the final-hop messages that reach this holdd over the
// reply paths the client minted: offer_paths (75542),
// static_invoice_persisted (75546) and forwarded invoice_requests (64).
// The intake asks Match before its unknown-even-TLV drop, since all three
// types are even.
type Handler struct {
	c *Client
}

// Handler returns the client's final-hop message handler.
func (c *Client) Handler() *Handler { return &Handler{c: c} }

// Match reports whether pathID is one of the client's reply paths.
func (h *Handler) Match(pathID []byte) bool {
	return IsClientPathID(pathID) &&
		PathKind(pathID[1]) != KindPayment
}

// expectedType is the one message each kind of reply path carries.
var expectedType = map[PathKind]uint64{
	KindOfferPaths:     onionmsg.OfferPathsType,
	KindPersisted:      onionmsg.StaticInvoicePersistedType,
	KindInvoiceRequest: onionmsg.InvoiceRequestType,
}

// Handle verifies the message's path_id and hands it to the client's loop.
// It returns the outcome, which it has counted.
func (h *Handler) Handle(ctx context.Context, p *onionmsg.Peeled) string {
	outcome := h.handle(ctx, p)
	h.c.count(outcome)
	return outcome
}

func (h *Handler) handle(_ context.Context, p *onionmsg.Peeled) string {
	if p == nil || !p.Final || p.Data == nil {
		return OutcomeMalformed
	}
	pathID := p.Data.PathID.ValOpt().UnwrapOr(nil)
	claim, err := h.c.cfg.Auth.Verify(pathID, h.c.cfg.Clock.Now())
	switch {
	case errors.Is(err, ErrForgedPathID):
		return OutcomeForged
	case errors.Is(err, ErrExpiredPathID):
		return OutcomeExpired
	case err != nil:
		return OutcomeMalformed
	}
	want, ok := expectedType[claim.Kind]
	if !ok {
		return OutcomeWrongMessage
	}
	value, ok := p.FinalTLVs[want]
	if !ok {
		return OutcomeWrongMessage
	}
	// BOLT 1: any other even type is one we do not understand.
	for t := range p.FinalTLVs {
		if t%2 == 0 && t != want {
			return OutcomeWrongMessage
		}
	}
	ev := event{
		claim:     claim,
		kind:      want,
		value:     bytes.Clone(value),
		replyPath: p.ReplyPath,
	}
	select {
	case h.c.events <- ev:
	default:
		return OutcomeBusy
	}
	switch want {
	case onionmsg.OfferPathsType:
		return OutcomeOfferPaths
	case onionmsg.StaticInvoicePersistedType:
		return OutcomePersisted
	default:
		return OutcomeInvoiceRequest
	}
}

// HandleFinalHop implements release.FinalHopHandler: the intake hands over
// the final-hop messages whose path_id Match claims.
func (h *Handler) HandleFinalHop(ctx context.Context,
	p *onionmsg.Peeled) string {

	return h.Handle(ctx, p)
}
