package holdrpc

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/holdd/holdd/invoiceserver"
	"github.com/holdd/holdd/release/onionmsg"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// InvoiceServer is the server role's side of the API; invoiceserver's
// Server implements it.
type InvoiceServer interface {
	AddRecipient(ctx context.Context, id []byte, ttl time.Duration,
		n int) (invoiceserver.Recipient, []*onionmsg.BlindedPath, error)
	RemoveRecipient(ctx context.Context, id []byte) error
	ListRecipients(ctx context.Context) ([]invoiceserver.Recipient, error)
	ListInvoiceSlots(ctx context.Context) ([]invoiceserver.InvoiceSlot,
		error)
}

// maxExpirySeconds keeps an expiry's time.Duration from overflowing.
const maxExpirySeconds = uint64(100 * 365 * 24 * 60 * 60)

func (s *Server) invoiceServer() (InvoiceServer, error) {
	if s.cfg.InvoiceServer == nil {
		return nil, errRoleOff("server")
	}
	return s.cfg.InvoiceServer, nil
}

// AddAsyncRecipient registers (or renews) an async recipient and returns
// its registration paths.
func (s *Server) AddAsyncRecipient(ctx context.Context,
	req *AddAsyncRecipientRequest) (*AddAsyncRecipientResponse, error) {

	srv, err := s.invoiceServer()
	if err != nil {
		return nil, err
	}
	if req.ExpirySeconds > maxExpirySeconds {
		return nil, status.Errorf(codes.InvalidArgument, "expiry of "+
			"%d seconds is over %d", req.ExpirySeconds,
			maxExpirySeconds)
	}
	n := int(req.PathCount)
	if n == 0 {
		n = 1
	}
	r, paths, err := srv.AddRecipient(ctx, req.Id,
		time.Duration(req.ExpirySeconds)*time.Second, n)
	switch {
	case errors.Is(err, invoiceserver.ErrInvalidRecipientID),
		errors.Is(err, invoiceserver.ErrInvalidRequest):

		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, invoiceserver.ErrTooManyRecipients):
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Internal, "add recipient: %v",
			err)
	}
	resp := &AddAsyncRecipientResponse{Recipient: marshalAsyncRecipient(r,
		nil)}
	for _, p := range paths {
		b, err := p.Bytes()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode path: "+
				"%v", err)
		}
		resp.Paths = append(resp.Paths, b)
	}
	s.cfg.Logger.Infof("Async recipient %x registered with %d path(s), "+
		"expiring %v", r.ID, len(paths), r.ExpiresAt)
	return resp, nil
}

// RemoveAsyncRecipient removes a recipient and its static invoices.
func (s *Server) RemoveAsyncRecipient(ctx context.Context,
	req *RemoveAsyncRecipientRequest) (*RemoveAsyncRecipientResponse,
	error) {

	srv, err := s.invoiceServer()
	if err != nil {
		return nil, err
	}
	err = srv.RemoveRecipient(ctx, req.Id)
	switch {
	case errors.Is(err, invoiceserver.ErrUnknownRecipient):
		return nil, status.Errorf(codes.NotFound, "no async recipient "+
			"%x", req.Id)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "remove recipient: "+
			"%v", err)
	}
	s.cfg.Logger.Infof("Async recipient %x removed", req.Id)
	return &RemoveAsyncRecipientResponse{}, nil
}

// ListAsyncRecipients lists the recipients with their stored invoices.
func (s *Server) ListAsyncRecipients(ctx context.Context,
	_ *ListAsyncRecipientsRequest) (*ListAsyncRecipientsResponse, error) {

	srv, err := s.invoiceServer()
	if err != nil {
		return nil, err
	}
	recipients, err := srv.ListRecipients(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list recipients: %v",
			err)
	}
	slots, err := srv.ListInvoiceSlots(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list invoices: %v",
			err)
	}
	// Both lists are ordered by recipient id.
	resp := &ListAsyncRecipientsResponse{}
	for _, r := range recipients {
		for len(slots) > 0 && bytes.Compare(slots[0].RecipientID,
			r.ID) < 0 {

			slots = slots[1:]
		}
		var mine []invoiceserver.InvoiceSlot
		for len(slots) > 0 && bytes.Equal(slots[0].RecipientID, r.ID) {
			mine = append(mine, slots[0])
			slots = slots[1:]
		}
		resp.Recipients = append(resp.Recipients,
			marshalAsyncRecipient(r, mine))
	}
	return resp, nil
}

func marshalAsyncRecipient(r invoiceserver.Recipient,
	slots []invoiceserver.InvoiceSlot) *AsyncRecipient {

	out := &AsyncRecipient{
		Id:            r.ID,
		CreatedAtUnix: r.CreatedAt.Unix(),
		ExpiresAtUnix: unixOrZero(r.ExpiresAt),
	}
	for _, sl := range slots {
		out.Invoices = append(out.Invoices, &StaticInvoiceSlot{
			Slot:          uint32(sl.Slot),
			OfferId:       append([]byte(nil), sl.OfferID[:]...),
			Size:          uint32(sl.Size),
			ExpiresAtUnix: sl.ExpiresAt.Unix(),
			StoredAtUnix:  sl.StoredAt.Unix(),
		})
	}
	return out
}
