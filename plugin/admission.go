package plugin

import (
	"context"

	"github.com/lightningnetwork/lnd/routing/route"
)

// ChannelInfoSource describes lnd's channels: the peer on an incoming
// channel (real or alias short channel id) and whether the channel is
// private, i.e. not announced to the network.
type ChannelInfoSource interface {
	ChannelInfo(ctx context.Context, chanID uint64) (peer route.Vertex,
		private bool, err error)
}

// Admission says whose HTLCs holdd holds. A hold ties up the sender's
// funds and hands the release paths to the incoming peer, so it is only
// for the LSP's own clients: any channel peer can set hold_htlc, including
// a routing node forwarding somebody else's payment.
type Admission struct {
	// AllowPeers are incoming peers whose HTLCs may be held whatever
	// their channel (hold.allowpeer).
	AllowPeers map[route.Vertex]bool

	// AllowPublic admits HTLCs that arrive over public (announced)
	// channels from any peer (hold.allowpublic).
	AllowPublic bool
}

// Eligible reports whether an HTLC that arrived over a channel with peer,
// private or not, may be held: wallet clients of an LSP have private
// channels; anything else needs the operator's say.
func (a Admission) Eligible(peer route.Vertex, private bool) bool {
	return private || a.AllowPublic || a.AllowPeers[peer]
}

// Decisions counted for flagged HTLCs the engine does not hold because of
// who sent them; both resume the HTLC as an ordinary forward.
const (
	// DecisionNotClient: the incoming peer is not one of the LSP's
	// clients (public channel, not allow-listed).
	DecisionNotClient = "not_client"

	// DecisionChannelUnknown: lnd could not say who is on the incoming
	// channel; holding it could hold somebody else's payment, failing it
	// would fail it, so it is forwarded.
	DecisionChannelUnknown = "channel_unknown"
)
