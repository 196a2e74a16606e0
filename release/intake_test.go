package release

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// stubPeeler returns a fixed peel result.
type stubPeeler struct {
	peeled *onionmsg.Peeled
	err    error
}

func (s stubPeeler) Peel(*lnwire.OnionMessage) (*onionmsg.Peeled, error) {
	return s.peeled, s.err
}

type releaseCall struct {
	key    plugin.CircuitKey
	hash   lntypes.Hash
	source string
}

type recordingReleaser struct {
	calls []releaseCall
	out   plugin.ReleaseOutcome
	err   error
}

func (r *recordingReleaser) Release(_ context.Context, key plugin.CircuitKey,
	hash lntypes.Hash, source string) (plugin.ReleaseOutcome, error) {

	r.calls = append(r.calls, releaseCall{key, hash, source})
	return r.out, r.err
}

func finalWith(pathID []byte, tlvs map[uint64][]byte) *onionmsg.Peeled {
	return &onionmsg.Peeled{
		Final:     true,
		Data:      record.NewFinalHopBlindedRouteData(nil, pathID),
		FinalTLVs: tlvs,
	}
}

func TestIntakeOutcomes(t *testing.T) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	claim := testClaim()
	now := claim.ExpiresAt.Add(-time.Hour)
	good := auth.Mint(claim)
	forged := append([]byte(nil), good...)
	forged[30] ^= 0xff
	expiredClaim := claim
	expiredClaim.ExpiresAt = now.Add(-time.Second)
	receiveID := auth.MintReceive(ReceiveClaim{ExpiresAt: claim.ExpiresAt})

	tests := []struct {
		name        string
		peeler      stubPeeler
		releaserErr error
		wantOutcome string
		wantRelease bool
	}{
		{"release 00", stubPeeler{peeled: finalWith(good,
			map[uint64][]byte{74: {0}})}, nil, "matched", true},
		{"release empty", stubPeeler{peeled: finalWith(good,
			map[uint64][]byte{74: {}})}, nil, "matched", true},
		{"release plus other tlvs", stubPeeler{peeled: finalWith(good,
			map[uint64][]byte{74: {0}, 65: {1, 2}})}, nil, "matched",
			true},
		{"release plus unknown even tlv", stubPeeler{peeled: finalWith(
			good, map[uint64][]byte{74: {0}, 76: {}})}, nil,
			OutcomeUnknownEven, false},
		{"release plus unknown even tlv above 2^16", stubPeeler{
			peeled: finalWith(good, map[uint64][]byte{74: {0},
				65: {1}, 1 << 20: {0}})}, nil,
			OutcomeUnknownEven, false},
		{"unknown even tlv alone", stubPeeler{peeled: finalWith(good,
			map[uint64][]byte{64: {1, 2, 3}})}, nil,
			OutcomeUnknownEven, false},
		{"release plus held_htlc_available", stubPeeler{
			peeled: finalWith(good, map[uint64][]byte{72: {0},
				74: {0}})}, nil, "matched", true},
		{"undecodable", stubPeeler{err: errors.New("bad hmac")}, nil,
			OutcomeUndecodable, false},
		{"has next hop", stubPeeler{peeled: &onionmsg.Peeled{
			Final: false}}, nil, OutcomeNotForUs, false},
		{"held_htlc_available over a release path", stubPeeler{
			peeled: finalWith(good, map[uint64][]byte{72: {0}})},
			nil, OutcomeNoRelease, false},
		{"held_htlc_available, recipient role off", stubPeeler{
			peeled: finalWith(receiveID, map[uint64][]byte{
				72: {0}})}, nil, OutcomeRoleOff, false},
		{"no async-payment tlv", stubPeeler{peeled: finalWith(good,
			map[uint64][]byte{65: {0}})}, nil, OutcomeNoRelease, false},
		{"value 01", stubPeeler{peeled: finalWith(good,
			map[uint64][]byte{74: {1}})}, nil, OutcomeBadValue, false},
		{"long value", stubPeeler{peeled: finalWith(good,
			map[uint64][]byte{74: {0, 0}})}, nil, OutcomeBadValue, false},
		{"no path id", stubPeeler{peeled: finalWith(nil,
			map[uint64][]byte{74: {0}})}, nil, OutcomeNoPathID, false},
		{"no encrypted data", stubPeeler{peeled: &onionmsg.Peeled{
			Final: true, FinalTLVs: map[uint64][]byte{74: {0}}}}, nil,
			OutcomeNoPathID, false},
		{"forged", stubPeeler{peeled: finalWith(forged,
			map[uint64][]byte{74: {0}})}, nil, OutcomeForged, false},
		{"expired", stubPeeler{peeled: finalWith(auth.Mint(expiredClaim),
			map[uint64][]byte{74: {0}})}, nil, OutcomeExpired, false},
		{"truncated path id", stubPeeler{peeled: finalWith(good[:40],
			map[uint64][]byte{74: {0}})}, nil, OutcomeMalformed, false},
		{"engine error", stubPeeler{peeled: finalWith(good,
			map[uint64][]byte{74: {0}})}, errors.New("db"),
			OutcomeEngineError, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rel := &recordingReleaser{out: plugin.ReleaseMatched,
				err: tc.releaserErr}
			log := logrus.New()
			log.SetOutput(io.Discard)
			in := NewIntake(tc.peeler, auth, rel,
				clock.NewTestClock(now), log)
			in.HandleOnionMessage(context.Background(),
				&lnwire.OnionMessage{})

			// The engine counts its own outcomes; the intake
			// counts only what never reached it.
			want := map[string]uint64{tc.wantOutcome: 1}
			if tc.wantOutcome == "matched" {
				want = map[string]uint64{}
			}
			require.Equal(t, want, in.Counts())
			if !tc.wantRelease {
				require.Empty(t, rel.calls)
				return
			}
			require.Equal(t, []releaseCall{{claim.Key,
				claim.PaymentHash, "onion"}}, rel.calls)
		})
	}
}

