package custommsg

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

func TestNewConfig(t *testing.T) {
	client := newFakeLightning()
	handler := newRecorder().handle

	tests := []struct {
		name     string
		cfg      Config
		wantErr  bool
		min, max time.Duration
	}{{
		name:    "no client",
		cfg:     Config{OnMessage: handler},
		wantErr: true,
	}, {
		name:    "no handler",
		cfg:     Config{Client: client},
		wantErr: true,
	}, {
		name: "negative backoff",
		cfg: Config{Client: client, OnMessage: handler,
			MinBackoff: -time.Second},
		wantErr: true,
	}, {
		name: "min above max",
		cfg: Config{Client: client, OnMessage: handler,
			MinBackoff: 2 * time.Second, MaxBackoff: time.Second},
		wantErr: true,
	}, {
		name: "defaults",
		cfg:  Config{Client: client, OnMessage: handler},
		min:  DefaultMinBackoff,
		max:  DefaultMaxBackoff,
	}, {
		name: "small max only",
		cfg: Config{Client: client, OnMessage: handler,
			MaxBackoff: 10 * time.Millisecond},
		min: 10 * time.Millisecond,
		max: 10 * time.Millisecond,
	}, {
		name: "large min only",
		cfg: Config{Client: client, OnMessage: handler,
			MinBackoff: time.Minute},
		min: time.Minute,
		max: time.Minute,
	}}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := New(tc.cfg)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrInvalidConfig)
				require.Nil(t, tr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.min, tr.cfg.MinBackoff)
			require.Equal(t, tc.max, tr.cfg.MaxBackoff)
			require.NotNil(t, tr.cfg.Clock)
			require.NotNil(t, tr.cfg.Logger)
		})
	}
}

// TestDeliverInOrder feeds onion messages mixed with other custom types and
// checks the handler sees exactly the onion messages, byte for byte, in
// order.
func TestDeliverInOrder(t *testing.T) {
	client := newFakeLightning()
	rec := newRecorder()
	tr := startTransport(t, Config{Client: client, OnMessage: rec.handle})
	stream := client.nextStream(t)
	require.Eventually(t, tr.Connected, testTimeout, time.Millisecond)

	type sent struct {
		pathKey *btcec.PublicKey
		packet  []byte
	}
	want := []sent{
		{testKey(0x01).PubKey(), pattern(0x10, 1366)},
		{testKey(0x02).PubKey(), pattern(0x20, 32834)},
		{testKey(0x03).PubKey(), pattern(0x30, 1)},
		{testKey(0x04).PubKey(), nil},
	}
	// Other custom types carry a valid onion_message body, so only the
	// type can keep them from the handler.
	decoy := wireOnionMessage(testKey(0x09).PubKey(), pattern(0, 1366))

	stream.deliver(t, 32768, decoy)
	stream.deliver(t, uint32(lnwire.MsgOnionMessage), wireOnionMessage(
		want[0].pathKey, want[0].packet,
	))
	stream.deliver(t, 512, decoy)
	stream.deliver(t, uint32(lnwire.MsgOnionMessage), wireOnionMessage(
		want[1].pathKey, want[1].packet,
	))
	stream.deliver(t, 514, decoy)
	stream.deliver(t, uint32(lnwire.MsgOnionMessage), wireOnionMessage(
		want[2].pathKey, want[2].packet,
	))
	stream.deliver(t, 65535, decoy)
	stream.deliver(t, uint32(lnwire.MsgOnionMessage), wireOnionMessage(
		want[3].pathKey, want[3].packet,
	))
	rec.wait(t, len(want))

	got := rec.messages()
	require.Len(t, got, len(want))
	for i, w := range want {
		require.Equal(t, w.pathKey.SerializeCompressed(),
			got[i].PathKey.SerializeCompressed(), "message %d", i)
		if len(w.packet) == 0 {
			require.Empty(t, got[i].OnionBlob)
			continue
		}
		require.Equal(t, w.packet, got[i].OnionBlob, "message %d", i)
	}

	require.Equal(t, Stats{
		Received:      8,
		Decoded:       4,
		Ignored:       4,
		Subscriptions: 1,
	}, tr.Stats())

	// The handler's context is the transport's: it ends with Stop.
	rec.mu.Lock()
	ctx := rec.ctxs[0]
	rec.mu.Unlock()
	require.NoError(t, ctx.Err())
	require.NoError(t, tr.Stop())
	require.ErrorIs(t, ctx.Err(), context.Canceled)
}

// TestIgnoredTypes checks that no type but 513 reaches the handler, even
// with an onion_message body.
func TestIgnoredTypes(t *testing.T) {
	body := wireOnionMessage(testKey(0x05).PubKey(), pattern(0, 40))
	types := []uint32{0, 1, 512, 514, 32768, 32769, 65535, 513 + 65536}

	client := newFakeLightning()
	rec := newRecorder()
	tr := startTransport(t, Config{Client: client, OnMessage: rec.handle})
	stream := client.nextStream(t)

	for _, typ := range types {
		stream.deliver(t, typ, body)
	}
	// Messages are handled in order, so once this one is through, every
	// earlier one has been handled.
	stream.deliver(t, uint32(lnwire.MsgOnionMessage), body)
	rec.wait(t, 1)

	require.Len(t, rec.messages(), 1)
	require.Equal(t, Stats{
		Received:      uint64(len(types)) + 1,
		Decoded:       1,
		Ignored:       uint64(len(types)),
		Subscriptions: 1,
	}, tr.Stats())
}

