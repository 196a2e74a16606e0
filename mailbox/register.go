package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
)

// Outcomes of registration messages, the keys of Stats.Registrations.
const (
	// RegAccepted: registered or refreshed, and told so.
	RegAccepted = "accepted"

	// RegRefused: the policy does not admit the peer; it was told why.
	RegRefused = "refused"

	// RegFailed: the policy check or the store failed; the peer was
	// told to retry.
	RegFailed = "failed"

	// RegMalformed: the message did not decode; no answer (there is no
	// request_id to echo).
	RegMalformed = "malformed"

	// RegRateLimited: another registration from the peer came less than
	// RegisterInterval earlier; ignored without an answer.
	RegRateLimited = "rate_limited"

	// RegReplyFailed: the answer could not be sent. Counted besides the
	// outcome above; the client retries.
	RegReplyFailed = "reply_failed"
)

// Refusal reasons sent in mailbox_registered.
const (
	ReasonNotEligible = "not eligible: no channel with this node"
	ReasonRetry       = "temporarily unavailable, retry later"
)

// runRegistrations reads registration messages from lnd until Stop,
// resubscribing with capped backoff.
func (m *Mailbox) runRegistrations() {
	m.resubscribeLoop("custom messages", m.serveRegistrations)
}

// serveRegistrations runs one custom message subscription. healthy
// reports whether it delivered a message.
func (m *Mailbox) serveRegistrations() (bool, error) {
	ctx, cancel := context.WithCancel(m.ctx)
	defer cancel()

	stream, err := m.cfg.Messages.SubscribeCustomMessages(ctx,
		&lnrpc.SubscribeCustomMessagesRequest{})
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	healthy := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errStreamEnded
			}
			return healthy, fmt.Errorf("receive: %w", err)
		}
		healthy = true
		// lnd streams every custom message; the others are not ours.
		if msg.GetType() != RegisterMsgType {
			continue
		}
		peer, err := route.NewVertexFromBytes(msg.GetPeer())
		if err != nil {
			continue
		}
		m.handleRegister(ctx, peer, msg.GetData())
	}
}

// handleRegister answers one mailbox_register from peer, the sender lnd
// authenticated. A refused or failed registration changes nothing stored.
func (m *Mailbox) handleRegister(ctx context.Context, peer route.Vertex,
	data []byte) string {

	now := m.cfg.Clock.Now()
	// Only this goroutine touches lastReg. Entries older than the
	// interval limit nothing: they go, so the map holds only the peers
	// heard from within one interval.
	for p, t := range m.lastReg {
		if now.Sub(t) >= m.lim.RegisterInterval {
			delete(m.lastReg, p)
		}
	}
	if _, seen := m.lastReg[peer]; seen {
		return m.countReg(RegRateLimited)
	}
	m.lastReg[peer] = now

	req, err := DecodeRegister(data)
	if err != nil {
		m.log.Debugf("Ignoring registration from %v: %v", peer, err)
		return m.countReg(RegMalformed)
	}

	// Counted before the answer goes out, so that a client holding the
	// answer finds the counter already moved.
	ans, outcome := m.decide(ctx, peer, req.RequestID, now)
	m.countReg(outcome)
	m.reply(ctx, peer, ans)

	// A registration comes from the recipient's holdd once it is
	// connected to its lnd, through that lnd: the recipient is ready as
	// soon as our channel with it forwards again, and what waited for it
	// goes out then.
	if outcome == RegAccepted {
		m.mu.Lock()
		r := m.recipients[peer]
		start := r != nil && !r.waiting
		var gen uint64
		if start {
			r.waiting = true
			gen = r.offlineGen
		}
		m.mu.Unlock()
		if start {
			// This goroutine is itself tracked, so the Add comes
			// before Stop's Wait returns.
			m.wg.Add(1)
			go m.readyWhenChannelActive(peer, r, gen)
		}
	}

	return outcome
}

