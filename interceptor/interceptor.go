package interceptor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/holdd/holdd/internal/backoff"
	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// RouterClient is the part of lnd's router service the interceptor uses.
type RouterClient interface {
	HtlcInterceptor(ctx context.Context, opts ...grpc.CallOption) (
		routerrpc.Router_HtlcInterceptorClient, error)
}

// ChannelEventsClient is the part of lnd's Lightning service the
// interceptor follows to learn of closed channels.
type ChannelEventsClient interface {
	SubscribeChannelEvents(ctx context.Context,
		in *lnrpc.ChannelEventSubscription, opts ...grpc.CallOption) (
		lnrpc.Lightning_SubscribeChannelEventsClient, error)
}

// maxClosedChannels bounds how many closed channels the interceptor
// remembers; the oldest are forgotten first. An HTLC of a channel closed
// that long ago is no longer offered off chain.
const maxClosedChannels = 4096

// Engine decides on offered HTLCs.
type Engine interface {
	Intercept(ctx context.Context, h plugin.HTLC) plugin.Decision
}

// Config configures an Interceptor.
type Config struct {
	Router RouterClient

	// ChannelEvents, if set, is followed for closed channels: the keys
	// of a closed channel are no longer answered, since lnd is about to
	// offer them again on chain, and a resume or fail of such a key
	// ends the stream. Nil leaves only the on-chain offer itself to
	// withdraw a key.
	ChannelEvents ChannelEventsClient

	// MinBackoff and MaxBackoff bound the reconnect delay, which doubles
	// after each failed attempt.
	MinBackoff, MaxBackoff time.Duration

	Clock  clock.Clock
	Logger logrus.FieldLogger

	// OnConnectionChange is told when the stream comes up or goes down.
	OnConnectionChange func(connected bool)
}

// Interceptor runs the HtlcInterceptor stream and implements
// plugin.Resolver.
type Interceptor struct {
	cfg Config
	log logrus.FieldLogger

	// engine decides on each intercepted HTLC; set by Start, before the
	// goroutines that read it. It is not part of Config because the
	// engine answers through the Interceptor: the Interceptor is built
	// first, the engine takes it as its Resolver, and Start joins them.
	engine Engine

	// mu guards stream, gen, offered and the closed channels.
	mu      sync.Mutex
	stream  routerrpc.Router_HtlcInterceptorClient
	gen     uint64
	offered map[plugin.CircuitKey]uint64

	// closed holds the short channel ids (and aliases) of channels lnd
	// reported closed, closedOrder the same oldest first, to bound it.
	closed      map[uint64]struct{}
	closedOrder []uint64

	// sendMu serializes Send: a gRPC stream allows one sender at a time.
	sendMu sync.Mutex

	reconnects uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ plugin.Resolver = (*Interceptor)(nil)

// New creates an Interceptor.
func New(cfg Config) (*Interceptor, error) {
	if cfg.Router == nil {
		return nil, errors.New("interceptor: router is required")
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewDefaultClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	return &Interceptor{
		cfg:     cfg,
		log:     cfg.Logger,
		offered: make(map[plugin.CircuitKey]uint64),
		closed:  make(map[uint64]struct{}),
	}, nil
}

// Start runs the stream until Stop, asking engine about every HTLC.
func (i *Interceptor) Start(engine Engine) error {
	if engine == nil {
		return errors.New("interceptor: engine is required")
	}
	i.engine = engine
	ctx, cancel := context.WithCancel(context.Background())
	i.cancel = cancel
	i.wg.Add(1)
	go i.run(ctx)
	if i.cfg.ChannelEvents != nil {
		i.wg.Add(1)
		go i.watchCloses(ctx)
	}
	return nil
}

// Stop closes the stream and waits for in-flight decisions.
func (i *Interceptor) Stop() error {
	if i.cancel != nil {
		i.cancel()
	}
	i.wg.Wait()
	return nil
}

// Connected reports whether the stream is up.
func (i *Interceptor) Connected() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stream != nil
}

// Reconnects counts how often the stream was re-opened after a drop.
func (i *Interceptor) Reconnects() uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.reconnects
}

func (i *Interceptor) run(ctx context.Context) {
	defer i.wg.Done()
	delay := i.cfg.MinBackoff
	first := true
	for {
		start := i.cfg.Clock.Now()
		err := i.runStream(ctx, first)
		if ctx.Err() != nil {
			return
		}
		first = false

		// A stream that stayed up for a while was healthy; start the
		// next round of retries from the bottom.
		if i.cfg.Clock.Now().Sub(start) > i.cfg.MaxBackoff {
			delay = i.cfg.MinBackoff
		}
		wait := backoff.EqualJitter(delay, backoff.RandJitter)
		i.log.Warnf("Interceptor stream down (%v); reconnecting in %v",
			err, wait)
		select {
		case <-i.cfg.Clock.TickAfter(wait):
		case <-ctx.Done():
			return
		}
		delay = backoff.Next(delay, i.cfg.MaxBackoff)
	}
}

