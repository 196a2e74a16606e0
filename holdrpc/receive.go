package holdrpc

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/holdd/holdd/recipient"
	"github.com/holdd/holdd/release/onionmsg"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Receiver is the recipient role's side of the API.
type Receiver interface {
	AddPaths(ctx context.Context, n int,
		ttl time.Duration) ([]recipient.ReceivePath, error)
	ListPaths(ctx context.Context, all bool) ([]recipient.ReceivePath, error)
	RevokePath(ctx context.Context, id [8]byte) error
	Counts() map[string]uint64
	MailboxState() (*recipient.Mailbox, bool)
}

// ReceiveEvents is the recipient role's event feed.
type ReceiveEvents interface {
	Subscribe(buffer int) (<-chan recipient.Event, func())
}

// errRoleOff is the error for a method of a role holdd does not run.
func errRoleOff(role string) error {
	return status.Errorf(codes.FailedPrecondition, "holdd does not run "+
		"the %s role (set role=%s in holdd.conf)", role, role)
}

func (s *Server) receiver() (Receiver, error) {
	if s.cfg.Receiver == nil {
		return nil, errRoleOff("recipient")
	}
	return s.cfg.Receiver, nil
}

// AddReceivePaths mints receive paths.
func (s *Server) AddReceivePaths(ctx context.Context,
	req *AddReceivePathsRequest) (*ReceivePathsResponse, error) {

	r, err := s.receiver()
	if err != nil {
		return nil, err
	}
	if err := checkSeconds("expiry_seconds", req.ExpirySeconds); err != nil {
		return nil, err
	}
	paths, err := r.AddPaths(ctx, int(req.Count),
		time.Duration(req.ExpirySeconds)*time.Second)
	switch {
	case errors.Is(err, recipient.ErrInvalidRequest):
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	case errors.Is(err, recipient.ErrMailboxPending):
		return nil, status.Errorf(codes.Unavailable, "%v: the LSP's "+
			"mailbox has not accepted this node yet (see the log); "+
			"paths minted now would not reach it while offline", err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "mint paths: %v", err)
	}
	return marshalReceivePaths(paths)
}

// ListReceivePaths lists receive paths.
func (s *Server) ListReceivePaths(ctx context.Context,
	req *ListReceivePathsRequest) (*ReceivePathsResponse, error) {

	r, err := s.receiver()
	if err != nil {
		return nil, err
	}
	paths, err := r.ListPaths(ctx, req.All)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list paths: %v", err)
	}
	return marshalReceivePaths(paths)
}

// RevokeReceivePath revokes a receive path.
func (s *Server) RevokeReceivePath(ctx context.Context,
	req *RevokeReceivePathRequest) (*ReceivePath, error) {

	r, err := s.receiver()
	if err != nil {
		return nil, err
	}
	var id [8]byte
	if len(req.Id) != len(id) {
		return nil, status.Errorf(codes.InvalidArgument, "id must be "+
			"%d bytes, got %d", len(id), len(req.Id))
	}
	copy(id[:], req.Id)
	err = r.RevokePath(ctx, id)
	switch {
	case errors.Is(err, recipient.ErrUnknownPath):
		return nil, status.Errorf(codes.NotFound, "no receive path %x",
			id)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "revoke: %v", err)
	}
	all, err := r.ListPaths(ctx, true)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list paths: %v", err)
	}
	for _, p := range all {
		if p.ID == id {
			return marshalReceivePath(p)
		}
	}
	return nil, status.Errorf(codes.Internal, "revoked path %x vanished",
		id)
}

// SubscribeReceiveEvents streams the recipient role's events.
func (s *Server) SubscribeReceiveEvents(_ *SubscribeReceiveEventsRequest,
	stream Hold_SubscribeReceiveEventsServer) error {

	if s.cfg.ReceiveEvents == nil {
		return errRoleOff("recipient")
	}
	return streamFeed(stream.Context(), s.cfg.ReceiveEvents.Subscribe,
		stream.Send, func(ev recipient.Event) *ReceiveEvent {
			out := &ReceiveEvent{
				Kind:            "held_htlc_available",
				Outcome:         ev.Outcome,
				TimestampUnixNs: ev.At.UnixNano(),
			}
			if ev.PathID != ([8]byte{}) {
				out.PathId = ev.PathID[:]
			}
			if ev.Outcome == recipient.OutcomeReplied {
				out.ReplyPeer = ev.Route.Peer[:]
				out.ViaLsp = ev.Route.Via
			}
			if ev.Err != nil {
				out.Error = ev.Err.Error()
			}
			return out
		})
}

func marshalReceivePaths(paths []recipient.ReceivePath) (*ReceivePathsResponse,
	error) {

	resp := &ReceivePathsResponse{}
	for _, p := range paths {
		rp, err := marshalReceivePath(p)
		if err != nil {
			return nil, err
		}
		resp.Paths = append(resp.Paths, rp)
	}
	return resp, nil
}

func marshalReceivePath(p recipient.ReceivePath) (*ReceivePath, error) {
	path, err := onionmsg.DecodeBlindedPath(bytes.NewReader(p.Path))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stored path %x: %v",
			p.ID, err)
	}
	out := &ReceivePath{
		Id:              append([]byte(nil), p.ID[:]...),
		Path:            p.Path,
		Hops:            uint32(len(path.Hops)),
		CreatedAtUnix:   p.CreatedAt.Unix(),
		ExpiresAtUnix:   p.ExpiresAt.Unix(),
		MailboxLsp:      p.MailboxLSP,
		RevokedAtUnix:   unixOrZero(p.RevokedAt),
		Replies:         p.Replies,
		LastReplyAtUnix: unixOrZero(p.LastReplyAt),
	}
	if path.IntroNode != nil {
		out.IntroductionNode = path.IntroNode.SerializeCompressed()
	}
	return out, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
