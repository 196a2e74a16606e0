//go:build itest

package itest

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/stretchr/testify/require"
)

// startServerLSP restarts L's holdd with the lsp and server roles for one
// test, and restores the default roles after it.
func startServerLSP(t *testing.T, net *Network, args ...string) {
	t.Helper()
	require.NoError(t, net.RestartHoldd(t.Context(),
		append([]string{"--role=lsp,server"}, args...)...))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			2*DefaultTimeout)
		defer cancel()
		require.NoError(t, net.RestartHoldd(ctx))
	})
}

// listAsyncRecipients returns holdcli listasyncrecipients' recipients.
func listAsyncRecipients(t *testing.T,
	cli *holdcli) []*holdrpc.AsyncRecipient {

	t.Helper()
	var list holdrpc.ListAsyncRecipientsResponse
	cli.decode(t, &list, "listasyncrecipients")
	return list.Recipients
}

// TestAsyncRecipientRegistration registers an async recipient with L's
// static invoice server through holdcli: the paths it prints are blinded
// paths whose introduction node is L's lnd, as a wallet gets them out of
// band; the registration survives a restart of holdd and goes away when
// removed.
func TestAsyncRecipientRegistration(t *testing.T) {
	net := Net(t)
	startServerLSP(t, net)
	cli := newHoldcli(t, net)
	id := []byte("wallet-7")

	var added holdrpc.AddAsyncRecipientResponse
	cli.decode(t, &added, "addasyncrecipient", "--id", string(id),
		"--expiry", "720h", "--paths", "2")
	require.Equal(t, id, added.Recipient.Id)
	require.NotZero(t, added.Recipient.ExpiresAtUnix)
	require.Len(t, added.Paths, 2)
	for _, raw := range added.Paths {
		r := bytes.NewReader(raw)
		p, err := onionmsg.DecodeBlindedPath(r)
		require.NoError(t, err, "path %x", raw)
		require.Zero(t, r.Len())
		require.NotNil(t, p.IntroNode)
		require.Equal(t, net.L.PubKeyHex,
			hex.EncodeToString(p.IntroNode.SerializeCompressed()))
		// The peer link: [L's lnd -> L's holdd].
		require.Len(t, p.Hops, 2)
	}

	listed := listAsyncRecipients(t, cli)
	require.Len(t, listed, 1)
	require.Equal(t, id, listed[0].Id)
	require.Equal(t, added.Recipient.ExpiresAtUnix,
		listed[0].ExpiresAtUnix)
	require.Empty(t, listed[0].Invoices)

	// The registration is in holdd's database.
	require.NoError(t, net.RestartHoldd(t.Context(), "--role=lsp,server"))
	listed = listAsyncRecipients(t, cli)
	require.Len(t, listed, 1)
	require.Equal(t, id, listed[0].Id)

	// The same id given in hex names the same recipient.
	cli.mustRun(t, "removeasyncrecipient", "--id", hex.EncodeToString(id))
	require.Empty(t, listAsyncRecipients(t, cli))
	res := cli.run(t.Context(), nil, "removeasyncrecipient", "--id",
		string(id))
	require.Error(t, res.err)
	require.Contains(t, res.stderr, "no async recipient")
}
