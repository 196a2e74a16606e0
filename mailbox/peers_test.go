package mailbox

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// offlineTracked is how many peers the mailbox keeps an offline count for.
func (m *Mailbox) offlineTracked() int {
	m.mu.Lock()
	defer m.mu.Unlock()

	n := 0
	for _, r := range m.recipients {
		if r.offlineGen > 0 {
			n++
		}
	}

	return n
}

// TestOfflineCountsOnlyRecipients: lnd reports every peer that comes and
// goes; only registered recipients get an offline count, so the map stays
// as small as the registrations however many strangers connect, and a
// recipient's count goes when its registration does.
func TestOfflineCountsOnlyRecipients(t *testing.T) {
	h := newHarness(t, nil)
	recipient := nodeID(t, 1)
	h.register(recipient)
	h.start()

	for i := range 100 {
		stranger := nodeID(t, byte(10+i))
		h.peerEvent(stranger, true)
		h.peerEvent(stranger, false)
	}
	require.Zero(t, h.mb.offlineTracked())

	h.peerEvent(recipient, true)
	h.peerEvent(recipient, false)
	h.peerEvent(recipient, true)
	h.peerEvent(recipient, false)
	require.Equal(t, 1, h.mb.offlineTracked())
	h.mb.mu.Lock()
	require.EqualValues(t, 2, h.mb.recipients[recipient].offlineGen)
	h.mb.mu.Unlock()

	found, err := h.mb.Unregister(context.Background(), recipient)
	require.NoError(t, err)
	require.True(t, found)
	require.Zero(t, h.mb.offlineTracked())

	// Unregistered now: its comings and goings are a stranger's.
	h.peerEvent(recipient, true)
	h.peerEvent(recipient, false)
	require.Zero(t, h.mb.offlineTracked())
}
