package daemon

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/invoiceserver"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/record"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

func TestChainHash(t *testing.T) {
	h, err := chainHash("mainnet")
	require.NoError(t, err)
	require.Equal(t, bolt12.BitcoinChain, h)
	h, err = chainHash("regtest")
	require.NoError(t, err)
	require.Equal(t, *chaincfg.RegressionNetParams.GenesisHash, h)
	_, err = chainHash("moon")
	require.ErrorIs(t, err, errConfig)
}

type discardSender struct{}

func (discardSender) Send(context.Context, *onionmsg.BlindedPath,
	*onionmsg.BlindedPath, map[uint64][]byte) error {

	return nil
}

// TestServerRoleQueue: the intake's handler queues messages for the
// workers, which count the server's outcome; before Start (and after
// Stop) messages are dropped and counted as busy.
func TestServerRoleQueue(t *testing.T) {
	db, err := store.Open(context.Background(),
		filepath.Join(t.TempDir(), "holdd.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	auth, err := invoiceserver.NewAuthenticator(bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	minter, err := invoiceserver.NewHopMinter(key.PubKey(), nil)
	require.NoError(t, err)
	srv, err := invoiceserver.New(invoiceserver.Config{
		Auth: auth, Minter: minter, Store: db,
		Sender: discardSender{}, Chain: bolt12.BitcoinChain,
		Log: logrus.New(),
	})
	require.NoError(t, err)
	role := &serverRole{srv: srv, log: logrus.New(),
		queue: make(chan *onionmsg.Peeled, 4)}

	// A registration-shaped path_id with a MAC that does not verify.
	forged := append([]byte{byte(invoiceserver.KindRegistration)},
		make([]byte, invoiceserver.MinPathIDLen)...)
	require.True(t, matchServerPath(forged))
	require.False(t, matchServerPath([]byte{1, 2, 3}))
	msg := &onionmsg.Peeled{
		Final: true,
		Data:  record.NewFinalHopBlindedRouteData(nil, forged),
		FinalTLVs: map[uint64][]byte{
			onionmsg.OfferPathsRequestType: {0},
		},
	}

	ctx := context.Background()
	require.Equal(t, outcomeServerBusy, role.HandleFinalHop(ctx, msg))
	require.NoError(t, role.Start(ctx, func(error) {}))
	require.Equal(t, "invoice_server_queued", role.HandleFinalHop(ctx,
		msg))
	require.Eventually(t, func() bool {
		return role.Counts()[invoiceserver.OutcomeForged] == 1
	}, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, role.Stop())
	require.Equal(t, outcomeServerBusy, role.HandleFinalHop(ctx, msg))
	require.Equal(t, map[string]uint64{invoiceserver.OutcomeForged: 1,
		outcomeServerBusy: 2}, role.Counts())
}
