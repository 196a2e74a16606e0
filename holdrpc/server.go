package holdrpc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Engine is the part of the hold engine the server uses.
type Engine interface {
	Stats() plugin.Stats
	Height() int32
	Release(ctx context.Context, key plugin.CircuitKey, hash lntypes.Hash,
		source string) (plugin.ReleaseOutcome, error)
	Fail(ctx context.Context, key plugin.CircuitKey) error
	Policy() plugin.Policy
	SetPolicy(p plugin.Policy) error
}

// Events is the engine's event feed.
type Events interface {
	Subscribe(buffer int) (<-chan plugin.Event, func())
}

// PolicyStore persists a policy set through the API.
type PolicyStore interface {
	SavePolicy(ctx context.Context, p *plugin.Policy) error
}

// Store is what the server reads from the store.
type Store interface {
	ListHTLCs(ctx context.Context, f plugin.ListFilter) ([]plugin.HeldHTLC,
		error)
	GetHeld(ctx context.Context, key plugin.CircuitKey) (plugin.HeldHTLC,
		error)
}

// Paths returns the release paths of a held HTLC.
type Paths interface {
	Delivery(rec plugin.HeldHTLC) (*release.PathDelivery, error)
}

// Aliases names nodes.
type Aliases interface {
	Alias(ctx context.Context, node route.Vertex) string
}

// Status reports holdd's connections.
type Status interface {
	InterceptorConnected() bool
	PeerLinkState() string
	ReleaseCounts() map[string]uint64
}

// ServerConfig wires the server.
type ServerConfig struct {
	Version    string
	Network    string
	Transport  string
	LndVersion string
	LndPubKey  []byte
	NodeKey    []byte

	Engine   Engine
	Store    Store
	Paths    Paths
	Status   Status
	Events   Events
	Policies PolicyStore
	Aliases  Aliases

	// Roles lists the roles holdd runs. Engine, Paths, Events and
	// Policies are nil unless it runs the lsp role; Receiver and
	// ReceiveEvents are nil unless it runs the recipient role.
	Roles         []string
	Receiver      Receiver
	ReceiveEvents ReceiveEvents

	// Mailbox is nil unless holdd runs the mailbox role.
	Mailbox Mailbox

	// InvoiceServer is nil unless holdd runs the server role.
	InvoiceServer InvoiceServer
	// Offers is nil unless the recipient role has recipient.server.
	Offers Offers

	// ConfigPolicy is the policy from holdd.conf, restored by a reset.
	ConfigPolicy plugin.Policy

	Logger logrus.FieldLogger
}

// Server implements HoldServer.
type Server struct {
	UnimplementedHoldServer
	cfg ServerConfig
}

// NewServer creates a Server.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	return &Server{cfg: cfg}
}

// GetInfo reports holdd's state.
func (s *Server) GetInfo(_ context.Context, _ *GetInfoRequest) (
	*GetInfoResponse, error) {

	var (
		stats  plugin.Stats
		height int32
	)
	if s.cfg.Engine != nil {
		stats = s.cfg.Engine.Stats()
		height = s.cfg.Engine.Height()
	}
	releases := stats.Releases
	if releases == nil {
		releases = make(map[string]uint64)
	}
	for k, v := range s.cfg.Status.ReleaseCounts() {
		releases[k] += v
	}
	var (
		answered  map[string]uint64
		mbLSP     []byte
		mbReady   bool
		mailStats *MailboxStats
	)
	if s.cfg.Receiver != nil {
		answered = s.cfg.Receiver.Counts()
		mb, wanted := s.cfg.Receiver.MailboxState()
		if mb != nil {
			mbLSP = mb.LSPKey.SerializeCompressed()
		}
		mbReady = wanted && mb != nil
	}
	if s.cfg.Mailbox != nil {
		st := s.cfg.Mailbox.Stats()
		mailStats = marshalMailboxStats(&st)
	}
	return &GetInfoResponse{
		MailboxLsp:           mbLSP,
		MailboxRegistered:    mbReady,
		Mailbox:              mailStats,
		Roles:                s.cfg.Roles,
		HeldHtlcAvailable:    answered,
		Version:              s.cfg.Version,
		Network:              s.cfg.Network,
		Transport:            s.cfg.Transport,
		LndVersion:           s.cfg.LndVersion,
		LndPubkey:            s.cfg.LndPubKey,
		NodeKey:              s.cfg.NodeKey,
		InterceptorConnected: s.cfg.Status.InterceptorConnected(),
		PeerLinkState:        s.cfg.Status.PeerLinkState(),
		HeldCount:            uint32(stats.HeldCount),
		HeldMsat:             stats.HeldMsat,
		BlockHeight:          uint32(height),
		Releases:             releases,
		Decisions:            stats.Decisions,
	}, nil
}

