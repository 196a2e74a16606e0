//go:build itest

package itest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/record"
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

// TestAsyncRecipientOfferPaths plays an async recipient on S: it sends
// offer_paths_request over the registration path holdcli printed, with a
// reply path to S's lnd. L's holdd's intake hands it to the server, which
// checks the path_id and the recipient and sends offer_paths through L's
// lnd (stock lnd on S then drops it for its unknown even type 75542, so
// the server's counter is what the test reads). The same request for a
// slot beyond server.maxslots is dropped and counted.
func TestAsyncRecipientOfferPaths(t *testing.T) {
	net := Net(t)
	ctx := t.Context()
	addr, err := freeAddr()
	require.NoError(t, err)
	startServerLSP(t, net, "--prometheus.listen="+addr,
		"--server.maxslots=4")
	cli := newHoldcli(t, net)

	var added holdrpc.AddAsyncRecipientResponse
	cli.decode(t, &added, "addasyncrecipient", "--id", "wallet-8")
	t.Cleanup(func() {
		cli.run(context.Background(), nil, "removeasyncrecipient",
			"--id", "wallet-8")
	})
	regPath, err := onionmsg.DecodeBlindedPath(bytes.NewReader(
		added.Paths[0]))
	require.NoError(t, err)

	sKey, err := btcec.ParsePubKey(net.S.PubKey)
	require.NoError(t, err)
	replyKey, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	replyPath, err := onionmsg.BuildBlindedPath(replyKey, []onionmsg.Hop{{
		NodeID: sKey,
		Data: record.NewFinalHopBlindedRouteData(nil,
			[]byte("s-reply")),
	}}, true)
	require.NoError(t, err)

	send := func(slot uint16) {
		t.Helper()
		sessionKey, err := btcec.NewPrivateKey()
		require.NoError(t, err)
		msg, err := onionmsg.BuildOnionMessage(sessionKey, regPath,
			replyPath, map[uint64][]byte{
				onionmsg.OfferPathsRequestType: onionmsg.
					EncodeOfferPathsRequest(
						onionmsg.OfferPathsRequest{
							InvoiceSlot: slot}),
			})
		require.NoError(t, err)
		require.NoError(t, net.S.SendOnionMessage(ctx, net.L.PubKey,
			msg.PathKey.SerializeCompressed(), msg.OnionBlob))
	}
	metric := func(outcome string) string {
		return fmt.Sprintf("holdd_invoice_server_messages_total"+
			"{outcome=%q}", outcome)
	}

	send(1)
	waitMetric(t, addr, metric("offer_paths_sent"), 1)
	send(4)
	waitMetric(t, addr, metric("slot_out_of_range"), 1)
	samples, err := scrapeMetrics(ctx, addr)
	require.NoError(t, err)
	require.Equal(t, float64(1), samples[metric("offer_paths_sent")])
}