// TestMalformedDropped checks that each malformed 513 body is counted and
// dropped, and that the stream goes on to deliver the next message.
func TestMalformedDropped(t *testing.T) {
	sentinel := testKey(0x06).PubKey()

	for _, tc := range malformedPayloads() {
		t.Run(tc.name, func(t *testing.T) {
			client := newFakeLightning()
			rec := newRecorder()
			tr := startTransport(t, Config{
				Client: client, OnMessage: rec.handle,
			})
			stream := client.nextStream(t)

			stream.deliver(t, uint32(lnwire.MsgOnionMessage), tc.data)
			stream.deliver(t, uint32(lnwire.MsgOnionMessage), wireOnionMessage(
				sentinel, pattern(3, 3),
			))
			rec.wait(t, 1)

			got := rec.messages()
			require.Len(t, got, 1)
			require.True(t, got[0].PathKey.IsEqual(sentinel))
			require.Equal(t, pattern(3, 3), got[0].OnionBlob)
			require.Equal(t, Stats{
				Received:      2,
				Decoded:       1,
				Undecodable:   1,
				Subscriptions: 1,
			}, tr.Stats())
			require.True(t, tr.Connected())
		})
	}
}

// stateLog records OnStateChange calls.
type stateLog struct {
	mu     sync.Mutex
	states []bool
}

func (s *stateLog) record(connected bool) {
	s.mu.Lock()
	s.states = append(s.states, connected)
	s.mu.Unlock()
}

func (s *stateLog) get() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.states...)
}

// TestResubscribe drives the backoff with a test clock: failed subscribes
// and streams that die at once double the wait up to the cap; a stream that
// delivered a message, or stayed up for MaxBackoff, resets it.
func TestResubscribe(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	ticks := make(chan time.Duration)
	clk := clock.NewTestClockWithTickSignal(start, ticks)
	now := start

	subErr := errors.New("lnd starting")
	client := newFakeLightning(subErr, subErr, subErr, subErr)
	rec := newRecorder()
	states := &stateLog{}
	tr := startTransport(t, Config{
		Client:        client,
		OnMessage:     rec.handle,
		MinBackoff:    time.Second,
		MaxBackoff:    4 * time.Second,
		Clock:         clk,
		OnStateChange: states.record,
	})

	// expectWait checks the transport is waiting d and lets d pass.
	expectWait := func(d time.Duration) {
		t.Helper()
		select {
		case got := <-ticks:
			require.Equal(t, d, got)
		case <-time.After(testTimeout):
			t.Fatalf("no backoff wait of %v", d)
		}
		require.False(t, tr.Connected())
		now = now.Add(d)
		clk.SetTime(now)
	}

	// Four failed subscribes: 1s, 2s, 4s, then capped at 4s.
	expectWait(time.Second)
	expectWait(2 * time.Second)
	expectWait(4 * time.Second)
	expectWait(4 * time.Second)

	// The fifth subscribe works, but the stream dies at once: still
	// capped.
	s1 := client.nextStream(t)
	require.Eventually(t, tr.Connected, testTimeout, time.Millisecond)
	s1.end(t, errors.New("rpc error: transport is closing"))
	expectWait(4 * time.Second)

	// A stream that delivered a message resets the backoff, even when it
	// ends cleanly.
	s2 := client.nextStream(t)
	s2.deliver(t, uint32(lnwire.MsgOnionMessage), wireOnionMessage(
		testKey(0x07).PubKey(), pattern(1, 10),
	))
	rec.wait(t, 1)
	s2.end(t, io.EOF)
	expectWait(time.Second)

	// A silent stream that dies at once doubles again...
	s3 := client.nextStream(t)
	s3.end(t, io.EOF)
	expectWait(2 * time.Second)

	// ...but one that stayed up for MaxBackoff resets it.
	s4 := client.nextStream(t)
	now = now.Add(4 * time.Second)
	clk.SetTime(now)
	s4.end(t, errors.New("rpc error: EOF"))
	expectWait(time.Second)

	s5 := client.nextStream(t)
	s5.deliver(t, uint32(lnwire.MsgOnionMessage), wireOnionMessage(
		testKey(0x08).PubKey(), pattern(2, 10),
	))
	rec.wait(t, 1)
	require.True(t, tr.Connected())

	require.Equal(t, Stats{
		Received:       2,
		Decoded:        2,
		Subscriptions:  5,
		StreamFailures: 8,
	}, tr.Stats())
	client.mu.Lock()
	require.Equal(t, 9, client.subscribeCalls)
	client.mu.Unlock()

	require.NoError(t, tr.Stop())
	require.False(t, tr.Connected())
	require.Equal(t, []bool{
		true, false, // s1
		true, false, // s2
		true, false, // s3
		true, false, // s4
		true, false, // s5, then Stop
	}, states.get())
}