// ListHeld lists HTLCs by state and peer.
func (s *Server) ListHeld(ctx context.Context, req *ListHeldRequest) (
	*ListHeldResponse, error) {

	var f plugin.ListFilter
	for _, st := range req.States {
		state, err := parseState(st)
		if err != nil {
			return nil, err
		}
		f.States = append(f.States, state)
	}
	if len(req.Peer) > 0 {
		if len(req.Peer) != 33 {
			return nil, status.Errorf(codes.InvalidArgument,
				"peer must be a 33-byte compressed key, got %d "+
					"bytes", len(req.Peer))
		}
		peer := route.Vertex(req.Peer)
		f.Peer = &peer
	}
	recs, err := s.cfg.Store.ListHTLCs(ctx, f)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list: %v", err)
	}
	resp := &ListHeldResponse{Htlcs: make([]*HeldHtlc, 0, len(recs))}
	for _, rec := range recs {
		resp.Htlcs = append(resp.Htlcs, s.describe(ctx, rec))
	}
	return resp, nil
}

// GetHeld returns one HTLC.
func (s *Server) GetHeld(ctx context.Context, req *GetHeldRequest) (
	*HeldHtlc, error) {

	rec, err := s.lookup(ctx, req.Incoming)
	if err != nil {
		return nil, err
	}
	return s.describe(ctx, rec), nil
}

// describe adds what only the running daemon knows to a stored record.
func (s *Server) describe(ctx context.Context, rec plugin.HeldHTLC) *HeldHtlc {
	h := marshalHTLC(rec)
	// Without the lsp role there is no engine to ask for the height; the
	// records a previous lsp run stored are still served, with
	// current_height 0.
	if s.cfg.Engine != nil {
		h.CurrentHeight = uint32(s.cfg.Engine.Height())
	}
	if s.cfg.Aliases != nil && rec.IncomingPeer != (route.Vertex{}) {
		h.IncomingPeerAlias = s.cfg.Aliases.Alias(ctx, rec.IncomingPeer)
	}
	return h
}

// GetReleasePaths returns the release paths of a held HTLC.
func (s *Server) GetReleasePaths(ctx context.Context,
	req *GetReleasePathsRequest) (*GetReleasePathsResponse, error) {

	if s.cfg.Paths == nil {
		return nil, errRoleOff("lsp")
	}
	rec, err := s.lookupActive(ctx, req.Incoming)
	if err != nil {
		return nil, err
	}
	pd, err := s.cfg.Paths.Delivery(rec)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "mint paths: %v", err)
	}
	msg, err := pd.Encode()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode: %v", err)
	}
	resp := &GetReleasePathsResponse{
		ExpiresAtUnix:   pd.ExpiresAt.Unix(),
		DeliveryMsgType: release.PathDeliveryMsgType,
		DeliveryMsg:     msg,
	}
	for _, p := range pd.Paths {
		b, err := p.Bytes()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode path: "+
				"%v", err)
		}
		resp.Paths = append(resp.Paths, b)
	}
	return resp, nil
}

// lookupActive returns an HTLC that holdd still holds.
func (s *Server) lookupActive(ctx context.Context, key *CircuitKey) (
	plugin.HeldHTLC, error) {

	rec, err := s.lookup(ctx, key)
	if err != nil {
		return rec, err
	}
	if !rec.State.Active() {
		return rec, status.Errorf(codes.FailedPrecondition,
			"HTLC %v is %s, not held", rec.Key, rec.State)
	}
	return rec, nil
}

func (s *Server) lookup(ctx context.Context, key *CircuitKey) (
	plugin.HeldHTLC, error) {

	if key == nil {
		return plugin.HeldHTLC{}, status.Error(codes.InvalidArgument,
			"incoming circuit key is required")
	}
	ck := plugin.CircuitKey{ChanID: key.ChanId, HtlcID: key.HtlcId}
	rec, err := s.cfg.Store.GetHeld(ctx, ck)
	switch {
	case errors.Is(err, plugin.ErrUnknownHTLC):
		return rec, status.Errorf(codes.NotFound, "no HTLC %v", ck)
	case err != nil:
		return rec, status.Errorf(codes.Internal, "lookup %v: %v", ck,
			err)
	}
	return rec, nil
}