func (i *Interceptor) runStream(ctx context.Context, first bool) error {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := i.cfg.Router.HtlcInterceptor(streamCtx)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}

	i.mu.Lock()
	i.stream = stream
	i.gen++
	gen := i.gen
	// Keys offered on an earlier stream cannot be resolved on this one;
	// lnd offers them again.
	clear(i.offered)
	if !first {
		i.reconnects++
	}
	i.mu.Unlock()
	i.log.Infof("Interceptor stream %d open", gen)
	i.notify(true)

	defer func() {
		i.mu.Lock()
		if i.gen == gen {
			i.stream = nil
			clear(i.offered)
		}
		i.mu.Unlock()
		i.notify(false)
	}()

	var decisions sync.WaitGroup
	defer decisions.Wait()
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		htlc, err := toHTLC(req)
		if err != nil {
			// lnd never sends this; answering an unknown key would
			// end the stream, so leave it to lnd's auto-fail.
			i.log.Errorf("Ignoring malformed intercept request: %v",
				err)
			continue
		}

		i.mu.Lock()
		_, closed := i.closed[htlc.Key.ChanID]
		switch {
		case htlc.OnChain:
			// Only a preimage can settle an on-chain HTLC; lnd
			// ends the stream on a resume or fail of one, so the
			// key must never be answered.
			delete(i.offered, htlc.Key)

		case closed:
			// An off-chain offer (a replay) of a closed channel's
			// HTLC: lnd re-offers it on chain any moment.
			delete(i.offered, htlc.Key)
			i.log.Infof("Not answering %v: its channel is closed",
				htlc.Key)

		default:
			i.offered[htlc.Key] = gen
		}
		i.mu.Unlock()

		// Holds write to the store; deciding off the receive loop keeps
		// one slow write from delaying every other forward.
		decisions.Add(1)
		go func() {
			defer decisions.Done()
			i.decide(ctx, htlc)
		}()
	}
}

func (i *Interceptor) decide(ctx context.Context, htlc plugin.HTLC) {
	d := i.engine.Intercept(ctx, htlc)
	if htlc.OnChain {
		return
	}
	var err error
	switch d.Action {
	case plugin.ActionResume:
		err = i.Resume(ctx, htlc.Key)
	case plugin.ActionFail:
		err = i.Fail(ctx, htlc.Key)
	case plugin.ActionHold:
		return
	}
	if err != nil {
		i.log.Warnf("Resolution %v for %v not sent: %v", d.Action,
			htlc.Key, err)
	}
}

// Resume forwards an HTLC offered on the current stream.
func (i *Interceptor) Resume(_ context.Context, key plugin.CircuitKey) error {
	return i.resolve(key, &routerrpc.ForwardHtlcInterceptResponse{
		Action: routerrpc.ResolveHoldForwardAction_RESUME,
	})
}

// Fail fails an HTLC offered on the current stream back with
// TEMPORARY_CHANNEL_FAILURE.
func (i *Interceptor) Fail(_ context.Context, key plugin.CircuitKey) error {
	return i.resolve(key, &routerrpc.ForwardHtlcInterceptResponse{
		Action:      routerrpc.ResolveHoldForwardAction_FAIL,
		FailureCode: lnrpc.Failure_TEMPORARY_CHANNEL_FAILURE,
	})
}

func (i *Interceptor) resolve(key plugin.CircuitKey,
	resp *routerrpc.ForwardHtlcInterceptResponse) error {

	resp.IncomingCircuitKey = &routerrpc.CircuitKey{
		ChanId: key.ChanID,
		HtlcId: key.HtlcID,
	}

	// The key is checked with the send lock held, right before the
	// send: an on-chain re-offer or a channel close that arrives while
	// this call waits behind another send withdraws it in time.
	i.sendMu.Lock()
	defer i.sendMu.Unlock()

	i.mu.Lock()
	gen, ok := i.offered[key]
	if !ok || i.stream == nil || gen != i.gen {
		i.mu.Unlock()
		return fmt.Errorf("%w: %v", plugin.ErrNotOffered, key)
	}
	// Removing the key first makes a second resolution impossible even
	// if two callers race.
	delete(i.offered, key)
	stream := i.stream
	i.mu.Unlock()

	err := stream.Send(resp)
	if err != nil {
		// The stream is broken; lnd offers the key again after the
		// reconnect.
		return fmt.Errorf("%w: send on broken stream: %v",
			plugin.ErrNotOffered, err)
	}
	return nil
}