// decide applies the policy to a registration and persists an accepted
// one. It returns the answer and the outcome.
func (m *Mailbox) decide(ctx context.Context, peer route.Vertex, id uint64,
	now time.Time) (*RegisteredMsg, string) {

	ok, err := m.eligible(ctx, peer)
	switch {
	case err != nil:
		m.log.Errorf("Registration of %v: policy check: %v", peer, err)
		return &RegisteredMsg{RequestID: id, Error: ReasonRetry},
			RegFailed

	case !ok:
		m.log.Infof("Refusing mailbox registration of %v: no channel",
			peer)
		return &RegisteredMsg{RequestID: id, Error: ReasonNotEligible},
			RegRefused
	}

	_, created, err := m.cfg.Store.RegisterMailboxRecipient(ctx, peer, now)
	if err != nil {
		m.log.Errorf("Registration of %v: %v", peer, err)
		return &RegisteredMsg{RequestID: id, Error: ReasonRetry},
			RegFailed
	}
	m.mu.Lock()
	if m.recipients[peer] == nil {
		m.recipients[peer] = &recipientState{}
	}
	m.mu.Unlock()
	if created {
		m.log.Infof("Registered mailbox recipient %v", peer)
	} else {
		m.log.Debugf("Refreshed mailbox registration of %v", peer)
	}

	return &RegisteredMsg{
		RequestID:   id,
		MailboxKey:  m.cfg.MailboxKey,
		MaxAge:      m.lim.MaxAge,
		MaxMessages: uint64(m.lim.MaxPerRecipient),
		MaxBytes:    uint64(m.lim.MaxBytesPerRecipient),
	}, RegAccepted
}

func (m *Mailbox) countReg(outcome string) string {
	m.mu.Lock()
	m.stats.Registrations[outcome]++
	m.mu.Unlock()

	return outcome
}

// eligible applies the registration policy: open, allowlisted, or a peer
// with at least one channel to lnd.
func (m *Mailbox) eligible(ctx context.Context, peer route.Vertex) (bool,
	error) {

	if m.cfg.Open {
		return true, nil
	}
	if _, ok := m.allow[peer]; ok {
		return true, nil
	}
	if m.cfg.Channels == nil {
		return false, nil
	}
	resp, err := m.cfg.Channels.ListChannels(ctx,
		&lnrpc.ListChannelsRequest{Peer: peer[:]})
	if err != nil {
		return false, fmt.Errorf("list channels: %w", err)
	}

	return len(resp.GetChannels()) > 0, nil
}

const (
	// channelPoll and channelPolls bound the wait for an active channel
	// with a recipient that just came back: about 30 s.
	channelPoll  = 250 * time.Millisecond
	channelPolls = 120
)

// readyWhenChannelActive marks peer ready once lnd lists a channel with it
// as active (or it has none), unless it went offline or was unregistered
// since its registration (r is its state then). A message delivered earlier makes the recipient release
// the sender's HTLC at once; that HTLC then reaches our lnd and fails if
// our channel with the recipient is still being re-established. If the
// channel stays inactive for about 30 s the peer is not marked ready: its
// holdd registers again later.
func (m *Mailbox) readyWhenChannelActive(peer route.Vertex, r *recipientState,
	gen uint64) {

	defer m.wg.Done()
	ok := m.waitChannelActive(peer)

	m.mu.Lock()
	r.waiting = false
	ready := ok && m.recipients[peer] == r && r.offlineGen == gen
	if ready {
		r.ready = true
	}
	m.mu.Unlock()
	if ready {
		m.kick(peer)
	}
}

// waitChannelActive reports whether lnd lists a channel with peer as
// active, or peer has no channel with lnd, within about 30 s.
func (m *Mailbox) waitChannelActive(peer route.Vertex) bool {
	if m.cfg.Channels == nil {
		return true
	}
	for range channelPolls {
		if ok, err := ChannelReady(m.ctx, m.cfg.Channels, peer); ok &&
			err == nil {

			return true
		}
		select {
		case <-m.ctx.Done():
			return false
		case <-m.cfg.Clock.TickAfter(channelPoll):
		}
	}
	m.log.Warnf("Channel with recipient %v still inactive; not "+
		"delivering until it registers again", peer)
	return false
}

// ChannelReady reports whether lnd forwards to peer now: it has an active
// channel with peer, or no channel with it at all.
func ChannelReady(ctx context.Context, lister ChannelLister,
	peer route.Vertex) (bool, error) {

	resp, err := lister.ListChannels(ctx,
		&lnrpc.ListChannelsRequest{Peer: peer[:]})
	if err != nil {
		return false, err
	}
	if len(resp.GetChannels()) == 0 {
		return true, nil
	}
	for _, ch := range resp.GetChannels() {
		if ch.GetActive() {
			return true, nil
		}
	}
	return false, nil
}

// reply sends mailbox_registered to peer.
func (m *Mailbox) reply(ctx context.Context, peer route.Vertex,
	msg *RegisteredMsg) {

	data, err := msg.Encode()
	if err == nil {
		_, err = m.cfg.Messages.SendCustomMessage(ctx,
			&lnrpc.SendCustomMessageRequest{
				Peer: peer[:],
				Type: RegisteredMsgType,
				Data: data,
			})
	}
	if err != nil {
		m.countReg(RegReplyFailed)
		m.log.Warnf("Answering the registration of %v: %v", peer, err)
	}
}
