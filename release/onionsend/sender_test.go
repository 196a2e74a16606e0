package onionsend

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// testKey returns the private key whose 32 bytes are all b.
func testKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

func keyHex(k *btcec.PrivateKey) string {
	return hex.EncodeToString(k.PubKey().SerializeCompressed())
}

func key33(k *btcec.PublicKey) route.Vertex {
	var b route.Vertex
	copy(b[:], k.SerializeCompressed())
	return b
}

// fakeLnd answers the sender's RPCs from fixtures and records what it was
// asked to send.
type fakeLnd struct {
	peers   []string
	edges   map[uint64]*lnrpc.ChannelEdge
	chanErr error
	sendErr error

	mu        sync.Mutex
	chanReqs  []uint64
	onions    []*lnrpc.SendOnionMessageRequest
	customs   []*lnrpc.SendCustomMessageRequest
	listCalls int
}

func (f *fakeLnd) ListPeers(context.Context, *lnrpc.ListPeersRequest,
	...grpc.CallOption) (*lnrpc.ListPeersResponse, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	f.listCalls++
	resp := &lnrpc.ListPeersResponse{}
	for _, p := range f.peers {
		resp.Peers = append(resp.Peers, &lnrpc.Peer{PubKey: p})
	}
	return resp, nil
}

func (f *fakeLnd) GetChanInfo(_ context.Context, in *lnrpc.ChanInfoRequest,
	_ ...grpc.CallOption) (*lnrpc.ChannelEdge, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	f.chanReqs = append(f.chanReqs, in.ChanId)
	if f.chanErr != nil {
		return nil, f.chanErr
	}
	edge, ok := f.edges[in.ChanId]
	if !ok {
		return nil, status.Error(codes.NotFound, "edge not found")
	}
	return edge, nil
}

func (f *fakeLnd) SendOnionMessage(_ context.Context,
	in *lnrpc.SendOnionMessageRequest, _ ...grpc.CallOption) (
	*lnrpc.SendOnionMessageResponse, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	f.onions = append(f.onions, in)
	return &lnrpc.SendOnionMessageResponse{}, f.sendErr
}

func (f *fakeLnd) SendCustomMessage(_ context.Context,
	in *lnrpc.SendCustomMessageRequest, _ ...grpc.CallOption) (
	*lnrpc.SendCustomMessageResponse, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	f.customs = append(f.customs, in)
	return &lnrpc.SendCustomMessageResponse{}, f.sendErr
}

// sentMessage returns the one message sent with SendOnionMessage.
func (f *fakeLnd) sentMessage(t *testing.T) (route.Vertex, *lnwire.OnionMessage) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.onions, 1)
	require.Empty(t, f.customs)
	req := f.onions[0]
	pathKey, err := btcec.ParsePubKey(req.PathKey)
	require.NoError(t, err)
	var peer route.Vertex
	require.Len(t, req.Peer, 33)
	copy(peer[:], req.Peer)
	return peer, lnwire.NewOnionMessage(pathKey, req.Onion)
}

// keySeq hands out testKey(first), testKey(first+1), ...
func keySeq(first byte) func() (*btcec.PrivateKey, error) {
	var mu sync.Mutex
	next := first
	return func() (*btcec.PrivateKey, error) {
		mu.Lock()
		defer mu.Unlock()
		k := testKey(next)
		next++
		return k, nil
	}
}

func forwardTo(next *btcec.PublicKey) *record.BlindedRouteData {
	return record.NewNonFinalBlindedRouteDataOnionMessage(
		fn.NewLeft[*btcec.PublicKey, lnwire.ShortChannelID](next),
		nil, nil,
	)
}

// world is a recipient path [intro: next=final] -> [final: path_id] and a
// reply path, with every node's key.
type world struct {
	self, intro, final, lsp, other *btcec.PrivateKey
	pathID                         []byte
	path, replyPath                *onionmsg.BlindedPath
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{
		self:   testKey(0x01),
		intro:  testKey(0x02),
		final:  testKey(0x03),
		lsp:    testKey(0x04),
		other:  testKey(0x05),
		pathID: []byte("recipient path id"),
	}
	w.path = w.pathFrom(t, w.intro)

	var err error
	w.replyPath, err = onionmsg.BuildBlindedPath(testKey(0x21),
		[]onionmsg.Hop{
			{NodeID: w.lsp.PubKey(), Data: forwardTo(
				w.other.PubKey())},
			{NodeID: w.other.PubKey(),
				Data: record.NewFinalHopBlindedRouteData(
					nil, []byte("release"))},
		}, true)
	require.NoError(t, err)
	return w
}

