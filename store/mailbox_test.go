package store

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdd/holdd/mailbox"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

func mbPeer(b byte) route.Vertex {
	var p route.Vertex
	p[0] = 0x02
	p[32] = b

	return p
}

// mbMsg returns a message for rcpt whose onion is size bytes of tag.
func mbMsg(rcpt route.Vertex, tag byte, size int, at time.Time) mailbox.StoredMessage {
	m := mailbox.StoredMessage{
		Recipient:  rcpt,
		Onion:      bytes.Repeat([]byte{tag}, size),
		ReceivedAt: at,
	}
	m.PathKey[0] = 0x03
	m.PathKey[32] = tag

	return m
}

// checkUsage compares the trigger-kept totals with the rows.
func checkUsage(t *testing.T, s *Store) {
	t.Helper()

	var count, size int64
	require.NoError(t, s.db.QueryRow(`SELECT COUNT(*),
		COALESCE(SUM(length(onion)), 0) FROM mailbox_messages`).Scan(
		&count, &size))
	gotCount, gotSize, err := s.MailboxUsage(context.Background())
	require.NoError(t, err)
	require.Equal(t, count, gotCount, "message count")
	require.Equal(t, size, gotSize, "bytes")
}

func registerTest(t *testing.T, s *Store, peers ...route.Vertex) {
	t.Helper()

	for _, p := range peers {
		_, _, err := s.RegisterMailboxRecipient(context.Background(), p,
			t0)
		require.NoError(t, err)
	}
}

// onions returns the first onion byte (the tag) of each of rcpt's waiting
// messages, in delivery order.
func waitingTags(t *testing.T, s *Store, rcpt route.Vertex) []byte {
	t.Helper()

	msgs, err := s.NextMailboxMessages(context.Background(), rcpt, 1000)
	require.NoError(t, err)
	tags := []byte{}
	for _, m := range msgs {
		tags = append(tags, m.Onion[0])
	}

	return tags
}

