package holdrpc

import (
	"context"

	"github.com/holdd/holdd/mailbox"
	"github.com/lightningnetwork/lnd/routing/route"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Mailbox is the mailbox role's side of the API.
type Mailbox interface {
	Stats() mailbox.Stats
	Recipients(ctx context.Context) ([]mailbox.RecipientInfo, error)
	Unregister(ctx context.Context, peer route.Vertex) (bool, error)
}

// ListMailbox lists registered recipients.
func (s *Server) ListMailbox(ctx context.Context,
	_ *ListMailboxRequest) (*ListMailboxResponse, error) {

	if s.cfg.Mailbox == nil {
		return nil, errRoleOff("mailbox")
	}
	recipients, err := s.cfg.Mailbox.Recipients(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list: %v", err)
	}
	stats := s.cfg.Mailbox.Stats()
	resp := &ListMailboxResponse{Stats: marshalMailboxStats(&stats)}
	for _, r := range recipients {
		resp.Recipients = append(resp.Recipients, &MailboxRecipient{
			Peer:             append([]byte(nil), r.Peer[:]...),
			RegisteredAtUnix: r.RegisteredAt.Unix(),
			RefreshedAtUnix:  r.RefreshedAt.Unix(),
			StoredMessages:   r.Messages,
			StoredBytes:      r.Bytes,
			Ready:            r.Online,
		})
	}
	return resp, nil
}

// UnregisterMailbox drops a recipient and its messages.
func (s *Server) UnregisterMailbox(ctx context.Context,
	req *UnregisterMailboxRequest) (*UnregisterMailboxResponse, error) {

	if s.cfg.Mailbox == nil {
		return nil, errRoleOff("mailbox")
	}
	var peer route.Vertex
	if len(req.Peer) != len(peer) {
		return nil, status.Errorf(codes.InvalidArgument, "peer must be "+
			"a %d-byte node key, got %d bytes", len(peer),
			len(req.Peer))
	}
	copy(peer[:], req.Peer)
	was, err := s.cfg.Mailbox.Unregister(ctx, peer)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unregister: %v", err)
	}
	s.cfg.Logger.Infof("Mailbox recipient %v unregistered through the "+
		"API (was registered: %v)", peer, was)
	return &UnregisterMailboxResponse{WasRegistered: was}, nil
}

func marshalMailboxStats(s *mailbox.Stats) *MailboxStats {
	return &MailboxStats{
		StoredMessages:  s.StoredMessages,
		StoredBytes:     s.StoredBytes,
		Recipients:      uint32(s.Recipients),
		ReadyRecipients: uint32(s.OnlineRecipients),
		Stored:          s.Stored,
		ForwardedDirect: s.ForwardedDirect,
		Delivered:       s.Delivered,
		Dropped:         s.Dropped,
		Registrations:   s.Registrations,
	}
}