// TestStop checks that Stop returns promptly from every place the goroutine
// can wait, and the lifecycle errors.
func TestStop(t *testing.T) {
	stopWithin := func(t *testing.T, tr *Transport) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- tr.Stop() }()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(testTimeout):
			t.Fatal("Stop did not return")
		}
		require.False(t, tr.Connected())
	}

	t.Run("blocked in Recv", func(t *testing.T) {
		client := newFakeLightning()
		tr, err := New(Config{Client: client,
			OnMessage: newRecorder().handle, Logger: quietLogger()})
		require.NoError(t, err)
		require.NoError(t, tr.Start())
		stream := client.nextStream(t)
		require.Eventually(t, tr.Connected, testTimeout,
			time.Millisecond)

		stopWithin(t, tr)
		require.ErrorIs(t, stream.ctx.Err(), context.Canceled)
		require.ErrorIs(t, tr.Start(), ErrStopped)
	})

	t.Run("in backoff", func(t *testing.T) {
		client := newFakeLightning(errors.New("down"))
		tr, err := New(Config{Client: client,
			OnMessage: newRecorder().handle, Logger: quietLogger(),
			MinBackoff: time.Hour, MaxBackoff: time.Hour})
		require.NoError(t, err)
		require.NoError(t, tr.Start())
		require.Eventually(t, func() bool {
			return tr.Stats().StreamFailures == 1
		}, testTimeout, time.Millisecond)

		stopWithin(t, tr)
	})

	t.Run("lifecycle", func(t *testing.T) {
		tr, err := New(Config{Client: newFakeLightning(),
			OnMessage: newRecorder().handle, Logger: quietLogger()})
		require.NoError(t, err)
		require.NoError(t, tr.Start())
		require.ErrorIs(t, tr.Start(), ErrAlreadyStarted)
		stopWithin(t, tr)
		stopWithin(t, tr)

		never, err := New(Config{Client: newFakeLightning(),
			OnMessage: newRecorder().handle})
		require.NoError(t, err)
		stopWithin(t, never)
		require.ErrorIs(t, never.Start(), ErrStopped)
	})
}

// TestSend checks the wire bytes of a sent onion message against a hand
// assembly, and Send's failures.
func TestSend(t *testing.T) {
	peerKey := testKey(0x55).PubKey()
	var peer route.Vertex
	copy(peer[:], peerKey.SerializeCompressed())
	pathKey := testKey(0x66).PubKey()
	packet := pattern(0x80, 1366)

	client := newFakeLightning()
	tr, err := New(Config{Client: client, OnMessage: newRecorder().handle,
		Logger: quietLogger()})
	require.NoError(t, err)

	// Send does not need the subscription.
	require.NoError(t, tr.Send(context.Background(), peer,
		lnwire.NewOnionMessage(pathKey, packet)))

	// path_key | u16 len (1366 = 0x0556) | packet.
	want := append(pathKey.SerializeCompressed(), 0x05, 0x56)
	want = append(want, packet...)

	reqs := client.sentRequests()
	require.Len(t, reqs, 1)
	require.Equal(t, peerKey.SerializeCompressed(), reqs[0].Peer)
	require.EqualValues(t, 513, reqs[0].Type)
	require.Equal(t, want, reqs[0].Data)
	require.Len(t, reqs[0].Data, 33+2+1366)

	// The largest packet a message body can carry, and one byte more.
	largest := pattern(1, lnwire.MaxMsgBody-35)
	require.NoError(t, tr.Send(context.Background(), peer,
		lnwire.NewOnionMessage(pathKey, largest)))
	reqs = client.sentRequests()
	require.Len(t, reqs, 2)
	require.Equal(t, []byte{0xff, 0xda}, reqs[1].Data[33:35])

	invalid := []*lnwire.OnionMessage{
		nil,
		{OnionBlob: packet},
		lnwire.NewOnionMessage(
			pathKey, pattern(1, lnwire.MaxMsgBody-34),
		),
	}
	for i, msg := range invalid {
		err := tr.Send(context.Background(), peer, msg)
		require.ErrorIs(t, err, ErrInvalidMessage, "case %d", i)
	}
	require.Len(t, client.sentRequests(), 2)

	rpcErr := errors.New("peer not connected")
	client.mu.Lock()
	client.sendErr = rpcErr
	client.mu.Unlock()
	err = tr.Send(context.Background(), peer,
		lnwire.NewOnionMessage(pathKey, packet))
	require.ErrorIs(t, err, ErrSend)
	require.ErrorIs(t, err, rpcErr)

	require.Equal(t, Stats{Sent: 2, SendFailed: 1}, tr.Stats())

	require.NoError(t, tr.Stop())
	require.ErrorIs(t, tr.Send(context.Background(), peer,
		lnwire.NewOnionMessage(pathKey, packet)), ErrStopped)
	require.Len(t, client.sentRequests(), 3)
}