// pathFrom builds the recipient path with introduction node intro.
func (w *world) pathFrom(t *testing.T,
	intro *btcec.PrivateKey) *onionmsg.BlindedPath {

	t.Helper()
	p, err := onionmsg.BuildBlindedPath(testKey(0x11), []onionmsg.Hop{
		{NodeID: intro.PubKey(), Data: forwardTo(w.final.PubKey())},
		{NodeID: w.final.PubKey(),
			Data: record.NewFinalHopBlindedRouteData(nil, w.pathID)},
	}, true)
	require.NoError(t, err)
	return p
}

func peel(t *testing.T, k *btcec.PrivateKey,
	msg *lnwire.OnionMessage) *onionmsg.Peeled {

	t.Helper()
	p, err := onionmsg.NewPeeler(&keychain.PrivKeyECDH{PrivKey: k}).
		Peel(msg)
	require.NoError(t, err)
	return p
}

// checkFinal peels msg at intro and final and checks what the recipient
// reads.
func (w *world) checkFinal(t *testing.T, intro *btcec.PrivateKey,
	msg *lnwire.OnionMessage) {

	t.Helper()
	atIntro := peel(t, intro, msg)
	require.False(t, atIntro.Final)
	require.True(t, atIntro.NextNodeID.IsEqual(w.final.PubKey()))

	atFinal := peel(t, w.final, atIntro.NextMessage)
	require.True(t, atFinal.Final)
	pathID, err := atFinal.Data.PathID.ValOpt().UnwrapOrErr(
		errors.New("no path_id"))
	require.NoError(t, err)
	require.Equal(t, w.pathID, pathID)
	require.Equal(t, map[uint64][]byte{72: {0x00}}, atFinal.FinalTLVs)
	require.NotNil(t, atFinal.ReplyPath)
	want, err := w.replyPath.Bytes()
	require.NoError(t, err)
	got, err := atFinal.ReplyPath.Bytes()
	require.NoError(t, err)
	require.Equal(t, want, got)
}

var heldHTLCAvailable = map[uint64][]byte{72: {0x00}}

func TestSendDirect(t *testing.T) {
	w := newWorld(t)
	lnd := &fakeLnd{peers: []string{keyHex(w.lsp), keyHex(w.intro)}}
	s, err := New(Config{
		Lightning: lnd, Self: w.self.PubKey(), Native: true,
		Via:           []*btcec.PublicKey{w.lsp.PubKey()},
		NewSessionKey: keySeq(0x40),
	})
	require.NoError(t, err)

	route, err := s.Send(context.Background(), w.path, w.replyPath,
		heldHTLCAvailable)
	require.NoError(t, err)
	require.Equal(t, Route{
		Peer:  key33(w.intro.PubKey()),
		Intro: key33(w.intro.PubKey()),
	}, route)

	peer, msg := lnd.sentMessage(t)
	require.Equal(t, key33(w.intro.PubKey()), peer)
	// Sent straight to the introduction node, the message carries the
	// path's own first_path_key.
	require.True(t, msg.PathKey.IsEqual(w.path.PathKey))
	require.Len(t, msg.OnionBlob, 1+33+1300+32)
	w.checkFinal(t, w.intro, msg)
}

func TestSendViaLSP(t *testing.T) {
	w := newWorld(t)
	// The first via node is not connected, the second is.
	lnd := &fakeLnd{peers: []string{keyHex(w.lsp)}}
	s, err := New(Config{
		Lightning: lnd, Self: w.self.PubKey(), Native: true,
		Via: []*btcec.PublicKey{w.other.PubKey(),
			w.lsp.PubKey()},
		NewSessionKey: keySeq(0x40),
	})
	require.NoError(t, err)

	route, err := s.Send(context.Background(), w.path, w.replyPath,
		heldHTLCAvailable)
	require.NoError(t, err)
	require.Equal(t, Route{
		Peer:  key33(w.lsp.PubKey()),
		Intro: key33(w.intro.PubKey()),
		Via:   true,
	}, route)

	peer, msg := lnd.sentMessage(t)
	require.Equal(t, key33(w.lsp.PubKey()), peer)
	// The prepended hop is blinded with the first key handed out.
	require.True(t, msg.PathKey.IsEqual(testKey(0x40).PubKey()))

	// The LSP peels its hop, learns the introduction node and hands it
	// the recipient path's first_path_key.
	atLSP := peel(t, w.lsp, msg)
	require.False(t, atLSP.Final)
	require.True(t, atLSP.NextNodeID.IsEqual(w.intro.PubKey()))
	require.Nil(t, atLSP.NextSCID)
	override, err := atLSP.Data.NextBlindingOverride.ValOpt().UnwrapOrErr(
		errors.New("no override"))
	require.NoError(t, err)
	require.True(t, override.IsEqual(w.path.PathKey))
	require.True(t, atLSP.NextMessage.PathKey.IsEqual(w.path.PathKey))

	w.checkFinal(t, w.intro, atLSP.NextMessage)

	// Nobody but the LSP can peel the first layer.
	_, err = onionmsg.NewPeeler(&keychain.PrivKeyECDH{PrivKey: w.intro}).
		Peel(msg)
	require.ErrorIs(t, err, onionmsg.ErrBadOnion)
}

