package onionsend

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release/custommsg"
	"github.com/holdd/holdd/release/onionmsg"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrInvalidConfig is wrapped by every error New returns.
	ErrInvalidConfig = errors.New("onionsend: invalid config")

	// ErrNoRoute is returned when lnd is connected neither to the path's
	// introduction node nor to any of the Via LSPs.
	ErrNoRoute = errors.New("onionsend: no connected peer leads to the " +
		"introduction node")

	// ErrIntroIsSelf is returned when the path's introduction node is our
	// own lnd: lnd has no RPC that hands a message to itself, and we do
	// not hold its node key to peel our own hop.
	ErrIntroIsSelf = errors.New("onionsend: the introduction node is our " +
		"own lnd")

	// ErrUnknownChannel is returned when a sciddir introduction node
	// names a channel lnd's graph does not know.
	ErrUnknownChannel = errors.New("onionsend: sciddir channel is not " +
		"in the graph")

	// ErrInvalidMessage is returned for a message SendToPeer cannot
	// hand to lnd.
	ErrInvalidMessage = errors.New("onionsend: invalid onion message")

	// ErrPeerNotConnected is returned when lnd reports that the peer
	// went away before it could take the message.
	ErrPeerNotConnected = errors.New("onionsend: peer not connected")

	// ErrSend wraps any other failure of lnd's send RPC.
	ErrSend = errors.New("onionsend: lnd did not send the message")
)

// Lightning is the part of lnrpc.LightningClient the sender uses.
type Lightning interface {
	ListPeers(ctx context.Context, in *lnrpc.ListPeersRequest,
		opts ...grpc.CallOption) (*lnrpc.ListPeersResponse, error)

	GetChanInfo(ctx context.Context, in *lnrpc.ChanInfoRequest,
		opts ...grpc.CallOption) (*lnrpc.ChannelEdge, error)

	SendOnionMessage(ctx context.Context,
		in *lnrpc.SendOnionMessageRequest,
		opts ...grpc.CallOption) (*lnrpc.SendOnionMessageResponse,
		error)

	SendCustomMessage(ctx context.Context,
		in *lnrpc.SendCustomMessageRequest,
		opts ...grpc.CallOption) (*lnrpc.SendCustomMessageResponse,
		error)
}

// Config configures a Sender.
type Config struct {
	// Lightning is our lnd.
	Lightning Lightning

	// Self is our lnd's node key.
	Self *btcec.PublicKey

	// Native selects lnd's SendOnionMessage (lnd >= 0.21). Without it
	// messages go out as custom message 513, which older lnd only
	// sends with protocol.custom-message=513.
	Native bool

	// Via are LSPs, in order of preference, to route through when the
	// introduction node is not a connected peer.
	Via []*btcec.PublicKey

	// NewSessionKey returns the onion's session key and the blinding
	// key of a hop we prepend. Tests set it; default
	// btcec.NewPrivateKey.
	NewSessionKey func() (*btcec.PrivateKey, error)
}

// Sender sends onion messages through lnd. It keeps no state between
// sends and is safe for concurrent use.
type Sender struct {
	cfg Config
}

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	switch {
	case cfg.Lightning == nil:
		return nil, fmt.Errorf("%w: no lnd client", ErrInvalidConfig)

	case cfg.Self == nil:
		return nil, fmt.Errorf("%w: no node key", ErrInvalidConfig)
	}
	for i, v := range cfg.Via {
		if v == nil {
			return nil, fmt.Errorf("%w: via %d is nil",
				ErrInvalidConfig, i)
		}
	}
	cfg.Via = append([]*btcec.PublicKey(nil), cfg.Via...)
	if cfg.NewSessionKey == nil {
		cfg.NewSessionKey = btcec.NewPrivateKey
	}
	return &Sender{cfg: cfg}, nil
}

// Route says how a message left our lnd.
type Route struct {
	// Peer is the peer lnd handed the message to.
	Peer route.Vertex

	// Intro is the path's introduction node.
	Intro route.Vertex

	// Via is set when Peer is an LSP in front of Intro, reached through
	// a hop we prepended.
	Via bool
}

// Send builds an onion message along path that carries replyPath (may be
// nil) and finalTLVs (types >= 64, e.g. {72: {0x00}}) to its final hop, and
// hands it to the introduction node, or to a Via LSP in front of it. It
// returns how the message went out; lnd reports no delivery beyond the
// first peer.
func (s *Sender) Send(ctx context.Context, path,
	replyPath *onionmsg.BlindedPath,
	finalTLVs map[uint64][]byte) (Route, error) {

	var route Route
	intro, err := s.ResolveIntro(ctx, path)
	if err != nil {
		return route, err
	}
	copy(route.Intro[:], intro.SerializeCompressed())
	if intro.IsEqual(s.cfg.Self) {
		return route, fmt.Errorf("%w: %v", ErrIntroIsSelf, route.Intro)
	}

	peers, err := s.connectedPeers(ctx)
	if err != nil {
		return route, err
	}

	sendPath := path
	if _, ok := peers[route.Intro]; ok {
		route.Peer = route.Intro
	} else {
		lsp := s.connectedVia(peers)
		if lsp == nil {
			return route, fmt.Errorf("%w: %v is not a peer and "+
				"neither is any of %d via nodes", ErrNoRoute,
				route.Intro, len(s.cfg.Via))
		}
		sendPath, err = s.prependHop(lsp, intro, path)
		if err != nil {
			return route, err
		}
		copy(route.Peer[:], lsp.SerializeCompressed())
		route.Via = true
	}

	sessionKey, err := s.cfg.NewSessionKey()
	if err != nil {
		return route, fmt.Errorf("onion session key: %w", err)
	}
	msg, err := onionmsg.BuildOnionMessage(
		sessionKey, sendPath, replyPath, finalTLVs,
	)
	if err != nil {
		return route, err
	}
	return route, s.SendToPeer(ctx, route.Peer, msg)
}

