package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/internal/backoff"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
)

// errStreamEnded names a stream lnd closed without an error.
var errStreamEnded = errors.New("stream ended")

// runPeers follows lnd's peers until Stop: it subscribes to peer events,
// then lists the peers (so no change between the two is missed), and
// resubscribes with capped backoff whenever the stream ends.
func (m *Mailbox) runPeers() {
	m.resubscribeLoop("peer events", m.followPeers)

	m.mu.Lock()
	m.peersUp = false
	m.mu.Unlock()
}

// resubscribeLoop runs serve until Stop, waiting between attempts with a
// doubling delay that starts over after a healthy run.
func (m *Mailbox) resubscribeLoop(what string,
	serve func() (bool, error)) {

	attempt := 0
	for {
		healthy, err := serve()
		if m.ctx.Err() != nil {
			return
		}
		if healthy {
			attempt = 0
		}
		delay := backoff.Exponential(attempt, m.cfg.MinBackoff,
			m.cfg.MaxBackoff)
		attempt++
		m.log.Warnf("Subscription to lnd's %s ended: %v; "+
			"resubscribing in %v", what, err, delay)

		select {
		case <-m.ctx.Done():
			return
		case <-m.cfg.Clock.TickAfter(delay):
		}
	}
}

// followPeers runs one peer event subscription. healthy reports whether it
// got as far as listing the peers.
func (m *Mailbox) followPeers() (bool, error) {
	ctx, cancel := context.WithCancel(m.ctx)
	defer cancel()

	stream, err := m.cfg.Peers.SubscribePeerEvents(ctx,
		&lnrpc.PeerEventSubscription{})
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	resp, err := m.cfg.Peers.ListPeers(ctx, &lnrpc.ListPeersRequest{})
	if err != nil {
		return false, fmt.Errorf("list peers: %w", err)
	}

	online := make(map[route.Vertex]struct{}, len(resp.GetPeers()))
	for _, p := range resp.GetPeers() {
		key, err := parseKeyHex(p.GetPubKey())
		if err != nil {
			m.log.Warnf("Ignoring peer with bad key %q: %v",
				p.GetPubKey(), err)
			continue
		}
		online[key] = struct{}{}
	}
	m.mu.Lock()
	// At start, connected recipients count as ready (their holdd was
	// most likely up before ours). On a resubscribe only those that were
	// ready stay so: the others may have reconnected in the gap, before
	// their holdd.
	for peer, r := range m.recipients {
		_, listed := online[peer]
		wasReady := r.ready
		r.ready = listed && (r.ready || !m.peersSynced)
		if wasReady && !r.ready {
			r.offlineGen++
		}
	}
	m.peersUp = true
	m.mu.Unlock()
	m.peersSynced = true
	m.log.Debugf("lnd has %d peer(s) connected", len(online))

	// Whatever waited for a recipient that is online now goes out.
	m.kickWaiting(m.ctx)

	defer func() {
		m.mu.Lock()
		m.peersUp = false
		m.mu.Unlock()
	}()
	for {
		ev, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errStreamEnded
			}
			return true, fmt.Errorf("receive: %w", err)
		}
		m.peerEvent(ev)
	}
}

// peerEvent applies one online or offline event. A recipient that comes
// online is not delivered to yet: lnd reports the recipient's lnd online
// before the recipient's holdd has reconnected to it, and the recipient's
// lnd drops an onion message for a holdd that is not connected. Its holdd
// registers again once it is connected (see handleRegister), and that
// starts the delivery.
func (m *Mailbox) peerEvent(ev *lnrpc.PeerEvent) {
	key, err := parseKeyHex(ev.GetPubKey())
	if err != nil {
		m.log.Warnf("Ignoring peer event with bad key %q: %v",
			ev.GetPubKey(), err)
		return
	}

	m.mu.Lock()
	r := m.recipients[key]
	registered := r != nil
	// Online: not ready, see above. Offline: not ready at once, and a
	// readiness decided before this event is not applied after it. Any
	// other peer (lnd has many) is none of the mailbox's business.
	if registered && ev.GetType() == lnrpc.PeerEvent_PEER_OFFLINE {
		r.ready = false
		r.offlineGen++
	}
	m.mu.Unlock()

	if registered && ev.GetType() == lnrpc.PeerEvent_PEER_ONLINE {
		m.log.Debugf("Recipient %v is online; delivering once its "+
			"holdd registers again", key)
	}
}

// parseKeyHex parses a hex node key as lnd reports it and checks that it is
// a point on the curve.
func parseKeyHex(s string) (route.Vertex, error) {
	key, err := route.NewVertexFromStr(s)
	if err != nil {
		return key, err
	}
	if _, err := btcec.ParsePubKey(key[:]); err != nil {
		return key, err
	}

	return key, nil
}
