//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/holdd/holdd/release"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
)

// HoldHTLCType is the update_add_htlc TLV an async sender sets to ask its
// LSP to hold the HTLC (LDK's experimental type).
const HoldHTLCType = 75537

// HoldHTLCRecords are the first-hop custom records of an async payment.
func HoldHTLCRecords() map[uint64][]byte {
	return map[uint64][]byte{HoldHTLCType: {}}
}

// ErrPaymentStream is returned when a payment's update stream ended without
// a final state.
var ErrPaymentStream = errors.New("payment update stream ended")

// AddInvoice adds an invoice for amtSat on n.
func (n *LndNode) AddInvoice(ctx context.Context, amtSat int64,
	memo string) (*lnrpc.AddInvoiceResponse, error) {

	resp, err := n.Lightning.AddInvoice(ctx, &lnrpc.Invoice{
		Value: amtSat,
		Memo:  memo,
	})
	if err != nil {
		return nil, fmt.Errorf("lnd %s: AddInvoice: %w", n.Name, err)
	}
	return resp, nil
}

// PayOpts tune SendPayment. Zero values take the defaults.
type PayOpts struct {
	// AmtMsat pays a zero-amount invoice.
	AmtMsat int64

	// FirstHopCustomRecords are TLVs (>= 65536) put on the first hop's
	// update_add_htlc, e.g. HoldHTLCRecords().
	FirstHopCustomRecords map[uint64][]byte

	// TimeoutSeconds stops new attempts after this long; an HTLC already
	// in flight stays in flight. Default 60.
	TimeoutSeconds int32

	// FeeLimitSat defaults to 10000.
	FeeLimitSat int64

	// OutgoingChanID pins the first hop.
	OutgoingChanID uint64

	// Unproven skips the hello (release_paths_request) SendPayment
	// otherwise sends before a payment with HoldHTLCType, so holdd
	// treats the payer as a sender that never reads path deliveries.
	Unproven bool
}

// Payment streams one payment's updates from the paying node.
type Payment struct {
	// Hash is the payment hash.
	Hash []byte

	node   *LndNode
	cancel context.CancelFunc

	mu      sync.Mutex
	updates []*lnrpc.Payment
	changed chan struct{} // closed and replaced on every update
	ended   bool          // the stream is over (final state or error)
	endErr  error
}

// SendPayment pays invoice from n in one part and returns a handle
// streaming its updates. The stream lives until ctx ends or the payment is
// final; if n restarts, the handle re-attaches with TrackPaymentV2.
func (n *LndNode) SendPayment(ctx context.Context, invoice string,
	opts PayOpts) (*Payment, error) {

	decoded, err := n.Lightning.DecodePayReq(ctx,
		&lnrpc.PayReqString{PayReq: invoice})
	if err != nil {
		return nil, fmt.Errorf("lnd %s: decode invoice: %w", n.Name, err)
	}
	hash, err := hex.DecodeString(decoded.PaymentHash)
	if err != nil {
		return nil, err
	}
	if _, hold := opts.FirstHopCustomRecords[HoldHTLCType]; hold &&
		!opts.Unproven {

		if err := n.ProveReadsDeliveries(ctx); err != nil {
			return nil, err
		}
	}

	req := &routerrpc.SendPaymentRequest{
		PaymentRequest:        invoice,
		AmtMsat:               opts.AmtMsat,
		FirstHopCustomRecords: opts.FirstHopCustomRecords,
		TimeoutSeconds:        opts.TimeoutSeconds,
		FeeLimitSat:           opts.FeeLimitSat,
		MaxParts:              1,
	}
	if req.TimeoutSeconds == 0 {
		req.TimeoutSeconds = 60
	}
	if req.FeeLimitSat == 0 {
		req.FeeLimitSat = 10_000
	}
	if opts.OutgoingChanID != 0 {
		req.OutgoingChanIds = []uint64{opts.OutgoingChanID}
	}

	streamCtx, cancel := context.WithCancel(ctx)
	stream, err := n.Router.SendPaymentV2(streamCtx, req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("lnd %s: SendPaymentV2: %w", n.Name, err)
	}

	p := &Payment{
		Hash:    hash,
		node:    n,
		cancel:  cancel,
		changed: make(chan struct{}),
	}
	go p.run(streamCtx, stream)
	return p, nil
}