func (i *Interceptor) notify(connected bool) {
	if i.cfg.OnConnectionChange != nil {
		i.cfg.OnConnectionChange(connected)
	}
}

func toHTLC(req *routerrpc.ForwardHtlcInterceptRequest) (plugin.HTLC, error) {
	if req.IncomingCircuitKey == nil {
		return plugin.HTLC{}, errors.New("no incoming circuit key")
	}
	if len(req.PaymentHash) != 32 {
		return plugin.HTLC{}, fmt.Errorf("payment hash of %d bytes",
			len(req.PaymentHash))
	}
	h := plugin.HTLC{
		Key: plugin.CircuitKey{
			ChanID: req.IncomingCircuitKey.ChanId,
			HtlcID: req.IncomingCircuitKey.HtlcId,
		},
		IncomingAmtMsat: req.IncomingAmountMsat,
		OutgoingAmtMsat: req.OutgoingAmountMsat,
		IncomingExpiry:  req.IncomingExpiry,
		OutgoingExpiry:  req.OutgoingExpiry,
		OutgoingChanID:  req.OutgoingRequestedChanId,
		AutoFailHeight:  req.AutoFailHeight,
		CustomRecords:   req.InWireCustomRecords,

		// lnd offers an HTLC of a force-closed incoming channel again
		// with its incoming expiry as auto_fail_height; off chain the
		// height is cltv_reject_delta blocks earlier.
		OnChain: req.AutoFailHeight >= 0 &&
			uint32(req.AutoFailHeight) >= req.IncomingExpiry,
	}
	copy(h.PaymentHash[:], req.PaymentHash)
	return h, nil
}

// watchCloses follows lnd's channel events until ctx ends, re-subscribing
// with the reconnect backoff, and withdraws the keys of every channel
// reported closed.
func (i *Interceptor) watchCloses(ctx context.Context) {
	defer i.wg.Done()
	delay := i.cfg.MinBackoff
	for {
		err := i.followCloses(ctx, func() { delay = i.cfg.MinBackoff })
		if ctx.Err() != nil {
			return
		}
		wait := backoff.EqualJitter(delay, backoff.RandJitter)
		i.log.Warnf("Channel event stream down (%v); resubscribing in "+
			"%v", err, wait)
		select {
		case <-i.cfg.Clock.TickAfter(wait):
		case <-ctx.Done():
			return
		}
		delay = backoff.Next(delay, i.cfg.MaxBackoff)
	}
}

// followCloses reads one channel event stream until it fails; up is
// called once it is open.
func (i *Interceptor) followCloses(ctx context.Context, up func()) error {
	stream, err := i.cfg.ChannelEvents.SubscribeChannelEvents(ctx,
		&lnrpc.ChannelEventSubscription{})
	if err != nil {
		return err
	}
	up()
	for {
		ev, err := stream.Recv()
		if err != nil {
			return err
		}
		if ev.Type != lnrpc.ChannelEventUpdate_CLOSED_CHANNEL {
			continue
		}
		if ids := closedIDs(ev.GetClosedChannel()); len(ids) > 0 {
			i.channelClosed(ids)
		}
	}
}

// closedIDs returns every short channel id under which lnd may have
// offered a closed channel's HTLCs: the channel's own and its aliases.
func closedIDs(c *lnrpc.ChannelCloseSummary) []uint64 {
	if c == nil {
		return nil
	}
	var ids []uint64
	for _, id := range append([]uint64{c.ChanId, c.ZeroConfConfirmedScid},
		c.AliasScids...) {

		if id != 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// channelClosed withdraws the offered keys of a closed channel and
// remembers it, so that a replay of one of its HTLCs is not answered
// either: lnd moves them to on-chain resolution right after it reports the
// close, and from then a resume or fail of one ends the stream.
func (i *Interceptor) channelClosed(ids []uint64) {
	i.mu.Lock()
	defer i.mu.Unlock()

	for _, id := range ids {
		if _, ok := i.closed[id]; ok {
			continue
		}
		i.closed[id] = struct{}{}
		i.closedOrder = append(i.closedOrder, id)
	}
	for len(i.closedOrder) > maxClosedChannels {
		delete(i.closed, i.closedOrder[0])
		i.closedOrder = i.closedOrder[1:]
	}
	withdrawn := 0
	for key := range i.offered {
		if _, ok := i.closed[key.ChanID]; ok {
			delete(i.offered, key)
			withdrawn++
		}
	}
	if withdrawn > 0 {
		i.log.Infof("Channel %v closed: no longer answering its %d "+
			"offered HTLC(s)", ids, withdrawn)
	}
}
