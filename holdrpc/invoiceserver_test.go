package holdrpc

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/holdd/holdd/invoiceserver"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// nopSender sends nothing; the RPCs send no messages.
type nopSender struct{}

func (nopSender) Send(context.Context, *onionmsg.BlindedPath,
	*onionmsg.BlindedPath, map[uint64][]byte) error {

	return nil
}

// newInvoiceServerRPC serves the async recipient RPCs from a real static
// invoice server on a real store.
func newInvoiceServerRPC(t *testing.T, clk clock.Clock) (*Server,
	*store.Store, *btcec.PublicKey) {

	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "holdd.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	lndKey, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	holddKey, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	auth, err := invoiceserver.NewAuthenticator(bytes.Repeat([]byte{7},
		32))
	require.NoError(t, err)
	minter, err := invoiceserver.NewHopMinter(lndKey.PubKey(),
		holddKey.PubKey())
	require.NoError(t, err)
	srv, err := invoiceserver.New(invoiceserver.Config{
		Auth:          auth,
		Minter:        minter,
		Store:         db,
		Sender:        nopSender{},
		Chain:         *chaincfg.RegressionNetParams.GenesisHash,
		Clock:         clk,
		MaxRecipients: 2,
	})
	require.NoError(t, err)
	return NewServer(ServerConfig{Status: fakeStatus{},
		InvoiceServer: srv}), db, lndKey.PubKey()
}

// TestAsyncRecipientRPCs adds, lists and removes recipients, with the
// invoices kept for them, and checks the errors each call maps to.
func TestAsyncRecipientRPCs(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	rpc, db, lndKey := newInvoiceServerRPC(t, clock.NewTestClock(now))

	resp, err := rpc.AddAsyncRecipient(ctx, &AddAsyncRecipientRequest{
		Id: []byte("bob"), ExpirySeconds: 3600, PathCount: 2,
	})
	require.NoError(t, err)
	require.Equal(t, []byte("bob"), resp.Recipient.Id)
	require.Equal(t, now.Unix(), resp.Recipient.CreatedAtUnix)
	require.Equal(t, now.Unix()+3600, resp.Recipient.ExpiresAtUnix)
	require.Len(t, resp.Paths, 2)
	for _, raw := range resp.Paths {
		p, err := onionmsg.DecodeBlindedPath(bytes.NewReader(raw))
		require.NoError(t, err)
		require.True(t, p.IntroNode.IsEqual(lndKey))
		require.Len(t, p.Hops, 2)
	}

	// No path count means one; no expiry means never.
	resp, err = rpc.AddAsyncRecipient(ctx, &AddAsyncRecipientRequest{
		Id: []byte("alice")})
	require.NoError(t, err)
	require.Len(t, resp.Paths, 1)
	require.Zero(t, resp.Recipient.ExpiresAtUnix)

	// A stored invoice shows in the listing under its recipient.
	require.NoError(t, db.PutStaticInvoice(ctx, invoiceserver.StaticInvoice{
		RecipientID: []byte("bob"), Slot: 3, Invoice: make([]byte, 300),
		OfferID: [32]byte{9}, ForwardPath: []byte{1},
		ExpiresAt: now.Add(time.Hour), StoredAt: now,
	}))
	list, err := rpc.ListAsyncRecipients(ctx, &ListAsyncRecipientsRequest{})
	require.NoError(t, err)
	require.Len(t, list.Recipients, 2)
	require.Equal(t, []byte("alice"), list.Recipients[0].Id)
	require.Empty(t, list.Recipients[0].Invoices)
	require.Equal(t, []byte("bob"), list.Recipients[1].Id)
	require.Len(t, list.Recipients[1].Invoices, 1)
	inv := list.Recipients[1].Invoices[0]
	require.EqualValues(t, 3, inv.Slot)
	require.EqualValues(t, 300, inv.Size)
	require.Equal(t, append([]byte{9}, make([]byte, 31)...), inv.OfferId)
	require.Equal(t, now.Add(time.Hour).Unix(), inv.ExpiresAtUnix)

	codeOf := func(err error) codes.Code {
		s, _ := status.FromError(err)
		return s.Code()
	}
	for _, tc := range []struct {
		name string
		req  *AddAsyncRecipientRequest
		want codes.Code
	}{
		{"empty id", &AddAsyncRecipientRequest{}, codes.InvalidArgument},
		{"id too long", &AddAsyncRecipientRequest{
			Id: make([]byte, 1025)}, codes.InvalidArgument},
		{"too many paths", &AddAsyncRecipientRequest{Id: []byte("c"),
			PathCount: 9}, codes.InvalidArgument},
		{"expiry under a minute", &AddAsyncRecipientRequest{
			Id: []byte("c"), ExpirySeconds: 30},
			codes.InvalidArgument},
		{"expiry overflows", &AddAsyncRecipientRequest{
			Id: []byte("c"), ExpirySeconds: 1 << 62},
			codes.InvalidArgument},
		{"beyond maxrecipients", &AddAsyncRecipientRequest{
			Id: []byte("carol")}, codes.ResourceExhausted},
	} {
		_, err := rpc.AddAsyncRecipient(ctx, tc.req)
		require.Equal(t, tc.want, codeOf(err), tc.name)
	}

	_, err = rpc.RemoveAsyncRecipient(ctx, &RemoveAsyncRecipientRequest{
		Id: []byte("bob")})
	require.NoError(t, err)
	_, err = rpc.RemoveAsyncRecipient(ctx, &RemoveAsyncRecipientRequest{
		Id: []byte("bob")})
	require.Equal(t, codes.NotFound, codeOf(err))
	list, err = rpc.ListAsyncRecipients(ctx, &ListAsyncRecipientsRequest{})
	require.NoError(t, err)
	require.Len(t, list.Recipients, 1)
	require.Equal(t, []byte("alice"), list.Recipients[0].Id)
}

// TestAsyncRecipientRPCsWithoutServerRole: each call says the role is off.
func TestAsyncRecipientRPCsWithoutServerRole(t *testing.T) {
	ctx := context.Background()
	srv := NewServer(ServerConfig{Status: fakeStatus{}})
	_, err := srv.AddAsyncRecipient(ctx, &AddAsyncRecipientRequest{
		Id: []byte("a")})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	_, err = srv.RemoveAsyncRecipient(ctx, &RemoveAsyncRecipientRequest{
		Id: []byte("a")})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	_, err = srv.ListAsyncRecipients(ctx, &ListAsyncRecipientsRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
}
