package release

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/lightningnetwork/lnd/clock"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/record"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeLDKReleasePaths checks that the decoder of LDK's
// revoke_and_ack TLV never panics, fails only with ErrBadDelivery, and
// accepts only values it re-encodes to exactly the same bytes.
func FuzzDecodeLDKReleasePaths(f *testing.F) {
	p1, _ := testPath(10)
	p2, _ := testPath(20)
	good, err := EncodeLDKReleasePaths([]LDKReleasePath{
		{HtlcID: 3, Path: p1}, {HtlcID: 1 << 40, Path: p2},
	})
	require.NoError(f, err)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:8])
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, value []byte) {
		entries, err := DecodeLDKReleasePaths(value)
		if err != nil {
			require.ErrorIs(t, err, ErrBadDelivery)
			require.Nil(t, entries)
			return
		}
		again, err := EncodeLDKReleasePaths(entries)
		require.NoError(t, err)
		require.True(t, bytes.Equal(value, again), "%x re-encodes "+
			"as %x", value, again)
	})
}

// fuzzIntakeNow is the intake's clock in FuzzIntake; the committed seeds
// mint path_ids that expire an hour after it.
var fuzzIntakeNow = time.Unix(1_800_000_000, 0)

// fuzzIntakeKey is holdd's node key in FuzzIntake.
var fuzzIntakeKey = privKey(0x42)

// FuzzIntake drives the whole intake the way a hostile sender can: an onion
// message with any path_id and any final-hop TLVs, addressed to holdd's key,
// through the real peeler and authenticator. Whatever it holds, the intake
// never panics, counts every message exactly once, and asks for a release
// only for a valid release_held_htlc over an authentic, unexpired path_id
// with no even TLV it does not understand, naming exactly the minted HTLC.
func FuzzIntake(f *testing.F) {
	auth, err := NewAuthenticator(testSecret)
	require.NoError(f, err)
	claim := testClaim()
	claim.ExpiresAt = fuzzIntakeNow.Add(time.Hour)
	good := auth.Mint(claim)

	f.Add(good, true, []byte{0}, uint64(0), []byte(nil))
	f.Add(good, true, []byte{}, uint64(65), []byte{1, 2, 3})
	f.Add(good, true, []byte{0}, uint64(76), []byte{})
	f.Add(good, true, []byte{1}, uint64(0), []byte(nil))
	f.Add(good, false, []byte(nil), uint64(72), []byte{0})
	f.Add(good[:len(good)-1], true, []byte{0}, uint64(0), []byte(nil))
	f.Add([]byte(nil), true, []byte{0}, uint64(0), []byte(nil))

	log := logrus.New()
	log.SetOutput(io.Discard)
	peeler := onionmsg.NewPeeler(&keychain.PrivKeyECDH{
		PrivKey: fuzzIntakeKey,
	})

	f.Fuzz(func(t *testing.T, pathID []byte, withRelease bool,
		releaseValue []byte, extraType uint64, extraValue []byte) {

		tlvs := make(map[uint64][]byte)
		if withRelease {
			tlvs[onionmsg.ReleaseHeldHTLCType] = releaseValue
		}
		// Type 0 means no extra TLV; others are moved into the final
		// range, where BuildOnionMessage takes them.
		if extraType != 0 {
			extraType = onionmsg.MinFinalTLVType +
				extraType%(1<<20)
			if extraType != onionmsg.ReleaseHeldHTLCType {
				tlvs[extraType] = extraValue
			}
		}
		path, err := onionmsg.BuildBlindedPath(privKey(7), []onionmsg.Hop{{
			NodeID: fuzzIntakeKey.PubKey(),
			Data:   record.NewFinalHopBlindedRouteData(nil, pathID),
		}}, false)
		if err != nil {
			return
		}
		msg, err := onionmsg.BuildOnionMessage(privKey(8), path, nil,
			tlvs)
		if err != nil {
			// Too large for an onion: nothing a sender can send.
			require.ErrorIs(t, err, onionmsg.ErrMessageTooLarge)
			return
		}

		rel := &recordingReleaser{out: plugin.ReleaseMatched}
		in := NewIntake(peeler, auth, rel,
			clock.NewTestClock(fuzzIntakeNow), log)
		in.HandleOnionMessage(context.Background(), msg)

		// The oracle, from the rules rather than the code: BOLT 1's
		// even rule, the 00-or-empty value, and a path_id that is
		// exactly what holdd would mint for an unexpired claim.
		wantRelease := withRelease && len(releaseValue) <= 1 &&
			(len(releaseValue) == 0 || releaseValue[0] == 0)
		if extraType != 0 && extraType%2 == 0 &&
			extraType != onionmsg.ReleaseHeldHTLCType &&
			extraType != onionmsg.HeldHTLCAvailableType {

			wantRelease = false
		}
		c, verr := auth.Verify(pathID, fuzzIntakeNow)
		authentic := verr == nil && bytes.Equal(auth.Mint(c), pathID)
		if !authentic {
			wantRelease = false
		}

		var counted uint64
		for _, n := range in.Counts() {
			counted += n
		}
		if !wantRelease {
			require.Empty(t, rel.calls)
			require.Equal(t, uint64(1), counted, "%v", in.Counts())
			return
		}
		require.Equal(t, []releaseCall{{c.Key, c.PaymentHash,
			"onion"}}, rel.calls)
		require.Zero(t, counted, "%v", in.Counts())
	})
}
