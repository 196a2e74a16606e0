package holdrpc

import (
	"context"

	"github.com/holdd/holdd/asyncoffer"
	"github.com/holdd/holdd/bolt12"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Offers is the async offer client's side of the API.
type Offers interface {
	Offers(ctx context.Context) ([]asyncoffer.Slot, error)
	Counts() map[string]uint64
}

// GetOffer returns the async offers and their state.
func (s *Server) GetOffer(ctx context.Context,
	_ *GetOfferRequest) (*GetOfferResponse, error) {

	if s.cfg.Offers == nil {
		return nil, status.Error(codes.FailedPrecondition, "no async "+
			"offers: run the recipient role with recipient.server")
	}
	slots, err := s.cfg.Offers.Offers(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "offers: %v", err)
	}
	resp := &GetOfferResponse{Counts: s.cfg.Offers.Counts()}
	for _, sl := range slots {
		o := &AsyncOffer{
			Slot:  uint32(sl.Slot),
			Phase: string(sl.Phase),
			Live:  sl.Live,
		}
		if !sl.InvoiceExpiresAt.IsZero() {
			o.InvoiceExpiresAtUnix = sl.InvoiceExpiresAt.Unix()
		}
		if !sl.ServedAt.IsZero() {
			o.ServedAtUnix = sl.ServedAt.Unix()
		}
		if !sl.PathsExpiresAt.IsZero() {
			o.OfferExpiresAtUnix = sl.PathsExpiresAt.Unix()
		}
		if sl.Offer != nil {
			offer, err := bolt12.DecodeOffer(sl.Offer)
			if err != nil {
				return nil, status.Errorf(codes.Internal,
					"stored offer of slot %d: %v", sl.Slot,
					err)
			}
			o.Offer = offer.String()
		}
		resp.Offers = append(resp.Offers, o)
	}
	return resp, nil
}
