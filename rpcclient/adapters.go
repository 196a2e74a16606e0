package rpcclient

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/holdd/holdd/internal/backoff"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/chainrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// ChannelLister is the part of lnd's Lightning service ChannelPeers uses.
type ChannelLister interface {
	ListChannels(ctx context.Context, in *lnrpc.ListChannelsRequest,
		opts ...grpc.CallOption) (*lnrpc.ListChannelsResponse, error)
}

// ChannelPeers maps channel ids (real or alias) to the peer's node key and
// says whether the channel is private (unannounced). It lists lnd's
// channels only on a miss, so steady-state lookups cost nothing; neither
// the peer nor the private flag of a channel ever changes.
type ChannelPeers struct {
	lister ChannelLister

	mu       sync.Mutex
	channels map[uint64]channelPeer
}

// channelPeer is what ChannelPeers keeps of one channel.
type channelPeer struct {
	peer    route.Vertex
	private bool
}

// NewChannelPeers creates a ChannelPeers over lnd.
func NewChannelPeers(lister ChannelLister) *ChannelPeers {
	return &ChannelPeers{lister: lister,
		channels: make(map[uint64]channelPeer)}
}

// PeerOf returns the node key of the peer on channel chanID.
func (c *ChannelPeers) PeerOf(ctx context.Context, chanID uint64) (route.Vertex,
	error) {

	ch, err := c.lookup(ctx, chanID)
	return ch.peer, err
}

// ChannelInfo returns the node key of the peer on channel chanID and
// whether the channel is private (not announced to the network).
func (c *ChannelPeers) ChannelInfo(ctx context.Context, chanID uint64) (
	route.Vertex, bool, error) {

	ch, err := c.lookup(ctx, chanID)
	return ch.peer, ch.private, err
}

