//go:build itest

package itest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdd/holdd/holdrpc"
	"github.com/stretchr/testify/require"
)

// StartRecipientHoldd starts a second holdd, in the recipient role, on P
// with args added to the harness's flags, and waits until its peer link
// to P's lnd is up. It keeps its store across restarts, so receive paths
// minted before a restart keep working.
func (n *Network) StartRecipientHoldd(ctx context.Context,
	args ...string) (*Holdd, error) {

	n.holddMtx.Lock()
	defer n.holddMtx.Unlock()

	if n.RecipientHoldd != nil {
		return nil, errors.New("recipient holdd already running")
	}
	if n.holddBin == "" {
		return nil, errors.New("no holdd binary (network set up " +
			"with SkipHoldd)")
	}
	if n.recipientRPCAddr == "" {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		n.recipientRPCAddr = addr
	}
	h, err := n.startHolddOn(ctx, n.P,
		filepath.Join(n.BaseDir, "holdd-recipient"), n.recipientRPCAddr,
		"holdd-recipient.log", false,
		append([]string{"--role=recipient"}, args...))
	if err != nil {
		return nil, err
	}
	n.RecipientHoldd = h
	return h, nil
}

// StopRecipientHoldd stops the recipient holdd if it runs.
func (n *Network) StopRecipientHoldd() error {
	n.holddMtx.Lock()
	defer n.holddMtx.Unlock()

	if n.RecipientHoldd == nil {
		return nil
	}
	h := n.RecipientHoldd
	n.RecipientHoldd = nil
	h.close()
	return h.proc.stop(15 * time.Second)
}

// info returns holdd's GetInfo.
func (h *Holdd) info(t *testing.T) *holdrpc.GetInfoResponse {
	t.Helper()
	info, err := h.Client.GetInfo(t.Context(), &holdrpc.GetInfoRequest{})
	require.NoError(t, err)
	return info
}