func parseState(s string) (plugin.HoldState, error) {
	st := plugin.HoldState(s)
	switch st {
	case plugin.StateHeld, plugin.StateReleased, plugin.StateResumed,
		plugin.StateFailed, plugin.StateGone:
		return st, nil
	}
	return "", status.Error(codes.InvalidArgument,
		fmt.Sprintf("unknown state %q", s))
}

func unixNano(t interface{ UnixNano() int64 }, zero bool) int64 {
	if zero {
		return 0
	}
	return t.UnixNano()
}

func marshalHTLC(rec plugin.HeldHTLC) *HeldHtlc {
	h := &HeldHtlc{
		Incoming: &CircuitKey{
			ChanId: rec.Key.ChanID,
			HtlcId: rec.Key.HtlcID,
		},
		PaymentHash:      rec.PaymentHash[:],
		State:            string(rec.State),
		IncomingAmtMsat:  rec.IncomingAmtMsat,
		OutgoingAmtMsat:  rec.OutgoingAmtMsat,
		IncomingExpiry:   rec.IncomingExpiry,
		OutgoingExpiry:   rec.OutgoingExpiry,
		OutgoingChanId:   rec.OutgoingChanID,
		AutoFailHeight:   rec.AutoFailHeight,
		FailbackHeight:   rec.FailbackHeight,
		HeldAtUnixNs:     unixNano(rec.HeldAt, rec.HeldAt.IsZero()),
		ReleasedAtUnixNs: unixNano(rec.ReleasedAt, rec.ReleasedAt.IsZero()),
		ResolvedAtUnixNs: unixNano(rec.ResolvedAt, rec.ResolvedAt.IsZero()),
		FailReason:       rec.FailReason,
		ReleaseSource:    rec.ReleaseSource,
	}
	if rec.IncomingPeer != (route.Vertex{}) {
		h.IncomingPeer = rec.IncomingPeer[:]
	}
	return h
}

// ReleaseHeld releases a held HTLC by hand.
func (s *Server) ReleaseHeld(ctx context.Context, req *ReleaseHeldRequest) (
	*ReleaseHeldResponse, error) {

	if s.cfg.Engine == nil {
		return nil, errRoleOff("lsp")
	}
	rec, err := s.lookupActive(ctx, req.Incoming)
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.Infof("Manual release of %v requested: %q", rec.Key,
		req.Reason)
	out, err := s.cfg.Engine.Release(ctx, rec.Key, rec.PaymentHash,
		"manual")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "release: %v", err)
	}
	rec, err = s.cfg.Store.GetHeld(ctx, rec.Key)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "lookup: %v", err)
	}
	return &ReleaseHeldResponse{Outcome: string(out),
		Htlc: marshalHTLC(rec)}, nil
}

// FailHeld fails a held HTLC back by hand.
func (s *Server) FailHeld(ctx context.Context, req *FailHeldRequest) (
	*FailHeldResponse, error) {

	if s.cfg.Engine == nil {
		return nil, errRoleOff("lsp")
	}
	rec, err := s.lookupActive(ctx, req.Incoming)
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.Infof("Manual fail of %v requested: %q", rec.Key,
		req.Reason)
	err = s.cfg.Engine.Fail(ctx, rec.Key)
	switch {
	case errors.Is(err, plugin.ErrUnknownHTLC),
		errors.Is(err, plugin.ErrNotHeld):
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "fail: %v", err)
	}
	rec, err = s.cfg.Store.GetHeld(ctx, rec.Key)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "lookup: %v", err)
	}
	return &FailHeldResponse{Htlc: marshalHTLC(rec)}, nil
}

// GetPolicy returns the policy in force.
func (s *Server) GetPolicy(context.Context, *GetPolicyRequest) (*Policy,
	error) {

	if s.cfg.Engine == nil {
		return nil, errRoleOff("lsp")
	}
	return MarshalPolicy(s.cfg.Engine.Policy()), nil
}