// connectedVia returns the first Via LSP lnd is connected to.
func (s *Sender) connectedVia(peers map[route.Vertex]struct{}) *btcec.PublicKey {
	for _, v := range s.cfg.Via {
		if _, ok := peers[route.NewVertex(v)]; ok && !v.IsEqual(s.cfg.Self) {
			return v
		}
	}
	return nil
}

// prependHop returns path with one hop in front, at lsp, that we blind
// ourselves: its encrypted data sends the message on to intro and hands
// intro the path's own first_path_key (next_path_key_override), so the
// rest of the path peels exactly as its builder meant.
func (s *Sender) prependHop(lsp, intro *btcec.PublicKey,
	path *onionmsg.BlindedPath) (*onionmsg.BlindedPath, error) {

	if len(path.Hops) >= onionmsg.MaxPathHops {
		return nil, fmt.Errorf("%w: %d hops leave no room for a via "+
			"hop", onionmsg.ErrInvalidPath, len(path.Hops))
	}
	key, err := s.cfg.NewSessionKey()
	if err != nil {
		return nil, fmt.Errorf("via hop blinding key: %w", err)
	}
	data := record.NewNonFinalBlindedRouteDataOnionMessage(
		fn.NewLeft[*btcec.PublicKey, lnwire.ShortChannelID](intro),
		path.PathKey, nil,
	)
	hop, err := onionmsg.BuildBlindedPath(
		key, []onionmsg.Hop{{NodeID: lsp, Data: data}}, false,
	)
	if err != nil {
		return nil, err
	}
	hops := make([]*sphinx.BlindedHopInfo, 0, 1+len(path.Hops))
	hops = append(hops, hop.Hops...)
	hops = append(hops, path.Hops...)
	return &onionmsg.BlindedPath{
		IntroNode: lsp,
		PathKey:   hop.PathKey,
		Hops:      hops,
	}, nil
}

// ResolveIntro returns the key of path's introduction node. A sciddir
// introduction node is looked up in lnd's channel graph: direction 0 is the
// channel's node_1 (the lesser node id), 1 its node_2.
func (s *Sender) ResolveIntro(ctx context.Context,
	path *onionmsg.BlindedPath) (*btcec.PublicKey, error) {

	if _, err := path.Bytes(); err != nil {
		return nil, err
	}
	if path.IntroNode != nil {
		return path.IntroNode, nil
	}

	dir := path.IntroSCIDDir
	edge, err := s.cfg.Lightning.GetChanInfo(ctx, &lnrpc.ChanInfoRequest{
		ChanId: dir.SCID.ToUint64(),
	})
	switch {
	// lnd 0.21 answers NotFound; older ones an unknown error that says
	// so.
	case status.Code(err) == codes.NotFound,
		err != nil && strings.Contains(err.Error(), "edge not found"):

		return nil, fmt.Errorf("%w: %v", ErrUnknownChannel, dir.SCID)

	case err != nil:
		return nil, fmt.Errorf("look up sciddir channel %v: %w",
			dir.SCID, err)
	}

	nodeHex := edge.Node1Pub
	if dir.Direction == 1 {
		nodeHex = edge.Node2Pub
	}
	node, err := parseKeyHex(nodeHex)
	if err != nil {
		return nil, fmt.Errorf("channel %v node %d: %w", dir.SCID,
			dir.Direction+1, err)
	}
	return node, nil
}

// connectedPeers returns the node keys of lnd's connected peers.
func (s *Sender) connectedPeers(ctx context.Context) (map[route.Vertex]struct{},
	error) {

	resp, err := s.cfg.Lightning.ListPeers(ctx, &lnrpc.ListPeersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	peers := make(map[route.Vertex]struct{}, len(resp.Peers))
	for _, p := range resp.Peers {
		key, err := parseKeyHex(p.PubKey)
		if err != nil {
			continue
		}
		peers[route.NewVertex(key)] = struct{}{}
	}
	return peers, nil
}

// SendToPeer hands an already built onion message to a connected peer.
func (s *Sender) SendToPeer(ctx context.Context, peer route.Vertex,
	msg *lnwire.OnionMessage) error {

	if msg == nil || msg.PathKey == nil {
		return fmt.Errorf("%w: no path key", ErrInvalidMessage)
	}

	var err error
	if s.cfg.Native {
		_, err = s.cfg.Lightning.SendOnionMessage(ctx,
			&lnrpc.SendOnionMessageRequest{
				Peer:    peer[:],
				PathKey: msg.PathKey.SerializeCompressed(),
				Onion:   msg.OnionBlob,
			})
	} else {
		var data []byte
		data, err = custommsg.EncodeOnionMessage(msg)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
		_, err = s.cfg.Lightning.SendCustomMessage(ctx,
			&lnrpc.SendCustomMessageRequest{
				Peer: peer[:],
				Type: uint32(lnwire.MsgOnionMessage),
				Data: data,
			})
	}
	switch {
	case err == nil:
		return nil

	case status.Code(err) == codes.NotFound:
		return fmt.Errorf("%w: %v: %w", ErrPeerNotConnected, peer, err)

	default:
		return fmt.Errorf("%w: to %v: %w", ErrSend, peer, err)
	}
}

func parseKeyHex(s string) (*btcec.PublicKey, error) {
	v, err := route.NewVertexFromStr(s)
	if err != nil {
		return nil, fmt.Errorf("node key %q: %w", s, err)
	}
	return btcec.ParsePubKey(v[:])
}
