package holdrpc

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/recipient"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// fakeStore serves fixed records, or panics when told to.
type fakeStore struct {
	recs  []plugin.HeldHTLC
	panic bool
}

func (f *fakeStore) ListHTLCs(context.Context, plugin.ListFilter) (
	[]plugin.HeldHTLC, error) {

	if f.panic {
		panic("list exploded")
	}
	return f.recs, nil
}

func (f *fakeStore) GetHeld(_ context.Context, key plugin.CircuitKey) (
	plugin.HeldHTLC, error) {

	if f.panic {
		panic("get exploded")
	}
	for _, r := range f.recs {
		if r.Key == key {
			return r, nil
		}
	}
	return plugin.HeldHTLC{}, plugin.ErrUnknownHTLC
}

// fakeEngine records the policies set.
type fakeEngine struct {
	policy plugin.Policy
	sets   int
}

func (e *fakeEngine) Stats() plugin.Stats { return plugin.Stats{} }
func (e *fakeEngine) Height() int32       { return 1000 }
func (e *fakeEngine) Release(context.Context, plugin.CircuitKey, lntypes.Hash,
	string) (plugin.ReleaseOutcome, error) {

	return "", nil
}
func (e *fakeEngine) Fail(context.Context, plugin.CircuitKey) error { return nil }
func (e *fakeEngine) Policy() plugin.Policy                         { return e.policy }
func (e *fakeEngine) SetPolicy(p plugin.Policy) error {
	e.sets++
	e.policy = p
	return nil
}

type fakePolicies struct{ saves int }

func (f *fakePolicies) SavePolicy(context.Context, *plugin.Policy) error {
	f.saves++
	return nil
}

// fakeReceiver records the expiries asked for.
type fakeReceiver struct{ ttls []time.Duration }

func (r *fakeReceiver) AddPaths(_ context.Context, _ int,
	ttl time.Duration) ([]recipient.ReceivePath, error) {

	r.ttls = append(r.ttls, ttl)
	return nil, nil
}
func (r *fakeReceiver) ListPaths(context.Context, bool) ([]recipient.ReceivePath,
	error) {

	return nil, nil
}
func (r *fakeReceiver) RevokePath(context.Context, [8]byte) error { return nil }
func (r *fakeReceiver) Counts() map[string]uint64                 { return nil }
func (r *fakeReceiver) MailboxState() (*recipient.Mailbox, bool) {
	return nil, false
}

type fakeStatus struct{}

func (fakeStatus) InterceptorConnected() bool       { return false }
func (fakeStatus) PeerLinkState() string            { return "down" }
func (fakeStatus) ReleaseCounts() map[string]uint64 { return nil }

// panicEvents panics on subscribe, for the stream recovery.
type panicEvents struct{}

func (panicEvents) Subscribe(int) (<-chan plugin.Event, func()) {
	panic("subscribe exploded")
}

var testKey = plugin.CircuitKey{ChanID: 7, HtlcID: 3}

func testRecord() plugin.HeldHTLC {
	return plugin.HeldHTLC{
		Key:             testKey,
		State:           plugin.StateFailed,
		IncomingAmtMsat: 5000,
		OutgoingAmtMsat: 4000,
		HeldAt:          time.Unix(1_700_000_000, 0),
		FailReason:      "deadline",
	}
}

// TestHeldWithoutLSPRole: a node that once ran the lsp role has records;
// without the role (no engine) ListHeld and GetHeld serve them from the
// store instead of dereferencing the missing engine.
func TestHeldWithoutLSPRole(t *testing.T) {
	ctx := context.Background()
	srv := NewServer(ServerConfig{
		Store:  &fakeStore{recs: []plugin.HeldHTLC{testRecord()}},
		Status: fakeStatus{},
		Roles:  []string{"mailbox"},
	})

	list, err := srv.ListHeld(ctx, &ListHeldRequest{})
	require.NoError(t, err)
	require.Len(t, list.Htlcs, 1)
	require.Equal(t, uint64(7), list.Htlcs[0].Incoming.ChanId)
	require.Equal(t, uint64(3), list.Htlcs[0].Incoming.HtlcId)
	require.Equal(t, "failed", list.Htlcs[0].State)
	require.Equal(t, "deadline", list.Htlcs[0].FailReason)
	require.Zero(t, list.Htlcs[0].CurrentHeight)

	h, err := srv.GetHeld(ctx, &GetHeldRequest{
		Incoming: &CircuitKey{ChanId: 7, HtlcId: 3},
	})
	require.NoError(t, err)
	require.Equal(t, uint64(5000), h.IncomingAmtMsat)
	require.Zero(t, h.CurrentHeight)

	// With the engine, the height is filled in.
	srv.cfg.Engine = &fakeEngine{}
	h, err = srv.GetHeld(ctx, &GetHeldRequest{
		Incoming: &CircuitKey{ChanId: 7, HtlcId: 3},
	})
	require.NoError(t, err)
	require.Equal(t, uint32(1000), h.CurrentHeight)
}