func TestSendSCIDDir(t *testing.T) {
	scid := lnwire.NewShortChanIDFromInt(0x0000_6400_0001_0002)
	for _, tc := range []struct {
		name      string
		direction byte
	}{
		{"direction 0 is node1", 0},
		{"direction 1 is node2", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			node1, node2 := w.intro, w.other
			want := node1
			if tc.direction == 1 {
				want = node2
			}
			path := w.pathFrom(t, want)
			path.IntroNode = nil
			path.IntroSCIDDir = &onionmsg.SCIDDir{
				Direction: tc.direction, SCID: scid,
			}

			lnd := &fakeLnd{
				peers: []string{keyHex(node1), keyHex(node2)},
				edges: map[uint64]*lnrpc.ChannelEdge{
					scid.ToUint64(): {
						Node1Pub: keyHex(node1),
						Node2Pub: keyHex(node2),
					},
				},
			}
			s, err := New(Config{
				Lightning: lnd, Self: w.self.PubKey(),
				Native:        true,
				NewSessionKey: keySeq(0x40),
			})
			require.NoError(t, err)

			intro, err := s.ResolveIntro(context.Background(),
				path)
			require.NoError(t, err)
			require.True(t, intro.IsEqual(want.PubKey()))

			route, err := s.Send(context.Background(), path,
				w.replyPath, heldHTLCAvailable)
			require.NoError(t, err)
			require.Equal(t, Route{
				Peer:  key33(want.PubKey()),
				Intro: key33(want.PubKey()),
			}, route)
			require.Equal(t, []uint64{scid.ToUint64(),
				scid.ToUint64()}, lnd.chanReqs)

			_, msg := lnd.sentMessage(t)
			w.checkFinal(t, want, msg)
		})
	}
}

func TestSendErrors(t *testing.T) {
	w := newWorld(t)
	scidPath := w.pathFrom(t, w.intro)
	scidPath.IntroNode = nil
	scidPath.IntroSCIDDir = &onionmsg.SCIDDir{
		SCID: lnwire.NewShortChanIDFromInt(77),
	}
	selfPath := w.pathFrom(t, w.self)

	for _, tc := range []struct {
		name    string
		lnd     *fakeLnd
		via     []*btcec.PublicKey
		path    *onionmsg.BlindedPath
		wantErr error
	}{{
		name:    "no route",
		lnd:     &fakeLnd{peers: []string{keyHex(w.final)}},
		via:     []*btcec.PublicKey{w.lsp.PubKey()},
		path:    w.path,
		wantErr: ErrNoRoute,
	}, {
		name:    "no via at all",
		lnd:     &fakeLnd{},
		path:    w.path,
		wantErr: ErrNoRoute,
	}, {
		name: "via is ourselves",
		lnd:  &fakeLnd{peers: []string{keyHex(w.self)}},
		via:  []*btcec.PublicKey{w.self.PubKey()},
		path: w.path,

		wantErr: ErrNoRoute,
	}, {
		name: "intro is self",
		lnd: &fakeLnd{peers: []string{keyHex(w.self),
			keyHex(w.lsp)}},
		via:     []*btcec.PublicKey{w.lsp.PubKey()},
		path:    selfPath,
		wantErr: ErrIntroIsSelf,
	}, {
		name:    "sciddir not in graph (NotFound)",
		lnd:     &fakeLnd{peers: []string{keyHex(w.intro)}},
		path:    scidPath,
		wantErr: ErrUnknownChannel,
	}, {
		name: "sciddir not in graph (old lnd)",
		lnd: &fakeLnd{peers: []string{keyHex(w.intro)},
			chanErr: errors.New("rpc error: code = Unknown " +
				"desc = edge not found")},
		path:    scidPath,
		wantErr: ErrUnknownChannel,
	}, {
		name:    "invalid path",
		lnd:     &fakeLnd{peers: []string{keyHex(w.intro)}},
		path:    &onionmsg.BlindedPath{IntroNode: w.intro.PubKey()},
		wantErr: onionmsg.ErrInvalidPath,
	}, {
		name: "peer went away",
		lnd: &fakeLnd{peers: []string{keyHex(w.intro)},
			sendErr: status.Error(codes.NotFound,
				"peer is not connected")},
		path:    w.path,
		wantErr: ErrPeerNotConnected,
	}, {
		name: "send fails",
		lnd: &fakeLnd{peers: []string{keyHex(w.intro)},
			sendErr: errors.New("boom")},
		path:    w.path,
		wantErr: ErrSend,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{
				Lightning: tc.lnd, Self: w.self.PubKey(),
				Native: true, Via: tc.via,
			})
			require.NoError(t, err)
			_, err = s.Send(context.Background(), tc.path,
				w.replyPath, heldHTLCAvailable)
			require.ErrorIs(t, err, tc.wantErr)
			if tc.lnd.sendErr == nil {
				require.Empty(t, tc.lnd.onions)
			}
			require.Empty(t, tc.lnd.customs)
		})
	}
}