type recordingAnswerer struct {
	pathIDs [][]byte
	replies []*onionmsg.BlindedPath
}

func (r *recordingAnswerer) HandleHeldHTLCAvailable(_ context.Context,
	pathID []byte, replyPath *onionmsg.BlindedPath) string {

	r.pathIDs = append(r.pathIDs, pathID)
	r.replies = append(r.replies, replyPath)
	return "replied"
}

type recordingForwarder struct {
	next []route.Vertex
	msgs []*lnwire.OnionMessage
}

func (r *recordingForwarder) HandleForward(_ context.Context, next route.Vertex,
	msg *lnwire.OnionMessage) string {

	r.next = append(r.next, next)
	r.msgs = append(r.msgs, msg)
	return "stored"
}

// TestIntakeDispatch checks that each role gets exactly its messages and
// counts them itself.
func TestIntakeDispatch(t *testing.T) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	now := testClaim().ExpiresAt.Add(-time.Hour)
	pathID := auth.MintReceive(ReceiveClaim{PathID: [8]byte{1, 2, 3},
		ExpiresAt: now.Add(time.Hour)})
	reply := &onionmsg.BlindedPath{}
	nextKey := pubKey(0x42)
	inner := &lnwire.OnionMessage{OnionBlob: []byte{1, 2, 3}}

	held := finalWith(pathID, map[uint64][]byte{72: {}})
	held.ReplyPath = reply
	forward := &onionmsg.Peeled{NextNodeID: nextKey, NextMessage: inner}
	forwardBySCID := &onionmsg.Peeled{NextSCID: &lnwire.ShortChannelID{
		BlockHeight: 1}}

	tests := []struct {
		name         string
		peeled       *onionmsg.Peeled
		wantCounts   map[string]uint64
		wantAnswered int
		wantForward  int
	}{
		{"held_htlc_available", held, map[string]uint64{}, 1, 0},
		{"bad value", finalWith(pathID, map[uint64][]byte{72: {1}}),
			map[string]uint64{OutcomeBadValue: 1}, 0, 0},
		{"no path_id", finalWith(nil, map[uint64][]byte{72: {0}}),
			map[string]uint64{OutcomeNoPathID: 1}, 0, 0},
		{"forward by node id", forward, map[string]uint64{}, 0, 1},
		{"forward by scid", forwardBySCID,
			map[string]uint64{OutcomeNotForUs: 1}, 0, 0},
		{"release with lsp role off", finalWith(pathID,
			map[uint64][]byte{74: {0}}),
			map[string]uint64{OutcomeRoleOff: 1}, 0, 0},
		{"held_htlc_available over a release path", finalWith(
			auth.Mint(testClaim()), map[uint64][]byte{72: {0}}),
			map[string]uint64{OutcomeNoRelease: 1}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := logrus.New()
			log.SetOutput(io.Discard)
			in := NewIntake(stubPeeler{peeled: tc.peeled}, auth, nil,
				clock.NewTestClock(now), log)
			ans, fwd := &recordingAnswerer{}, &recordingForwarder{}
			in.SetAnswerer(ans)
			in.SetForwarder(fwd)
			in.HandleOnionMessage(context.Background(),
				&lnwire.OnionMessage{})

			require.Equal(t, tc.wantCounts, in.Counts())
			require.Len(t, ans.pathIDs, tc.wantAnswered)
			if tc.wantAnswered > 0 {
				require.Equal(t, pathID, ans.pathIDs[0])
				require.Same(t, reply, ans.replies[0])
			}
			require.Len(t, fwd.next, tc.wantForward)
			if tc.wantForward > 0 {
				var want route.Vertex
				copy(want[:], nextKey.SerializeCompressed())
				require.Equal(t, want, fwd.next[0])
				require.Same(t, inner, fwd.msgs[0])
			}
		})
	}
}