// paymentStream is what SendPaymentV2 and TrackPaymentV2 both return.
type paymentStream interface {
	Recv() (*lnrpc.Payment, error)
}

// run reads updates until the payment is final or ctx ends, re-attaching
// with TrackPaymentV2 when the stream breaks (e.g. the node restarted).
func (p *Payment) run(ctx context.Context, stream paymentStream) {
	started := false
	for {
		var err error
		for {
			var upd *lnrpc.Payment
			upd, err = stream.Recv()
			if err != nil {
				break
			}
			started = true
			if p.add(upd) {
				return
			}
		}

		// lnd refused the payment outright (already paid, no route
		// before the first attempt, ...): there is nothing to track.
		if !started {
			p.end(err)
			return
		}
		p.setStreamErr(err)

		// Give a restarting node time to come back.
		select {
		case <-ctx.Done():
			p.end(ctx.Err())
			return
		case <-time.After(500 * time.Millisecond):
		}

		stream, err = p.node.Router.TrackPaymentV2(ctx,
			&routerrpc.TrackPaymentRequest{PaymentHash: p.Hash})
		if err != nil && ctx.Err() != nil {
			p.end(ctx.Err())
			return
		}
		if err != nil {
			// Treated like a broken stream: retried until ctx
			// ends.
			stream = errStream{err}
		}
	}
}

// setStreamErr records why the stream broke, for timeout messages.
func (p *Payment) setStreamErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.endErr = err
}

// errStream is a stream that fails at once.
type errStream struct{ err error }

func (s errStream) Recv() (*lnrpc.Payment, error) { return nil, s.err }

