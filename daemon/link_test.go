package daemon

import (
	"testing"

	"github.com/holdd/holdd/release/peerlink"
	"github.com/stretchr/testify/require"
)

// TestLinkStatus: the transport's state starts disconnected, is connected
// only in peerlink.StateConnected, and GetInfo names it as before.
func TestLinkStatus(t *testing.T) {
	tests := []struct {
		state     peerlink.State
		connected bool
		name      string
	}{
		{peerlink.StateDisconnected, false, "disconnected"},
		{peerlink.StateConnecting, false, "connecting"},
		{peerlink.StateConnected, true, "connected"},
	}
	link := &linkStatus{}
	require.Equal(t, peerlink.StateDisconnected, link.State())
	st := &status{link: link}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			link.set(tc.state)
			require.Equal(t, tc.state, link.State())
			require.Equal(t, tc.connected, link.Connected())
			require.Equal(t, tc.name, st.PeerLinkState())
			require.False(t, st.InterceptorConnected())
		})
	}
}