func (c *ChannelPeers) lookup(ctx context.Context, chanID uint64) (
	channelPeer, error) {

	c.mu.Lock()
	ch, ok := c.channels[chanID]
	c.mu.Unlock()
	if ok {
		return ch, nil
	}

	resp, err := c.lister.ListChannels(ctx, &lnrpc.ListChannelsRequest{
		PeerAliasLookup: false,
	})
	if err != nil {
		return ch, fmt.Errorf("list channels: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, lc := range resp.Channels {
		key, err := parsePubKeyHex(lc.RemotePubkey)
		if err != nil {
			continue
		}
		info := channelPeer{
			peer:    route.NewVertex(key),
			private: lc.Private,
		}
		c.channels[lc.ChanId] = info
		for _, alias := range lc.AliasScids {
			c.channels[alias] = info
		}
		// lnd may key a zero-conf channel's HTLCs by its confirmed
		// id once it confirms.
		if lc.ZeroConfConfirmedScid != 0 {
			c.channels[lc.ZeroConfConfirmedScid] = info
		}
	}
	ch, ok = c.channels[chanID]
	if !ok {
		return ch, fmt.Errorf("channel %d not found", chanID)
	}
	return ch, nil
}

// BlockClients are the lnd services BlockWatcher uses.
type BlockClients interface {
	GetInfo(ctx context.Context, in *lnrpc.GetInfoRequest,
		opts ...grpc.CallOption) (*lnrpc.GetInfoResponse, error)
}

// EpochClient is lnd's chain notifier.
type EpochClient interface {
	RegisterBlockEpochNtfn(ctx context.Context, in *chainrpc.BlockEpoch,
		opts ...grpc.CallOption) (
		chainrpc.ChainNotifier_RegisterBlockEpochNtfnClient, error)
}

// BlockWatcher streams lnd's best block height, re-subscribing when the
// stream drops and re-reading the height so no block is missed for good.
type BlockWatcher struct {
	info   BlockClients
	epochs EpochClient
	log    logrus.FieldLogger
	retry  time.Duration

	// wg tracks the subscriptions' goroutines, for Wait.
	wg sync.WaitGroup
}

// NewBlockWatcher creates a BlockWatcher.
func NewBlockWatcher(info BlockClients, epochs EpochClient,
	log logrus.FieldLogger) *BlockWatcher {

	return &BlockWatcher{info: info, epochs: epochs, log: log,
		retry: 2 * time.Second}
}

// SubscribeBlocks sends the current height, then every new one, until ctx
// ends. Heights can repeat after a reconnect; they never go silent for long
// while lnd is reachable.
func (w *BlockWatcher) SubscribeBlocks(ctx context.Context) (<-chan int32,
	error) {

	info, err := w.info.GetInfo(ctx, &lnrpc.GetInfoRequest{})
	if err != nil {
		return nil, err
	}
	out := make(chan int32, 16)
	out <- int32(info.BlockHeight)

	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(out)
		for ctx.Err() == nil {
			err := w.stream(ctx, out)
			if ctx.Err() != nil {
				return
			}
			w.log.Warnf("Block stream down (%v); re-subscribing in %v",
				err, w.retry)
			select {
			case <-time.After(w.retry):
			case <-ctx.Done():
				return
			}
			info, err := w.info.GetInfo(ctx, &lnrpc.GetInfoRequest{})
			if err == nil {
				select {
				case out <- int32(info.BlockHeight):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// Wait returns once every subscription's goroutine has ended; each ends
// when its context does.
func (w *BlockWatcher) Wait() { w.wg.Wait() }

func (w *BlockWatcher) stream(ctx context.Context, out chan<- int32) error {
	stream, err := w.epochs.RegisterBlockEpochNtfn(ctx,
		&chainrpc.BlockEpoch{})
	if err != nil {
		return err
	}
	for {
		epoch, err := stream.Recv()
		if err != nil {
			return err
		}
		select {
		case out <- int32(epoch.Height):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// CustomMessenger sends peer custom messages through lnd.
type CustomMessenger struct {
	client interface {
		SendCustomMessage(ctx context.Context,
			in *lnrpc.SendCustomMessageRequest,
			opts ...grpc.CallOption) (
			*lnrpc.SendCustomMessageResponse, error)
	}
}

// NewCustomMessenger creates a CustomMessenger over lnd.
func NewCustomMessenger(c *Client) *CustomMessenger {
	return &CustomMessenger{client: c.Lightning}
}

// SendCustomMessage sends one custom message to a connected peer.
func (m *CustomMessenger) SendCustomMessage(ctx context.Context,
	peer route.Vertex, msgType uint32, data []byte) error {

	_, err := m.client.SendCustomMessage(ctx,
		&lnrpc.SendCustomMessageRequest{
			Peer: peer[:],
			Type: msgType,
			Data: data,
		})
	return err
}

// NodeInfoClient is the part of lnd's Lightning service NodeAliases uses.
type NodeInfoClient interface {
	GetNodeInfo(ctx context.Context, in *lnrpc.NodeInfoRequest,
		opts ...grpc.CallOption) (*lnrpc.NodeInfo, error)
}

// NodeAliases looks up node aliases in lnd's graph and remembers them; an
// alias is cosmetic, so a failed lookup just yields "".
type NodeAliases struct {
	client NodeInfoClient

	mu      sync.Mutex
	aliases map[route.Vertex]string
}

// NewNodeAliases creates a NodeAliases over lnd.
func NewNodeAliases(client NodeInfoClient) *NodeAliases {
	return &NodeAliases{client: client,
		aliases: make(map[route.Vertex]string)}
}

// Alias returns the alias of node, or "" when lnd does not know it.
func (a *NodeAliases) Alias(ctx context.Context, node route.Vertex) string {
	a.mu.Lock()
	alias, ok := a.aliases[node]
	a.mu.Unlock()
	if ok {
		return alias
	}
	info, err := a.client.GetNodeInfo(ctx, &lnrpc.NodeInfoRequest{
		PubKey: node.String(),
	})
	if err != nil || info.Node == nil {
		return ""
	}
	a.mu.Lock()
	a.aliases[node] = info.Node.Alias
	a.mu.Unlock()
	return info.Node.Alias
}

// ChannelEventsClient is the part of lnd's Lightning service
// ChannelActivity uses.
type ChannelEventsClient interface {
	ChannelLister
	SubscribeChannelEvents(ctx context.Context,
		in *lnrpc.ChannelEventSubscription, opts ...grpc.CallOption) (
		lnrpc.Lightning_SubscribeChannelEventsClient, error)
}

// ChannelActivity tells whether a channel's link is up, and when channels
// become active. While WatchActive runs it answers from channel events
// without an RPC; otherwise it asks lnd.
type ChannelActivity struct {
	client ChannelEventsClient
	peers  *ChannelPeers
	log    logrus.FieldLogger

	mu      sync.Mutex
	synced  bool
	points  map[string]uint64
	active  map[uint64]bool
	aliases map[uint64]uint64
}

// NewChannelActivity creates a ChannelActivity over lnd. peers maps
// channels to peers, so that a check without events lists one peer's
// channels only.
func NewChannelActivity(client ChannelEventsClient, peers *ChannelPeers,
	log logrus.FieldLogger) *ChannelActivity {

	return &ChannelActivity{client: client, peers: peers, log: log}
}

// Active reports whether channel chanID (real or alias short channel id)
// is active, i.e. its link forwards.
func (c *ChannelActivity) Active(ctx context.Context,
	chanID uint64) (bool, error) {

	c.mu.Lock()
	if c.synced {
		if real, ok := c.aliases[chanID]; ok {
			chanID = real
		}
		if active, ok := c.active[chanID]; ok {
			c.mu.Unlock()
			return active, nil
		}
	}
	c.mu.Unlock()

	peer, err := c.peers.PeerOf(ctx, chanID)
	if err != nil {
		return false, err
	}
	resp, err := c.client.ListChannels(ctx, &lnrpc.ListChannelsRequest{
		Peer: peer[:],
	})
	if err != nil {
		return false, fmt.Errorf("list channels: %w", err)
	}
	for _, ch := range resp.Channels {
		if ch.ChanId == chanID || slices.Contains(ch.AliasScids, chanID) {
			return ch.Active, nil
		}
	}
	return false, fmt.Errorf("channel %d not found", chanID)
}

// load replaces the cached state with lnd's channel list.
func (c *ChannelActivity) load(ctx context.Context) error {
	resp, err := c.client.ListChannels(ctx, &lnrpc.ListChannelsRequest{})
	if err != nil {
		return err
	}
	points := make(map[string]uint64, len(resp.Channels))
	active := make(map[uint64]bool, len(resp.Channels))
	aliases := make(map[uint64]uint64)
	for _, ch := range resp.Channels {
		points[ch.ChannelPoint] = ch.ChanId
		active[ch.ChanId] = ch.Active
		for _, a := range ch.AliasScids {
			aliases[a] = ch.ChanId
		}
	}
	c.mu.Lock()
	c.points, c.active, c.aliases, c.synced = points, active, aliases, true
	c.mu.Unlock()
	return nil
}

// apply updates the cache from one event; it reports whether a channel
// became active, and which (0 when the channel is not in the cache).
func (c *ChannelActivity) apply(ctx context.Context,
	ev *lnrpc.ChannelEventUpdate) (uint64, bool) {

	var (
		point string
		up    bool
	)
	switch ev.Type {
	case lnrpc.ChannelEventUpdate_ACTIVE_CHANNEL:
		point, up = chanPointString(ev.GetActiveChannel()), true
	case lnrpc.ChannelEventUpdate_INACTIVE_CHANNEL:
		point = chanPointString(ev.GetInactiveChannel())
	case lnrpc.ChannelEventUpdate_OPEN_CHANNEL,
		lnrpc.ChannelEventUpdate_CLOSED_CHANNEL:

		// New or gone channels: take lnd's list again.
		if err := c.load(ctx); err != nil {
			c.unsync()
		}
		return 0, false
	default:
		return 0, false
	}
	c.mu.Lock()
	id, ok := c.points[point]
	c.mu.Unlock()
	if !ok {
		// A channel the cache does not have yet (its open event may
		// still be on its way): take lnd's list again so the caller
		// learns which channel came up.
		if err := c.load(ctx); err != nil {
			c.unsync()
			return 0, up
		}
		c.mu.Lock()
		id, ok = c.points[point]
		c.mu.Unlock()
		if !ok {
			c.unsync()
			return 0, up
		}
	}
	c.mu.Lock()
	c.active[id] = up
	c.mu.Unlock()
	return id, up
}

func (c *ChannelActivity) unsync() {
	c.mu.Lock()
	c.synced = false
	c.mu.Unlock()
}

// chanPointString formats a channel point as lnd's ListChannels does.
func chanPointString(cp *lnrpc.ChannelPoint) string {
	if cp == nil {
		return ""
	}
	var txid []byte
	switch t := cp.FundingTxid.(type) {
	case *lnrpc.ChannelPoint_FundingTxidStr:
		return fmt.Sprintf("%s:%d", t.FundingTxidStr, cp.OutputIndex)
	case *lnrpc.ChannelPoint_FundingTxidBytes:
		txid = t.FundingTxidBytes
	}
	// FundingTxidBytes is in internal (reversed) byte order.
	rev := make([]byte, len(txid))
	for i := range txid {
		rev[len(txid)-1-i] = txid[i]
	}
	return fmt.Sprintf("%x:%d", rev, cp.OutputIndex)
}

// WatchActive keeps the cache current from lnd's channel events and calls
// onActive with the channel's id (0 if not yet in the cache) whenever a
// channel becomes active, until ctx ends, re-subscribing with a capped
// backoff when the stream breaks. After a re-subscription it calls
// onActive(0) once: a channel may have become active while no stream ran.
func (c *ChannelActivity) WatchActive(ctx context.Context,
	onActive func(chanID uint64)) {

	delay := time.Second
	resubscribed := false
	for ctx.Err() == nil {
		stream, err := c.client.SubscribeChannelEvents(ctx,
			&lnrpc.ChannelEventSubscription{})
		// Subscribe first, then list: no change falls between.
		if err == nil {
			err = c.load(ctx)
		}
		if err == nil && resubscribed {
			onActive(0)
		}
		resubscribed = true
		for err == nil {
			var ev *lnrpc.ChannelEventUpdate
			ev, err = stream.Recv()
			if err != nil {
				break
			}
			if id, up := c.apply(ctx, ev); up {
				delay = time.Second
				onActive(id)
			}
		}
		c.unsync()
		if ctx.Err() != nil {
			return
		}
		c.log.Debugf("Channel events: %v; resubscribing in %v", err,
			delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = backoff.Next(delay, time.Minute)
	}
}