// TestRecoveryInterceptors serves over a real gRPC server with the
// recovery interceptors: handlers that panic (unary and stream) answer
// codes.Internal, and the server keeps serving.
func TestRecoveryInterceptors(t *testing.T) {
	unary, stream := RecoveryInterceptors(nil)
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(unary),
		grpc.ChainStreamInterceptor(stream))
	RegisterHoldServer(gs, NewServer(ServerConfig{
		Store:  &fakeStore{panic: true},
		Status: fakeStatus{},
		Events: panicEvents{},
		Engine: &fakeEngine{},
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c := NewHoldClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(),
		10*time.Second)
	defer cancel()

	_, err = c.ListHeld(ctx, &ListHeldRequest{})
	require.Equal(t, codes.Internal, status.Code(err), "%v", err)
	_, err = c.GetHeld(ctx, &GetHeldRequest{
		Incoming: &CircuitKey{ChanId: 1},
	})
	require.Equal(t, codes.Internal, status.Code(err), "%v", err)

	sub, err := c.SubscribeHoldEvents(ctx, &SubscribeHoldEventsRequest{})
	require.NoError(t, err)
	_, err = sub.Recv()
	require.Equal(t, codes.Internal, status.Code(err), "%v", err)

	// Still serving.
	info, err := c.GetInfo(ctx, &GetInfoRequest{})
	require.NoError(t, err)
	require.Equal(t, "down", info.PeerLinkState)
}

// wrapSeconds is a second count whose nanoseconds wrap around int64 to
// about 0.29 s, a valid-looking positive duration.
const wrapSeconds = 18_446_744_074

// TestSetPolicySecondsRange: second counts that do not fit a duration are
// refused with InvalidArgument, and nothing is persisted or applied.
func TestSetPolicySecondsRange(t *testing.T) {
	tests := []struct {
		name     string
		maxHold  int64
		ttl      int64
		wantCode codes.Code
	}{
		{"valid", 3600, 600, codes.OK},
		{"largest the policy allows",
			int64(plugin.MaxPolicyDuration / time.Second),
			int64(plugin.MaxPolicyDuration / time.Second), codes.OK},
		// A duration, but a deadline past what the store can write.
		{"largest duration", maxDurationSeconds, maxDurationSeconds,
			codes.InvalidArgument},
		{"max hold wraps to 0.29s", wrapSeconds, 600,
			codes.InvalidArgument},
		{"max hold one over", maxDurationSeconds + 1, 600,
			codes.InvalidArgument},
		{"max hold max int64", 1<<63 - 1, 600, codes.InvalidArgument},
		{"max hold negative", -1, 600, codes.InvalidArgument},
		{"ttl wraps to 0.29s", 3600, wrapSeconds,
			codes.InvalidArgument},
		{"ttl min int64", 3600, -1 << 63, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng := &fakeEngine{policy: plugin.DefaultPolicy()}
			pol := &fakePolicies{}
			srv := NewServer(ServerConfig{
				Engine: eng, Policies: pol,
				Store: &fakeStore{}, Status: fakeStatus{},
			})
			rp := MarshalPolicy(plugin.DefaultPolicy())
			rp.MaxHoldTimeSeconds = tc.maxHold
			rp.PendingReleaseTtlSeconds = tc.ttl

			got, err := srv.SetPolicy(context.Background(),
				&SetPolicyRequest{Policy: rp})
			require.Equal(t, tc.wantCode, status.Code(err), "%v",
				err)
			if tc.wantCode != codes.OK {
				require.Nil(t, got)
				require.Zero(t, pol.saves)
				require.Zero(t, eng.sets)
				require.Equal(t, plugin.DefaultPolicy(),
					eng.policy)
				return
			}
			require.Equal(t, 1, pol.saves)
			require.Equal(t, 1, eng.sets)
			require.Equal(t, time.Duration(tc.maxHold)*time.Second,
				eng.policy.MaxHoldTime)
			require.Equal(t, time.Duration(tc.ttl)*time.Second,
				eng.policy.PendingReleaseTTL)
		})
	}
}

// TestAddReceivePathsExpiryRange: an expiry that does not fit a duration
// is refused with InvalidArgument before the receiver is asked.
func TestAddReceivePathsExpiryRange(t *testing.T) {
	tests := []struct {
		name     string
		expiry   int64
		wantCode codes.Code
		wantTTL  time.Duration
	}{
		{"default", 0, codes.OK, 0},
		{"a day", 86400, codes.OK, 24 * time.Hour},
		{"largest", maxDurationSeconds, codes.OK,
			time.Duration(maxDurationSeconds) * time.Second},
		{"wraps to 0.29s", wrapSeconds, codes.InvalidArgument, 0},
		{"max int64", 1<<63 - 1, codes.InvalidArgument, 0},
		{"negative", -5, codes.InvalidArgument, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeReceiver{}
			srv := NewServer(ServerConfig{
				Receiver: r, Store: &fakeStore{},
				Status: fakeStatus{},
			})
			_, err := srv.AddReceivePaths(context.Background(),
				&AddReceivePathsRequest{
					Count: 1, ExpirySeconds: tc.expiry,
				})
			require.Equal(t, tc.wantCode, status.Code(err), "%v",
				err)
			if tc.wantCode != codes.OK {
				require.Empty(t, r.ttls)
				require.Contains(t, err.Error(),
					"expiry_seconds")
				return
			}
			require.Equal(t, []time.Duration{tc.wantTTL}, r.ttls)
		})
	}
}
