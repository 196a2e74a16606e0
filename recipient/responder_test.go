package recipient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/release/onionmsg"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_800_000_000, 0).UTC()

func testKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

// fakeSender records replies. With block set, each send waits until
// block is closed or the send's context ends.
type fakeSender struct {
	mu    sync.Mutex
	sent  []*onionmsg.BlindedPath
	err   error
	block chan struct{}

	// entered, if set, learns of every send as it starts.
	entered chan struct{}
}

func (f *fakeSender) SendRelease(ctx context.Context,
	replyPath *onionmsg.BlindedPath) (ReplyRoute, error) {

	f.mu.Lock()
	block, err, entered := f.block, f.err, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ReplyRoute{}, ctx.Err()
		}
	}
	if err != nil {
		return ReplyRoute{}, err
	}
	f.mu.Lock()
	f.sent = append(f.sent, replyPath)
	f.mu.Unlock()
	return ReplyRoute{Peer: route.Vertex{0x02, 0x99}}, nil
}

func (f *fakeSender) sentPaths() []*onionmsg.BlindedPath {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*onionmsg.BlindedPath(nil), f.sent...)
}

// recordedEvents collects the responder's events, from any goroutine.
type recordedEvents struct {
	mu  sync.Mutex
	all []Event
	ch  chan Event
}

func (r *recordedEvents) add(ev Event) {
	r.mu.Lock()
	r.all = append(r.all, ev)
	r.mu.Unlock()
	r.ch <- ev
}

func (r *recordedEvents) list() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.all...)
}

// next waits for the next event.
func (r *recordedEvents) next(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-r.ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return Event{}
	}
}

// handle hands one message to the responder and returns its final
// outcome: at once, or from the event its reply worker publishes.
func (h *harness) handle(t *testing.T, id []byte,
	reply *onionmsg.BlindedPath) string {

	t.Helper()
	got := h.r.HandleHeldHTLCAvailable(context.Background(), id, reply)
	ev := h.events.next(t)
	if got != OutcomeQueued {
		require.Equal(t, got, ev.Outcome)
	}
	return ev.Outcome
}

type harness struct {
	lnd, holdd *btcec.PrivateKey
	auth       *release.Authenticator
	db         TestStore
	sender     *fakeSender
	clock      *clock.TestClock
	events     *recordedEvents
	r          *Responder
}

func newHarness(t *testing.T, holddKey bool) *harness {
	t.Helper()
	return newHarnessWith(t, holddKey, nil)
}

