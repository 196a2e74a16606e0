package main

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/holdd/holdd/holdrpc"
	"github.com/stretchr/testify/require"
)

// receiveFake answers the recipient-role methods and records requests.
type receiveFake struct {
	*fakeHold

	mu      sync.Mutex
	adds    []*holdrpc.AddReceivePathsRequest
	lists   []*holdrpc.ListReceivePathsRequest
	revokes []*holdrpc.RevokeReceivePathRequest
	unregs  []*holdrpc.UnregisterMailboxRequest
}

var testReceivePath = &holdrpc.ReceivePath{
	Id: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Path: []byte{0x02, 0xab},
	IntroductionNode: []byte{0x02, 0x11}, Hops: 2,
	CreatedAtUnix: 1_700_000_000, ExpiresAtUnix: 1_702_592_000,
}

func (f *receiveFake) AddReceivePaths(_ context.Context,
	req *holdrpc.AddReceivePathsRequest) (*holdrpc.ReceivePathsResponse,
	error) {

	f.mu.Lock()
	f.adds = append(f.adds, req)
	f.mu.Unlock()
	return &holdrpc.ReceivePathsResponse{
		Paths: []*holdrpc.ReceivePath{testReceivePath}}, nil
}

func (f *receiveFake) ListReceivePaths(_ context.Context,
	req *holdrpc.ListReceivePathsRequest) (*holdrpc.ReceivePathsResponse,
	error) {

	f.mu.Lock()
	f.lists = append(f.lists, req)
	f.mu.Unlock()
	return &holdrpc.ReceivePathsResponse{}, nil
}

func (f *receiveFake) RevokeReceivePath(_ context.Context,
	req *holdrpc.RevokeReceivePathRequest) (*holdrpc.ReceivePath, error) {

	f.mu.Lock()
	f.revokes = append(f.revokes, req)
	f.mu.Unlock()
	return testReceivePath, nil
}

func (f *receiveFake) UnregisterMailbox(_ context.Context,
	req *holdrpc.UnregisterMailboxRequest) (
	*holdrpc.UnregisterMailboxResponse, error) {

	f.mu.Lock()
	f.unregs = append(f.unregs, req)
	f.mu.Unlock()
	return &holdrpc.UnregisterMailboxResponse{WasRegistered: true}, nil
}

func TestUnregisterMailboxCommand(t *testing.T) {
	fake := &receiveFake{fakeHold: testFake(t)}
	h := newHarnessFor(t, fake)
	peer := "02" + strings.Repeat("ab", 32)

	out, err := h.run("unregistermailbox", peer)
	require.NoError(t, err)
	require.Equal(t, "{\n    \"was_registered\": true\n}\n", out)
	require.Len(t, fake.unregs, 1)
	require.Equal(t, mustHex(t, peer), fake.unregs[0].Peer)

	for _, args := range [][]string{
		{"unregistermailbox"},
		{"unregistermailbox", "02ab"},
		{"listmailbox", "extra"},
	} {
		_, err := h.run(args...)
		require.ErrorIs(t, err, errUsage, args)
	}
	require.Len(t, fake.unregs, 1)
}

func TestReceivePathCommands(t *testing.T) {
	fake := &receiveFake{fakeHold: testFake(t)}
	h := newHarnessFor(t, fake)

	out, err := h.run("addreceivepaths", "--count", "3", "--expiry", "2h")
	require.NoError(t, err)
	require.Equal(t, `{
    "paths": [
        {
            "id": "0102030405060708",
            "path": "02ab",
            "introduction_node": "0211",
            "hops": 2,
            "created_at_unix": "1700000000",
            "expires_at_unix": "1702592000",
            "mailbox_lsp": "",
            "revoked_at_unix": "0",
            "replies": "0",
            "last_reply_at_unix": "0"
        }
    ]
}
`, out)
	_, err = h.run("listreceivepaths", "--all")
	require.NoError(t, err)
	_, err = h.run("revokereceivepath", "0102030405060708")
	require.NoError(t, err)

	require.Len(t, fake.adds, 1)
	require.Equal(t, uint32(3), fake.adds[0].Count)
	require.Equal(t, int64(7200), fake.adds[0].ExpirySeconds)
	require.Len(t, fake.lists, 1)
	require.True(t, fake.lists[0].All)
	require.Len(t, fake.revokes, 1)
	require.Equal(t, []byte{1, 2, 3, 4, 5, 6, 7, 8}, fake.revokes[0].Id)

	// Bad command lines never reach holdd.
	for _, args := range [][]string{
		{"revokereceivepath", "0102"},
		{"revokereceivepath"},
		{"addreceivepaths", "--expiry", "-1h"},
		{"listreceivepaths", "extra"},
	} {
		_, err := h.run(args...)
		require.ErrorIs(t, err, errUsage, args)
	}
	require.Len(t, fake.adds, 1)
	require.Len(t, fake.revokes, 1)
}
