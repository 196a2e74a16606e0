package release

import "time"

// DeliveryPeer is a peer that has shown it reads holdd's path deliveries.
type DeliveryPeer struct {
	Peer        [33]byte
	ProvenAt    time.Time
	RefreshedAt time.Time
}