func newHarnessWith(t *testing.T, holddKey bool,
	mutate func(*Config)) *harness {

	t.Helper()
	db, err := OpenTestStore(filepath.Join(t.TempDir(), "holdd.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	auth, err := release.NewAuthenticator(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)

	h := &harness{
		lnd: testKey(0x01), holdd: testKey(0x02), auth: auth, db: db,
		sender: &fakeSender{}, clock: clock.NewTestClock(t0),
		events: &recordedEvents{ch: make(chan Event, 64)},
	}
	cfg := Config{
		Auth: auth, Store: db, Sender: h.sender,
		LndKey: h.lnd.PubKey(), ReplyBurst: 2,
		ReplyInterval: 10 * time.Second, OnEvent: h.events.add,
		Clock: h.clock, Logger: quietLogger(),
	}
	if holddKey {
		cfg.HolddKey = h.holdd.PubKey()
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h.r, err = New(cfg)
	require.NoError(t, err)
	h.r.Start()
	t.Cleanup(h.r.Stop)
	return h
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func peel(t *testing.T, k *btcec.PrivateKey,
	msg *lnwire.OnionMessage) *onionmsg.Peeled {

	t.Helper()
	p, err := onionmsg.NewPeeler(&sphinx.PrivKeyECDH{PrivKey: k}).Peel(msg)
	require.NoError(t, err)
	return p
}

func replyPath(t *testing.T) *onionmsg.BlindedPath {
	t.Helper()
	p, err := onionmsg.BuildBlindedPath(testKey(0x33), hops(
		bytes.Repeat([]byte{0xee}, 20), testKey(0x44).PubKey(),
		nil, nil), false)
	require.NoError(t, err)
	return p
}

// deliver sends held_htlc_available over a stored path the way a sender
// would, peels it hop by hop with each node's key, checks every hop, and
// returns what the final hop (holdd) read.
func deliver(t *testing.T, p ReceivePath,
	keys []*btcec.PrivateKey, reply *onionmsg.BlindedPath) *onionmsg.Peeled {

	t.Helper()
	path, err := onionmsg.DecodeBlindedPath(bytes.NewReader(p.Path))
	require.NoError(t, err)
	require.True(t, path.IntroNode.IsEqual(keys[0].PubKey()))
	msg, err := onionmsg.BuildOnionMessage(testKey(0x55), path, reply,
		map[uint64][]byte{onionmsg.HeldHTLCAvailableType: {0}})
	require.NoError(t, err)
	for i, k := range keys[:len(keys)-1] {
		peeled := peel(t, k, msg)
		require.False(t, peeled.Final, "hop %d", i)
		require.True(t, peeled.NextNodeID.IsEqual(keys[i+1].PubKey()),
			"hop %d forwards to the next key", i)
		msg = peeled.NextMessage
	}
	final := peel(t, keys[len(keys)-1], msg)
	require.True(t, final.Final)
	require.Equal(t, []byte{0}, final.FinalTLVs[onionmsg.HeldHTLCAvailableType])
	return final
}

func pathID(t *testing.T, p *onionmsg.Peeled) []byte {
	t.Helper()
	id := p.Data.PathID.UnwrapOrFail(t)
	return id.Val
}

func TestPathLayouts(t *testing.T) {
	lsp, mbox := testKey(0x0a), testKey(0x0b)
	tests := []struct {
		name     string
		holddKey bool
		mailbox  bool
		keys     func(h *harness) []*btcec.PrivateKey
	}{
		{"peer link", true, false, func(h *harness) []*btcec.PrivateKey {
			return []*btcec.PrivateKey{h.lnd, h.holdd}
		}},
		{"custom messages", false, false,
			func(h *harness) []*btcec.PrivateKey {
				return []*btcec.PrivateKey{h.lnd}
			}},
		{"mailbox", true, true, func(h *harness) []*btcec.PrivateKey {
			return []*btcec.PrivateKey{lsp, mbox, h.lnd, h.holdd}
		}},
		{"mailbox, custom messages", false, true,
			func(h *harness) []*btcec.PrivateKey {
				return []*btcec.PrivateKey{lsp, mbox, h.lnd}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, tc.holddKey)
			if tc.mailbox {
				h.r.SetMailbox(&Mailbox{
					LSPKey: lsp.PubKey(), MailboxKey: mbox.PubKey(),
				})
			}
			paths, err := h.r.AddPaths(ctx, 2, time.Hour)
			require.NoError(t, err)
			require.Len(t, paths, 2)
			require.NotEqual(t, paths[0].ID, paths[1].ID)
			require.NotEqual(t, paths[0].Path, paths[1].Path)
			for _, p := range paths {
				require.Equal(t, t0.Add(time.Hour), p.ExpiresAt)
				if tc.mailbox {
					require.Equal(t, lsp.PubKey().
						SerializeCompressed(), p.MailboxLSP)
				}
				reply := replyPath(t)
				final := deliver(t, p, tc.keys(h), reply)
				require.True(t, final.ReplyPath.Equal(reply))
				claim, err := h.auth.VerifyReceive(pathID(t, final), t0)
				require.NoError(t, err)
				require.Equal(t, p.ID, claim.PathID)
			}
			listed, err := h.r.ListPaths(ctx, false)
			require.NoError(t, err)
			require.Len(t, listed, 2)
		})
	}
}

func TestAddPathsLimits(t *testing.T) {
	h := newHarness(t, true)
	ctx := context.Background()
	_, err := h.r.AddPaths(ctx, 0, time.Hour)
	require.ErrorIs(t, err, ErrInvalidRequest)
	_, err = h.r.AddPaths(ctx, MaxPathsPerCall+1, time.Hour)
	require.ErrorIs(t, err, ErrInvalidRequest)
	_, err = h.r.AddPaths(ctx, 1, time.Second)
	require.ErrorIs(t, err, ErrInvalidRequest)
	listed, err := h.r.ListPaths(ctx, true)
	require.NoError(t, err)
	require.Empty(t, listed)

	// A wanted mailbox that has not accepted us yet: no paths, since
	// they would not reach this node while it is offline.
	h.r.WantMailbox()
	_, err = h.r.AddPaths(ctx, 1, time.Hour)
	require.ErrorIs(t, err, ErrMailboxPending)
	h.r.SetMailbox(&Mailbox{LSPKey: testKey(0x0a).PubKey(),
		MailboxKey: testKey(0x0b).PubKey()})
	withMB, err := h.r.AddPaths(ctx, 1, time.Hour)
	require.NoError(t, err)
	require.Equal(t, testKey(0x0a).PubKey().SerializeCompressed(),
		withMB[0].MailboxLSP)
	h.r.SetMailbox(nil)
	h.r.mu.Lock()
	h.r.wantMB = false
	h.r.mu.Unlock()

	// No expiry asked: the configured default (30 days).
	p, err := h.r.AddPaths(ctx, 1, 0)
	require.NoError(t, err)
	require.Equal(t, t0.Add(30*24*time.Hour), p[0].ExpiresAt)
}

func TestHandleHeldHTLCAvailable(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, true)
	paths, err := h.r.AddPaths(ctx, 3, time.Hour)
	require.NoError(t, err)
	ids := make([][]byte, len(paths))
	for i, p := range paths {
		ids[i] = pathID(t, deliver(t, p,
			[]*btcec.PrivateKey{h.lnd, h.holdd}, replyPath(t)))
	}
	reply := replyPath(t)

	// Authentic, but holdd never stored it.
	unknown := h.auth.MintReceive(release.ReceiveClaim{
		PathID: [8]byte{0xde, 0xad}, ExpiresAt: t0.Add(time.Hour),
	})
	forged := append([]byte(nil), ids[0]...)
	forged[len(forged)-1] ^= 1
	require.NoError(t, h.r.RevokePath(ctx, paths[2].ID))

	steps := []struct {
		name    string
		id      []byte
		reply   *onionmsg.BlindedPath
		advance time.Duration
		want    string
		sent    int
	}{
		{"replied", ids[0], reply, 0, OutcomeReplied, 1},
		{"second within burst", ids[0], reply, 0, OutcomeReplied, 2},
		{"over the burst", ids[0], reply, 0, OutcomeRateLimited, 2},
		{"other path has its own bucket", ids[1], reply, 0,
			OutcomeReplied, 3},
		{"refilled after the interval", ids[0], reply,
			10 * time.Second, OutcomeReplied, 4},
		{"no reply path", ids[1], nil, 0, OutcomeNoReplyPath, 4},
		{"forged", forged, reply, 0, OutcomeForged, 4},
		{"unknown", unknown, reply, 0, OutcomeUnknownPath, 4},
		{"revoked", ids[2], reply, 0, OutcomeRevoked, 4},
		{"release path_id", h.auth.Mint(release.Claim{
			ExpiresAt: t0.Add(time.Hour)}), reply, 0,
			OutcomeMalformed, 4},
		{"expired", ids[1], reply, time.Hour, OutcomeExpired, 4},
	}
	for _, s := range steps {
		h.clock.SetTime(h.clock.Now().Add(s.advance))
		got := h.handle(t, s.id, s.reply)
		require.Equal(t, s.want, got, s.name)
		require.Len(t, h.sender.sentPaths(), s.sent, s.name)
	}
	for _, p := range h.sender.sentPaths() {
		require.True(t, p.Equal(reply))
	}
	require.Equal(t, map[string]uint64{
		OutcomeReplied: 4, OutcomeRateLimited: 1, OutcomeNoReplyPath: 1,
		OutcomeForged: 1, OutcomeUnknownPath: 1, OutcomeRevoked: 1,
		OutcomeMalformed: 1, OutcomeExpired: 1,
	}, h.r.Counts())
	events := h.events.list()
	require.Len(t, events, 11)
	require.Equal(t, paths[0].ID, events[0].PathID)
	require.Equal(t, route.Vertex{0x02, 0x99}, events[0].Route.Peer)

	stored, err := h.db.GetReceivePath(ctx, paths[0].ID)
	require.NoError(t, err)
	require.Equal(t, uint64(3), stored.Replies)
	require.Equal(t, t0.Add(10*time.Second), stored.LastReplyAt)
}

func TestHandleSendFailure(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, true)
	paths, err := h.r.AddPaths(ctx, 1, time.Hour)
	require.NoError(t, err)
	id := pathID(t, deliver(t, paths[0],
		[]*btcec.PrivateKey{h.lnd, h.holdd}, replyPath(t)))
	h.sender.err = errors.New("peer is not connected")

	got := h.handle(t, id, replyPath(t))
	require.Equal(t, OutcomeSendFailed, got)
	require.ErrorIs(t, h.events.list()[0].Err, h.sender.err)
	stored, err := h.db.GetReceivePath(ctx, paths[0].ID)
	require.NoError(t, err)
	require.Zero(t, stored.Replies)
}

// TestStalledReplyDoesNotBlockHandler: a reply whose send hangs (a reply
// path through a stalled introduction node) never holds up the caller,
// which is the peer link's read loop; replies wait in a bounded queue,
// and what does not fit is dropped and counted.
func TestStalledReplyDoesNotBlockHandler(t *testing.T) {
	ctx := context.Background()
	h := newHarnessWith(t, true, func(c *Config) {
		c.ReplyWorkers = 1
		c.ReplyQueueDepth = 2
		c.SendTimeout = time.Hour
	})
	block := make(chan struct{})
	h.sender.block = block
	paths, err := h.r.AddPaths(ctx, 4, time.Hour)
	require.NoError(t, err)
	ids := make([][]byte, len(paths))
	for i, p := range paths {
		ids[i] = pathID(t, deliver(t, p,
			[]*btcec.PrivateKey{h.lnd, h.holdd}, replyPath(t)))
	}
	reply := replyPath(t)

	outcomes := make(chan string, len(ids))
	handleAll := func(ids ...[]byte) {
		go func() {
			for _, id := range ids {
				outcomes <- h.r.HandleHeldHTLCAvailable(ctx, id,
					reply)
			}
		}()
	}
	collect := func(n int) []string {
		var got []string
		for range n {
			select {
			case o := <-outcomes:
				got = append(got, o)
			case <-time.After(5 * time.Second):
				t.Fatalf("HandleHeldHTLCAvailable blocked behind "+
					"a stalled reply (got %v)", got)
			}
		}
		return got
	}

	// The worker takes the first reply and hangs in its send.
	handleAll(ids[0])
	require.Equal(t, []string{OutcomeQueued}, collect(1))
	require.Eventually(t, func() bool { return h.r.replies.Len() == 0 },
		5*time.Second, time.Millisecond)

	// Two fit in the queue, the fourth does not.
	handleAll(ids[1:]...)
	require.Equal(t, []string{OutcomeQueued, OutcomeQueued, OutcomeBusy},
		collect(3))
	busy := h.events.next(t)
	require.Equal(t, OutcomeBusy, busy.Outcome)
	require.Equal(t, paths[3].ID, busy.PathID)
	require.Equal(t, map[string]uint64{OutcomeBusy: 1}, h.r.Counts())
	require.Empty(t, h.sender.sentPaths())

	close(block)
	for range 3 {
		require.Equal(t, OutcomeReplied, h.events.next(t).Outcome)
	}
	require.Equal(t, map[string]uint64{OutcomeBusy: 1, OutcomeReplied: 3},
		h.r.Counts())
	require.Len(t, h.sender.sentPaths(), 3)
}

// TestStopCancelsStalledReply: Stop ends a hanging send instead of
// waiting out its timeout.
func TestStopCancelsStalledReply(t *testing.T) {
	ctx := context.Background()
	h := newHarnessWith(t, true, func(c *Config) {
		c.SendTimeout = time.Hour
	})
	h.sender.block = make(chan struct{})
	h.sender.entered = make(chan struct{}, 1)
	paths, err := h.r.AddPaths(ctx, 1, time.Hour)
	require.NoError(t, err)
	id := pathID(t, deliver(t, paths[0],
		[]*btcec.PrivateKey{h.lnd, h.holdd}, replyPath(t)))
	require.Equal(t, OutcomeQueued,
		h.r.HandleHeldHTLCAvailable(ctx, id, replyPath(t)))
	<-h.sender.entered

	stopped := make(chan struct{})
	go func() {
		h.r.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop waited for a stalled reply")
	}
	ev := h.events.next(t)
	require.Equal(t, OutcomeSendFailed, ev.Outcome)
	require.ErrorIs(t, ev.Err, context.Canceled)
}

// TestStore is the real SQLite store as these tests use it. Package store
// imports recipient, so a test inside recipient cannot import store; the external
// test file realstore_test.go sets OpenTestStore instead.
type TestStore interface {
	Store
	Close() error
}

// OpenTestStore opens a real store at path; set by realstore_test.go.
var OpenTestStore func(path string) (TestStore, error)

// TestMintPath: a message path runs [lnd -> holdd], entered at the
// mailbox once one accepted this node, and none is minted while a wanted
// mailbox is pending.
func TestMintPath(t *testing.T) {
	lsp, mbox := testKey(0x0a), testKey(0x0b)
	h := newHarness(t, true)
	id := []byte("forward-path-id")
	send := func(path *onionmsg.BlindedPath,
		keys []*btcec.PrivateKey) {

		t.Helper()
		require.True(t, path.IntroNode.IsEqual(keys[0].PubKey()))
		msg, err := onionmsg.BuildOnionMessage(testKey(0x55), path,
			nil, map[uint64][]byte{onionmsg.InvoiceRequestType: {1}})
		require.NoError(t, err)
		for i, k := range keys[:len(keys)-1] {
			peeled := peel(t, k, msg)
			require.False(t, peeled.Final, "hop %d", i)
			require.True(t, peeled.NextNodeID.IsEqual(
				keys[i+1].PubKey()), "hop %d", i)
			msg = peeled.NextMessage
		}
		final := peel(t, keys[len(keys)-1], msg)
		require.True(t, final.Final)
		require.Equal(t, id, pathID(t, final))
	}

	path, err := h.r.MintPath(testKey(0x66), id)
	require.NoError(t, err)
	send(path, []*btcec.PrivateKey{h.lnd, h.holdd})

	h.r.WantMailbox()
	_, err = h.r.MintPath(testKey(0x66), id)
	require.ErrorIs(t, err, ErrMailboxPending)

	h.r.SetMailbox(&Mailbox{LSPKey: lsp.PubKey(),
		MailboxKey: mbox.PubKey()})
	path, err = h.r.MintPath(testKey(0x66), id)
	require.NoError(t, err)
	send(path, []*btcec.PrivateKey{mbox, h.lnd, h.holdd})
}