// SetPolicy validates, persists, then applies a policy.
func (s *Server) SetPolicy(ctx context.Context, req *SetPolicyRequest) (
	*Policy, error) {

	if s.cfg.Engine == nil {
		return nil, errRoleOff("lsp")
	}
	var p plugin.Policy
	switch {
	case req.Reset_:
		p = s.cfg.ConfigPolicy
	case req.Policy == nil:
		return nil, status.Error(codes.InvalidArgument,
			"policy or reset is required")
	default:
		if err := checkPolicySeconds(req.Policy); err != nil {
			return nil, err
		}
		p = UnmarshalPolicy(req.Policy)
	}
	if err := p.Validate(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}

	var persisted *plugin.Policy
	if !req.Reset_ {
		persisted = &p
	}
	if err := s.cfg.Policies.SavePolicy(ctx, persisted); err != nil {
		return nil, status.Errorf(codes.Internal, "persist policy: %v",
			err)
	}
	if err := s.cfg.Engine.SetPolicy(p); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	s.cfg.Logger.Infof("Policy set through the API (reset=%v): %+v",
		req.Reset_, p)
	return MarshalPolicy(p), nil
}

// SubscribeHoldEvents streams hold events until the client goes away.
func (s *Server) SubscribeHoldEvents(_ *SubscribeHoldEventsRequest,
	stream Hold_SubscribeHoldEventsServer) error {

	if s.cfg.Events == nil {
		return errRoleOff("lsp")
	}
	return streamFeed(stream.Context(), s.cfg.Events.Subscribe,
		stream.Send, func(ev plugin.Event) *HoldEvent {
			return &HoldEvent{
				Kind:            string(ev.Kind),
				Htlc:            marshalHTLC(ev.HTLC),
				TimestampUnixNs: ev.HTLC.UpdatedAt.UnixNano(),
			}
		})
}

// streamFeed sends a feed's events, converted, until the feed closes or
// the client goes away.
func streamFeed[E, M any](ctx context.Context,
	subscribe func(buffer int) (<-chan E, func()), send func(M) error,
	convert func(E) M) error {

	events, cancel := subscribe(256)
	defer cancel()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if err := send(convert(ev)); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// maxDurationSeconds is the most seconds a time.Duration holds, about 292
// years; more would wrap around, possibly to a small positive duration.
const maxDurationSeconds = int64(math.MaxInt64 / int64(time.Second))

// checkSeconds rejects a count of seconds that is negative or does not fit
// a time.Duration.
func checkSeconds(field string, v int64) error {
	if v < 0 || v > maxDurationSeconds {
		return status.Errorf(codes.InvalidArgument, "%s %d is out of "+
			"range: must be between 0 and %d", field, v,
			maxDurationSeconds)
	}
	return nil
}

// checkPolicySeconds rejects a policy whose second counts do not fit a
// time.Duration, before any of it is converted.
func checkPolicySeconds(p *Policy) error {
	if err := checkSeconds("max_hold_time_seconds",
		p.MaxHoldTimeSeconds); err != nil {

		return err
	}
	return checkSeconds("pending_release_ttl_seconds",
		p.PendingReleaseTtlSeconds)
}

// MarshalPolicy converts an engine policy to its RPC form.
func MarshalPolicy(p plugin.Policy) *Policy {
	return &Policy{
		HoldTypes:                append([]uint64(nil), p.HoldTypes...),
		FailbackMargin:           p.FailbackMargin,
		MaxHoldTimeSeconds:       int64(p.MaxHoldTime / time.Second),
		MaxHeldPerPeer:           uint32(p.MaxHeldPerPeer),
		MaxHeldMsatPerPeer:       p.MaxHeldMsatPerPeer,
		MaxHeldTotal:             uint32(p.MaxHeldTotal),
		MaxHeldMsatTotal:         p.MaxHeldMsatTotal,
		PendingReleaseTtlSeconds: int64(p.PendingReleaseTTL / time.Second),
	}
}

// UnmarshalPolicy converts an RPC policy to the engine's form.
func UnmarshalPolicy(p *Policy) plugin.Policy {
	return plugin.Policy{
		HoldTypes:          append([]uint64(nil), p.HoldTypes...),
		FailbackMargin:     p.FailbackMargin,
		MaxHoldTime:        time.Duration(p.MaxHoldTimeSeconds) * time.Second,
		MaxHeldPerPeer:     int(p.MaxHeldPerPeer),
		MaxHeldMsatPerPeer: p.MaxHeldMsatPerPeer,
		MaxHeldTotal:       int(p.MaxHeldTotal),
		MaxHeldMsatTotal:   p.MaxHeldMsatTotal,
		PendingReleaseTTL: time.Duration(p.PendingReleaseTtlSeconds) *
			time.Second,
	}
}