// TestSendCustomMessage checks the lnd 0.18-0.20 framing byte for byte:
// type 513, body path_key | u16 len | packet.
func TestSendCustomMessage(t *testing.T) {
	w := newWorld(t)
	lnd := &fakeLnd{peers: []string{keyHex(w.intro)}}
	s, err := New(Config{
		Lightning: lnd, Self: w.self.PubKey(), Native: false,
		NewSessionKey: keySeq(0x40),
	})
	require.NoError(t, err)

	_, err = s.Send(context.Background(), w.path, w.replyPath,
		heldHTLCAvailable)
	require.NoError(t, err)
	require.Empty(t, lnd.onions)
	require.Len(t, lnd.customs, 1)
	req := lnd.customs[0]
	require.Equal(t, uint32(513), req.Type)
	require.Equal(t, w.intro.PubKey().SerializeCompressed(), req.Peer)

	// The same message built independently, framed by hand.
	msg, err := onionmsg.BuildOnionMessage(testKey(0x40), w.path,
		w.replyPath, heldHTLCAvailable)
	require.NoError(t, err)
	require.Len(t, msg.OnionBlob, 1366)
	want := append([]byte{}, w.path.PathKey.SerializeCompressed()...)
	want = binary.BigEndian.AppendUint16(want, 1366)
	want = append(want, msg.OnionBlob...)
	require.Equal(t, want, req.Data)
	require.Equal(t, []byte{0x05, 0x56}, req.Data[33:35])

	w.checkFinal(t, w.intro, lnwire.NewOnionMessage(
		w.path.PathKey, req.Data[35:]))
}

func TestSendToPeer(t *testing.T) {
	peer := key33(testKey(0x09).PubKey())
	msg := lnwire.NewOnionMessage(testKey(0x08).PubKey(),
		[]byte{0, 1, 2, 3})

	lnd := &fakeLnd{}
	s, err := New(Config{Lightning: lnd, Self: testKey(1).PubKey(),
		Native: true})
	require.NoError(t, err)
	require.NoError(t, s.SendToPeer(context.Background(), peer, msg))
	require.Len(t, lnd.onions, 1)
	require.Equal(t, peer[:], lnd.onions[0].Peer)
	require.Equal(t, msg.PathKey.SerializeCompressed(),
		lnd.onions[0].PathKey)
	require.Equal(t, []byte{0, 1, 2, 3}, lnd.onions[0].Onion)

	err = s.SendToPeer(context.Background(), peer, nil)
	require.ErrorIs(t, err, ErrInvalidMessage)
	err = s.SendToPeer(context.Background(), peer,
		&lnwire.OnionMessage{OnionBlob: []byte{1}})
	require.ErrorIs(t, err, ErrInvalidMessage)
	require.Len(t, lnd.onions, 1)

	legacy, err := New(Config{Lightning: lnd, Self: testKey(1).PubKey()})
	require.NoError(t, err)
	huge := lnwire.NewOnionMessage(msg.PathKey,
		make([]byte, lnwire.MaxMsgBody))
	err = legacy.SendToPeer(context.Background(), peer, huge)
	require.ErrorIs(t, err, ErrInvalidMessage)
	require.Empty(t, lnd.customs)

	require.NoError(t, legacy.SendToPeer(context.Background(), peer, msg))
	require.Len(t, lnd.customs, 1)
	require.Equal(t, append(msg.PathKey.SerializeCompressed(),
		0, 4, 0, 1, 2, 3), lnd.customs[0].Data)
}

func TestNewConfig(t *testing.T) {
	_, err := New(Config{Self: testKey(1).PubKey()})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{Lightning: &fakeLnd{}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{Lightning: &fakeLnd{}, Self: testKey(1).PubKey(),
		Via: []*btcec.PublicKey{nil}})
	require.ErrorIs(t, err, ErrInvalidConfig)
}