func TestMailboxRegisterIdempotent(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a, b := mbPeer(1), mbPeer(2)

	r, created, err := s.RegisterMailboxRecipient(ctx, a, t0)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, mailbox.Recipient{Peer: a, RegisteredAt: t0,
		RefreshedAt: t0}, r)

	later := t0.Add(time.Hour)
	r, created, err = s.RegisterMailboxRecipient(ctx, a, later)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, mailbox.Recipient{Peer: a, RegisteredAt: t0,
		RefreshedAt: later}, r)

	_, _, err = s.RegisterMailboxRecipient(ctx, b, later)
	require.NoError(t, err)
	_, err = s.PutMailboxMessage(ctx, mbMsg(a, 7, 10, later), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)

	list, err := s.ListMailboxRecipients(ctx)
	require.NoError(t, err)
	require.Equal(t, []mailbox.Recipient{
		{Peer: a, RegisteredAt: t0, RefreshedAt: later, Messages: 1,
			Bytes: 10},
		{Peer: b, RegisteredAt: later, RefreshedAt: later},
	}, list)

	_, _, err = s.RegisterMailboxRecipient(ctx, a, time.Time{})
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestMailboxOrderClaimUnclaimDelete(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a, b := mbPeer(1), mbPeer(2)
	registerTest(t, s, a, b)

	var ids []int64
	for i, tag := range []byte{'x', 'y', 'z'} {
		at := t0.Add(time.Duration(i) * time.Second)
		put, err := s.PutMailboxMessage(ctx, mbMsg(a, tag, 5, at),
			false, mailbox.StoreLimits{})
		require.NoError(t, err)
		require.False(t, put.Claimed)
		require.Empty(t, put.Evicted)
		ids = append(ids, put.ID)
	}
	_, err := s.PutMailboxMessage(ctx, mbMsg(b, 'q', 3, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)

	msgs, err := s.NextMailboxMessages(ctx, a, 2)
	require.NoError(t, err)
	want := mbMsg(a, 'x', 5, t0)
	want.ID = ids[0]
	require.Equal(t, []mailbox.StoredMessage{want, {
		ID: ids[1], Recipient: a, PathKey: mbMsg(a, 'y', 0, t0).PathKey,
		Onion: []byte("yyyyy"), ReceivedAt: t0.Add(time.Second),
	}}, msgs)

	// A claimed message is not handed out again and cannot be claimed
	// twice.
	ok, err := s.ClaimMailboxMessage(ctx, ids[0], t0)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.ClaimMailboxMessage(ctx, ids[0], t0)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, []byte("yz"), waitingTags(t, s, a))

	// Unclaimed, it is back in its old place.
	ok, err = s.UnclaimMailboxMessage(ctx, ids[0])
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.UnclaimMailboxMessage(ctx, ids[0])
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, []byte("xyz"), waitingTags(t, s, a))

	ok, err = s.DeleteMailboxMessage(ctx, ids[0])
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.DeleteMailboxMessage(ctx, ids[0])
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = s.ClaimMailboxMessage(ctx, ids[0], t0)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, []byte("yz"), waitingTags(t, s, a))
	require.Equal(t, []byte("q"), waitingTags(t, s, b))

	// Ids are never reused: a message stored after the newest one was
	// deleted still sorts last.
	ok, err = s.DeleteMailboxMessage(ctx, ids[2])
	require.NoError(t, err)
	require.True(t, ok)
	put, err := s.PutMailboxMessage(ctx, mbMsg(a, 'w', 1, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	require.Greater(t, put.ID, ids[2])
	require.Equal(t, []byte("yw"), waitingTags(t, s, a))

	count, size, err := s.MailboxUsage(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), count)
	require.Equal(t, int64(5+1+3), size)
	checkUsage(t, s)

	_, err = s.NextMailboxMessages(ctx, a, 0)
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestMailboxPutClaimOnlyWhenAlone(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mbPeer(1)
	registerTest(t, s, a)

	first, err := s.PutMailboxMessage(ctx, mbMsg(a, 'a', 4, t0), true,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	require.True(t, first.Claimed)
	require.Empty(t, waitingTags(t, s, a))

	// Another message (even a claimed one) exists: the new one waits
	// behind it, unclaimed.
	second, err := s.PutMailboxMessage(ctx, mbMsg(a, 'b', 4, t0), true,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	require.False(t, second.Claimed)
	require.Equal(t, []byte("b"), waitingTags(t, s, a))

	dropped, err := s.DropClaimedMailboxMessages(ctx)
	require.NoError(t, err)
	require.Equal(t, []mailbox.RemovedMessage{{ID: first.ID, Recipient: a,
		Size: 4}}, dropped)
	require.Equal(t, []byte("b"), waitingTags(t, s, a))
}

func TestMailboxPutRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mbPeer(1)
	registerTest(t, s, a)

	tests := []struct {
		name string
		msg  mailbox.StoredMessage
		lim  mailbox.StoreLimits
		want error
	}{
		{"unregistered", mbMsg(mbPeer(9), 1, 4, t0), mailbox.StoreLimits{},
			ErrNotFound},
		{"empty onion", mbMsg(a, 1, 0, t0), mailbox.StoreLimits{},
			ErrInvalidArgument},
		{"zero time", mbMsg(a, 1, 4, time.Time{}), mailbox.StoreLimits{},
			ErrInvalidArgument},
		{"negative limit", mbMsg(a, 1, 4, t0),
			mailbox.StoreLimits{TotalCount: -1}, ErrInvalidArgument},
		{"over recipient bytes", mbMsg(a, 1, 11, t0),
			mailbox.StoreLimits{RecipientBytes: 10}, ErrInvalidArgument},
		{"over total bytes", mbMsg(a, 1, 11, t0),
			mailbox.StoreLimits{TotalBytes: 10}, ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.PutMailboxMessage(ctx, tc.msg, false, tc.lim)
			require.ErrorIs(t, err, tc.want)

			count, _, err := s.MailboxUsage(ctx)
			require.NoError(t, err)
			require.Zero(t, count)
		})
	}
}

func TestMailboxEviction(t *testing.T) {
	a, b := mbPeer(1), mbPeer(2)

	type put struct {
		rcpt  route.Vertex
		tag   byte
		size  int
		claim bool
	}
	tests := []struct {
		name string
		lim  mailbox.StoreLimits
		// seed is stored without limits; every message but the
		// claimed ones waits.
		seed []put
		next put

		wantEvicted []mailbox.EvictReason
		// evictedTags are the evicted messages' tags, oldest first.
		evictedTags []byte
		wantA       []byte
		wantB       []byte
	}{{
		name: "recipient count drops its oldest",
		lim:  mailbox.StoreLimits{RecipientCount: 2},
		seed: []put{{a, 'a', 1, false}, {b, 'B', 1, false},
			{a, 'b', 1, false}},
		next:        put{a, 'c', 1, false},
		wantEvicted: []mailbox.EvictReason{mailbox.EvictRecipientCount},
		evictedTags: []byte("a"),
		wantA:       []byte("bc"),
		wantB:       []byte("B"),
	}, {
		name: "recipient bytes drops as many as needed",
		lim:  mailbox.StoreLimits{RecipientBytes: 10},
		seed: []put{{a, 'a', 4, false}, {a, 'b', 4, false},
			{b, 'B', 9, false}, {a, 'c', 2, false}},
		next: put{a, 'd', 7, false},
		wantEvicted: []mailbox.EvictReason{mailbox.EvictRecipientBytes,
			mailbox.EvictRecipientBytes},
		evictedTags: []byte("ab"),
		wantA:       []byte("cd"),
		wantB:       []byte("B"),
	}, {
		name: "total count drops the globally oldest",
		lim:  mailbox.StoreLimits{TotalCount: 3},
		seed: []put{{b, 'B', 1, false}, {a, 'a', 1, false},
			{b, 'C', 1, false}},
		next:        put{a, 'b', 1, false},
		wantEvicted: []mailbox.EvictReason{mailbox.EvictTotalCount},
		evictedTags: []byte("B"),
		wantA:       []byte("ab"),
		wantB:       []byte("C"),
	}, {
		name: "total bytes drops the globally oldest",
		lim:  mailbox.StoreLimits{TotalBytes: 10},
		seed: []put{{b, 'B', 3, false}, {a, 'a', 3, false},
			{b, 'C', 3, false}},
		next: put{a, 'b', 5, false},
		wantEvicted: []mailbox.EvictReason{mailbox.EvictTotalBytes,
			mailbox.EvictTotalBytes},
		evictedTags: []byte("Ba"),
		wantA:       []byte("b"),
		wantB:       []byte("C"),
	}, {
		name: "recipient bound first, then total",
		lim:  mailbox.StoreLimits{RecipientCount: 2, TotalCount: 3},
		seed: []put{{b, 'B', 1, false}, {a, 'a', 1, false},
			{b, 'C', 1, false}, {a, 'b', 1, false}},
		next: put{a, 'c', 1, false},
		wantEvicted: []mailbox.EvictReason{mailbox.EvictRecipientCount,
			mailbox.EvictTotalCount},
		evictedTags: []byte("aB"),
		wantA:       []byte("bc"),
		wantB:       []byte("C"),
	}, {
		name:        "claimed messages count but are not evicted",
		lim:         mailbox.StoreLimits{RecipientCount: 2},
		seed:        []put{{a, 'a', 1, true}, {a, 'b', 1, false}},
		next:        put{a, 'c', 1, false},
		wantEvicted: []mailbox.EvictReason{mailbox.EvictRecipientCount},
		evictedTags: []byte("b"),
		wantA:       []byte("c"),
	}, {
		name:  "only in-flight messages: bound exceeded by those",
		lim:   mailbox.StoreLimits{TotalCount: 1},
		seed:  []put{{a, 'a', 1, true}},
		next:  put{b, 'B', 1, false},
		wantB: []byte("B"),
	}, {
		name: "within bounds nothing goes",
		lim: mailbox.StoreLimits{RecipientCount: 3, RecipientBytes: 3,
			TotalCount: 4, TotalBytes: 4},
		seed:  []put{{a, 'a', 1, false}, {b, 'B', 1, false}},
		next:  put{a, 'b', 1, false},
		wantA: []byte("ab"),
		wantB: []byte("B"),
	}}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestStore(t)
			registerTest(t, s, a, b)

			tagOf := map[int64]byte{}
			seeded := map[int64]put{}
			for _, p := range tc.seed {
				res, err := s.PutMailboxMessage(ctx,
					mbMsg(p.rcpt, p.tag, p.size, t0),
					p.claim, mailbox.StoreLimits{})
				require.NoError(t, err)
				require.Equal(t, p.claim, res.Claimed)
				tagOf[res.ID] = p.tag
				seeded[res.ID] = p
			}

			res, err := s.PutMailboxMessage(ctx,
				mbMsg(tc.next.rcpt, tc.next.tag, tc.next.size,
					t0), tc.next.claim, tc.lim)
			require.NoError(t, err)

			var reasons []mailbox.EvictReason
			var tags []byte
			for _, e := range res.Evicted {
				reasons = append(reasons, e.Reason)
				tags = append(tags, tagOf[e.ID])
				require.Equal(t, seeded[e.ID].rcpt, e.Recipient)
				require.Equal(t, int64(seeded[e.ID].size), e.Size)
			}
			require.Equal(t, tc.wantEvicted, reasons)
			require.Equal(t, tc.evictedTags, tags)
			require.Equal(t, orEmpty(tc.wantA), waitingTags(t, s, a))
			require.Equal(t, orEmpty(tc.wantB), waitingTags(t, s, b))
			checkUsage(t, s)
		})
	}
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}

	return b
}