// recordingFinalHop is a FinalHopHandler that records what it was given.
type recordingFinalHop struct {
	got []*onionmsg.Peeled
}

func (r *recordingFinalHop) HandleFinalHop(_ context.Context,
	p *onionmsg.Peeled) string {

	r.got = append(r.got, p)
	return "handled"
}

// TestIntakeFinalHopHandler checks that a final-hop message whose path_id
// a handler claims reaches it before the unknown-even-TLV drop, with its
// outcome left for the handler to count, and that other messages do not.
func TestIntakeFinalHopHandler(t *testing.T) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(t, err)
	claim := testClaim()
	release := auth.Mint(claim)
	serverID := append([]byte{4}, make([]byte, 60)...)
	isServer := func(id []byte) bool { return id[0] == 4 }

	tests := []struct {
		name        string
		peeled      *onionmsg.Peeled
		wantHandled bool
		wantOutcome string
	}{
		{"server path with even tlv 64", finalWith(serverID,
			map[uint64][]byte{64: {1, 2}}), true, ""},
		{"server path with tlv 75540", finalWith(serverID,
			map[uint64][]byte{75540: {0}}), true, ""},
		{"release path with tlv 64", finalWith(release,
			map[uint64][]byte{64: {1}}), false, OutcomeUnknownEven},
		{"no path id", finalWith(nil, map[uint64][]byte{64: {1}}),
			false, OutcomeUnknownEven},
		{"next hop", &onionmsg.Peeled{Data: record.
			NewFinalHopBlindedRouteData(nil, serverID)}, false,
			OutcomeNotForUs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &recordingFinalHop{}
			in := NewIntake(stubPeeler{peeled: tc.peeled}, auth,
				&recordingReleaser{}, clock.NewTestClock(
					claim.ExpiresAt.Add(-time.Hour)), nil)
			in.AddFinalHopHandler(isServer, h)
			in.HandleOnionMessage(context.Background(),
				&lnwire.OnionMessage{})
			if tc.wantHandled {
				require.Len(t, h.got, 1)
				require.Same(t, tc.peeled, h.got[0])
				require.Empty(t, in.Counts())
				return
			}
			require.Empty(t, h.got)
			require.Equal(t, map[string]uint64{tc.wantOutcome: 1},
				in.Counts())
		})
	}
}