// add records an update and reports whether it is final.
func (p *Payment) add(upd *lnrpc.Payment) bool {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.updates = append(p.updates, upd)
	final := isFinal(upd.Status)
	if final {
		p.ended = true
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return final
}

// end marks the stream as over without a final state.
func (p *Payment) end(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.ended = true
	p.endErr = err
	close(p.changed)
	p.changed = make(chan struct{})
}

func isFinal(s lnrpc.Payment_PaymentStatus) bool {
	return s == lnrpc.Payment_SUCCEEDED || s == lnrpc.Payment_FAILED
}

// Close stops streaming; the payment itself goes on in lnd.
func (p *Payment) Close() {
	p.cancel()
}

// Latest returns the newest update, nil before the first.
func (p *Payment) Latest() *lnrpc.Payment {
	p.mu.Lock()
	defer p.mu.Unlock()

	if len(p.updates) == 0 {
		return nil
	}
	return p.updates[len(p.updates)-1]
}

// Updates returns every update received so far.
func (p *Payment) Updates() []*lnrpc.Payment {
	p.mu.Lock()
	defer p.mu.Unlock()

	return append([]*lnrpc.Payment(nil), p.updates...)
}

// Status returns the newest status (UNKNOWN before the first update).
func (p *Payment) Status() lnrpc.Payment_PaymentStatus {
	if upd := p.Latest(); upd != nil {
		return upd.Status
	}
	return lnrpc.Payment_UNKNOWN
}

// snapshot returns the newest update, whether the stream ended, and a
// channel closed on the next change.
func (p *Payment) snapshot() (*lnrpc.Payment, bool, error, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()

	var latest *lnrpc.Payment
	if len(p.updates) > 0 {
		latest = p.updates[len(p.updates)-1]
	}
	return latest, p.ended, p.endErr, p.changed
}

// WaitStatus waits up to timeout until the payment's newest status is want
// and returns that update. It fails early if the payment becomes final with
// another status.
func (p *Payment) WaitStatus(ctx context.Context, timeout time.Duration,
	want lnrpc.Payment_PaymentStatus) (*lnrpc.Payment, error) {

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()

	for {
		latest, ended, endErr, changed := p.snapshot()
		switch {
		case latest != nil && latest.Status == want:
			return latest, nil
		case latest != nil && isFinal(latest.Status):
			return latest, fmt.Errorf("payment %x is %v (%v), "+
				"wanted %v", p.Hash, latest.Status,
				latest.FailureReason, want)
		case ended:
			return latest, fmt.Errorf("%w before %v: %v",
				ErrPaymentStream, want, endErr)
		}

		select {
		case <-changed:
		case <-deadline.C:
			return latest, fmt.Errorf("%w after %v waiting for "+
				"payment %x to be %v (now %v)", ErrTimeout,
				timeout, p.Hash, want, p.Status())
		case <-ctx.Done():
			return latest, ctx.Err()
		}
	}
}

// WaitFinal waits up to timeout until the payment SUCCEEDED or FAILED and
// returns the final update.
func (p *Payment) WaitFinal(ctx context.Context,
	timeout time.Duration) (*lnrpc.Payment, error) {

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()

	for {
		latest, ended, endErr, changed := p.snapshot()
		switch {
		case latest != nil && isFinal(latest.Status):
			return latest, nil
		case ended:
			return latest, fmt.Errorf("%w before a final state: %v",
				ErrPaymentStream, endErr)
		}

		select {
		case <-changed:
		case <-deadline.C:
			return latest, fmt.Errorf("%w after %v waiting for "+
				"payment %x to be final (now %v)", ErrTimeout,
				timeout, p.Hash, p.Status())
		case <-ctx.Done():
			return latest, ctx.Err()
		}
	}
}

// RequireInFlightFor waits (bounded by DefaultTimeout) until the payment is
// IN_FLIGHT, then checks that it stays IN_FLIGHT for d: the observable
// behaviour of a held HTLC.
func (p *Payment) RequireInFlightFor(ctx context.Context,
	d time.Duration) error {

	if _, err := p.WaitStatus(
		ctx, DefaultTimeout, lnrpc.Payment_IN_FLIGHT,
	); err != nil {
		return err
	}

	hold := time.NewTimer(d)
	defer hold.Stop()
	for {
		latest, ended, endErr, changed := p.snapshot()
		switch {
		case latest != nil && latest.Status != lnrpc.Payment_IN_FLIGHT:
			return fmt.Errorf("payment %x left IN_FLIGHT within "+
				"%v: %v (%v)", p.Hash, d, latest.Status,
				latest.FailureReason)
		case ended:
			return fmt.Errorf("%w while IN_FLIGHT: %v",
				ErrPaymentStream, endErr)
		}

		select {
		case <-changed:
		case <-hold.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// CustomMessages collects the custom peer messages of one type that reach a
// node.
type CustomMessages struct {
	msgs   chan *lnrpc.CustomMessage
	cancel context.CancelFunc

	mu  sync.Mutex
	err error
}

// SubscribeCustomMessages collects n's incoming custom messages of msgType.
// lnd registers the subscription asynchronously: subscribe before causing the
// message.
func (n *LndNode) SubscribeCustomMessages(ctx context.Context,
	msgType uint32) (*CustomMessages, error) {

	ctx, cancel := context.WithCancel(ctx)
	stream, err := n.Lightning.SubscribeCustomMessages(ctx,
		&lnrpc.SubscribeCustomMessagesRequest{})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("lnd %s: SubscribeCustomMessages: %w",
			n.Name, err)
	}

	c := &CustomMessages{
		msgs:   make(chan *lnrpc.CustomMessage, 100),
		cancel: cancel,
	}
	go func() {
		defer close(c.msgs)
		for {
			msg, err := stream.Recv()
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
			if msg.Type != msgType {
				continue
			}
			select {
			case c.msgs <- msg:
			case <-ctx.Done():
				return
			}
		}
	}()
	return c, nil
}

// Next returns the next collected message, waiting up to timeout.
func (c *CustomMessages) Next(ctx context.Context,
	timeout time.Duration) (*lnrpc.CustomMessage, error) {

	select {
	case msg, ok := <-c.msgs:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return nil, fmt.Errorf("custom message stream ended: %w",
				c.err)
		}
		return msg, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("%w after %v waiting for a custom "+
			"message", ErrTimeout, timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close ends the subscription.
func (c *CustomMessages) Close() {
	c.cancel()
}

// OnionMessages collects the onion messages that reach a node (lnd streams
// forwarded ones too).
type OnionMessages struct {
	msgs   chan *lnrpc.OnionMessageUpdate
	cancel context.CancelFunc

	mu  sync.Mutex
	err error
}

// SubscribeOnionMessages collects n's onion messages. Subscribe before
// causing the message.
func (n *LndNode) SubscribeOnionMessages(ctx context.Context) (*OnionMessages,
	error) {

	ctx, cancel := context.WithCancel(ctx)
	stream, err := n.Lightning.SubscribeOnionMessages(ctx,
		&lnrpc.SubscribeOnionMessagesRequest{})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("lnd %s: SubscribeOnionMessages: %w",
			n.Name, err)
	}

	o := &OnionMessages{
		msgs:   make(chan *lnrpc.OnionMessageUpdate, 100),
		cancel: cancel,
	}
	go func() {
		defer close(o.msgs)
		for {
			msg, err := stream.Recv()
			if err != nil {
				o.mu.Lock()
				o.err = err
				o.mu.Unlock()
				return
			}
			select {
			case o.msgs <- msg:
			case <-ctx.Done():
				return
			}
		}
	}()
	return o, nil
}

// Next returns the next onion message, waiting up to timeout.
func (o *OnionMessages) Next(ctx context.Context,
	timeout time.Duration) (*lnrpc.OnionMessageUpdate, error) {

	select {
	case msg, ok := <-o.msgs:
		if !ok {
			o.mu.Lock()
			defer o.mu.Unlock()
			return nil, fmt.Errorf("onion message stream ended: %w",
				o.err)
		}
		return msg, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("%w after %v waiting for an onion "+
			"message", ErrTimeout, timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close ends the subscription.
func (o *OnionMessages) Close() {
	o.cancel()
}

// SendOnionMessage sends an onion message from n to its peer: path_key is
// the first hop's blinding point, onion the serialized Sphinx packet.
func (n *LndNode) SendOnionMessage(ctx context.Context, peer, pathKey,
	onion []byte) error {

	_, err := n.Lightning.SendOnionMessage(ctx,
		&lnrpc.SendOnionMessageRequest{
			Peer:    peer,
			PathKey: pathKey,
			Onion:   onion,
		})
	if err != nil {
		return fmt.Errorf("lnd %s: SendOnionMessage: %w", n.Name, err)
	}
	return nil
}

// SendCustomMessage sends a custom peer message from n.
func (n *LndNode) SendCustomMessage(ctx context.Context, peer []byte,
	msgType uint32, data []byte) error {

	_, err := n.Lightning.SendCustomMessage(ctx,
		&lnrpc.SendCustomMessageRequest{
			Peer: peer,
			Type: msgType,
			Data: data,
		})
	if err != nil {
		return fmt.Errorf("lnd %s: SendCustomMessage: %w", n.Name, err)
	}
	return nil
}

// ProveReadsDeliveries greets n's channel peers with an empty
// release_paths_request (48007), as holdcli payasync does before it pays,
// and waits until one answers with release_paths_ack (48009): from then
// on L's holdd holds n's hold_htlc HTLCs. Done once per node and run.
func (n *LndNode) ProveReadsDeliveries(ctx context.Context) error {
	if n.readsDeliveries.Load() {
		return nil
	}
	acks, err := n.SubscribeCustomMessages(ctx, release.PathsAckMsgType)
	if err != nil {
		return err
	}
	defer acks.Close()
	chans, err := n.Lightning.ListChannels(ctx,
		&lnrpc.ListChannelsRequest{ActiveOnly: true})
	if err != nil {
		return fmt.Errorf("lnd %s: ListChannels: %w", n.Name, err)
	}
	peers := make(map[string]bool)
	for _, ch := range chans.Channels {
		peers[ch.RemotePubkey] = true
	}
	err = waitFor(ctx, DefaultTimeout, fmt.Sprintf("lnd %s: a "+
		"release_paths_ack from a channel peer", n.Name),
		func(ctx context.Context) (bool, error) {
			for p := range peers {
				key, err := hex.DecodeString(p)
				if err != nil {
					return false, stop(err)
				}
				// Not connected right now: try again.
				_ = n.SendCustomMessage(ctx, key,
					release.PathsRequestMsgType, nil)
			}
			msg, err := acks.Next(ctx, 2*time.Second)
			if err != nil {
				return false, err
			}
			return peers[hex.EncodeToString(msg.Peer)], nil
		})
	if err != nil {
		return err
	}
	n.readsDeliveries.Store(true)
	return nil
}