func TestMailboxExpire(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a, b := mbPeer(1), mbPeer(2)
	registerTest(t, s, a, b)

	old, err := s.PutMailboxMessage(ctx, mbMsg(a, 'a', 3, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	edge, err := s.PutMailboxMessage(ctx,
		mbMsg(b, 'B', 4, t0.Add(time.Minute)), false, mailbox.StoreLimits{})
	require.NoError(t, err)
	_, err = s.PutMailboxMessage(ctx,
		mbMsg(a, 'b', 5, t0.Add(time.Minute+1)), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	// In flight: left to its sender even though it is old.
	claimed, err := s.PutMailboxMessage(ctx, mbMsg(a, 'c', 1, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	ok, err := s.ClaimMailboxMessage(ctx, claimed.ID, t0)
	require.NoError(t, err)
	require.True(t, ok)

	removed, err := s.ExpireMailboxMessages(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.ElementsMatch(t, []mailbox.RemovedMessage{
		{ID: old.ID, Recipient: a, Size: 3},
		{ID: edge.ID, Recipient: b, Size: 4},
	}, removed)
	require.Equal(t, []byte("b"), waitingTags(t, s, a))
	require.Equal(t, []byte{}, waitingTags(t, s, b))

	removed, err = s.ExpireMailboxMessages(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Empty(t, removed)

	count, size, err := s.MailboxUsage(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), count)
	require.Equal(t, int64(6), size)
	checkUsage(t, s)
}

func TestMailboxUnregisterDropsMessages(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a, b := mbPeer(1), mbPeer(2)
	registerTest(t, s, a, b)

	p1, err := s.PutMailboxMessage(ctx, mbMsg(a, 'a', 3, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	p2, err := s.PutMailboxMessage(ctx, mbMsg(a, 'b', 2, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	_, err = s.PutMailboxMessage(ctx, mbMsg(b, 'B', 2, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)

	withMsgs, err := s.MailboxRecipientsWithMessages(ctx)
	require.NoError(t, err)
	require.Equal(t, []route.Vertex{a, b}, withMsgs)

	removed, found, err := s.UnregisterMailboxRecipient(ctx, a)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, []mailbox.RemovedMessage{
		{ID: p1.ID, Recipient: a, Size: 3},
		{ID: p2.ID, Recipient: a, Size: 2},
	}, removed)

	removed, found, err = s.UnregisterMailboxRecipient(ctx, a)
	require.NoError(t, err)
	require.False(t, found)
	require.Empty(t, removed)

	withMsgs, err = s.MailboxRecipientsWithMessages(ctx)
	require.NoError(t, err)
	require.Equal(t, []route.Vertex{b}, withMsgs)

	list, err := s.ListMailboxRecipients(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, b, list[0].Peer)

	_, err = s.PutMailboxMessage(ctx, mbMsg(a, 'c', 1, t0), false,
		mailbox.StoreLimits{})
	require.ErrorIs(t, err, ErrNotFound)
	checkUsage(t, s)
}

func TestMailboxSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "holdd.db")
	a := mbPeer(1)

	s, err := Open(ctx, path)
	require.NoError(t, err)
	registerTest(t, s, a)
	waiting, err := s.PutMailboxMessage(ctx, mbMsg(a, 'a', 3, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	inFlight, err := s.PutMailboxMessage(ctx, mbMsg(a, 'b', 3, t0), false,
		mailbox.StoreLimits{})
	require.NoError(t, err)
	ok, err := s.ClaimMailboxMessage(ctx, inFlight.ID, t0.Add(time.Second))
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.Close())

	s = openTest(t, path)
	dropped, err := s.DropClaimedMailboxMessages(ctx)
	require.NoError(t, err)
	require.Equal(t, []mailbox.RemovedMessage{{ID: inFlight.ID, Recipient: a,
		Size: 3}}, dropped)

	msgs, err := s.NextMailboxMessages(ctx, a, 10)
	require.NoError(t, err)
	want := mbMsg(a, 'a', 3, t0)
	want.ID = waiting.ID
	require.Equal(t, []mailbox.StoredMessage{want}, msgs)
	checkUsage(t, s)
}
