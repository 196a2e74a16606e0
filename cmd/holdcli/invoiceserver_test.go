package main

import (
	"context"
	"sync"
	"testing"

	"github.com/holdd/holdd/holdrpc"
	"github.com/stretchr/testify/require"
)

// serverFake records the async recipient requests.
type serverFake struct {
	*fakeHold

	mu      sync.Mutex
	adds    []*holdrpc.AddAsyncRecipientRequest
	removes []*holdrpc.RemoveAsyncRecipientRequest
}

func (f *serverFake) AddAsyncRecipient(_ context.Context,
	req *holdrpc.AddAsyncRecipientRequest) (
	*holdrpc.AddAsyncRecipientResponse, error) {

	f.mu.Lock()
	f.adds = append(f.adds, req)
	f.mu.Unlock()
	return &holdrpc.AddAsyncRecipientResponse{
		Recipient: &holdrpc.AsyncRecipient{Id: req.Id,
			CreatedAtUnix: 100},
		Paths: [][]byte{{0x02, 0xab}},
	}, nil
}

func (f *serverFake) RemoveAsyncRecipient(_ context.Context,
	req *holdrpc.RemoveAsyncRecipientRequest) (
	*holdrpc.RemoveAsyncRecipientResponse, error) {

	f.mu.Lock()
	f.removes = append(f.removes, req)
	f.mu.Unlock()
	return &holdrpc.RemoveAsyncRecipientResponse{}, nil
}

func (f *serverFake) ListAsyncRecipients(context.Context,
	*holdrpc.ListAsyncRecipientsRequest) (
	*holdrpc.ListAsyncRecipientsResponse, error) {

	return &holdrpc.ListAsyncRecipientsResponse{
		Recipients: []*holdrpc.AsyncRecipient{{Id: []byte("alice"),
			Invoices: []*holdrpc.StaticInvoiceSlot{{Slot: 2,
				Size: 700}}}},
	}, nil
}

func TestAsyncRecipientCommands(t *testing.T) {
	fake := &serverFake{fakeHold: testFake(t)}
	h := newHarnessFor(t, fake)

	out, err := h.run("addasyncrecipient", "--id", "alice", "--expiry",
		"2h", "--paths", "2")
	require.NoError(t, err)
	require.Equal(t, `{
    "recipient": {
        "id": "616c696365",
        "created_at_unix": "100",
        "expires_at_unix": "0",
        "invoices": []
    },
    "paths": [
        "02ab"
    ]
}
`, out)
	require.Len(t, fake.adds, 1)
	require.Equal(t, []byte("alice"), fake.adds[0].Id)
	require.EqualValues(t, 7200, fake.adds[0].ExpirySeconds)
	require.EqualValues(t, 2, fake.adds[0].PathCount)

	// A hex id is taken as its bytes.
	_, err = h.run("removeasyncrecipient", "--id", "00ff")
	require.NoError(t, err)
	require.Len(t, fake.removes, 1)
	require.Equal(t, []byte{0, 0xff}, fake.removes[0].Id)

	out, err = h.run("listasyncrecipients")
	require.NoError(t, err)
	require.Contains(t, out, `"id": "616c696365"`)
	require.Contains(t, out, `"slot": 2`)

	for _, args := range [][]string{
		{"addasyncrecipient"},
		{"addasyncrecipient", "--id", "a", "--expiry", "-1h"},
		{"removeasyncrecipient"},
		{"listasyncrecipients", "extra"},
	} {
		_, err := h.run(args...)
		require.ErrorIs(t, err, errUsage, args)
	}
	require.Len(t, fake.adds, 1)
}
