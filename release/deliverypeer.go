package release

import (
	"time"

	"github.com/lightningnetwork/lnd/routing/route"
)

// DeliveryPeer is a peer that has shown it reads holdd's path deliveries.
type DeliveryPeer struct {
	Peer        route.Vertex
	ProvenAt    time.Time
	RefreshedAt time.Time
}
