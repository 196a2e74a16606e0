package plugin

import (
	"errors"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/stretchr/testify/require"
)

// TestMayResume: only a link known to be inactive holds a resume back.
func TestMayResume(t *testing.T) {
	require.True(t, mayResume(linkActive))
	require.True(t, mayResume(linkUnknown))
	require.False(t, mayResume(linkInactive))
}

func activeView(state HoldState) keyView {
	return keyView{
		rec: HeldHTLC{Key: key(1, 2), PaymentHash: hashOf(1),
			State: state, FailbackHeight: startHeight + 10},
		found: true, active: true,
	}
}

func TestDecideReplay(t *testing.T) {
	h := flagged(key(1, 2), hashOf(1), 10_000)
	final := func(state HoldState, reason string) keyView {
		v := activeView(state)
		v.active = false
		v.rec.FailReason = reason
		return v
	}
	tests := []struct {
		name      string
		v         keyView
		hash      lntypes.Hash
		height    int32
		link      linkState
		answer    Decision
		write     writeKind
		to        HoldState
		errAnswer Decision
		stat      string
	}{{
		name: "held stays held", v: activeView(StateHeld),
		height: startHeight, answer: Decision{Action: ActionHold},
		stat: "hold_replayed",
	}, {
		name: "released over active link resumes",
		v:    activeView(StateReleased), height: startHeight,
		link: linkActive, answer: Decision{Action: ActionResume},
		write: writeTransition, to: StateResumed,
		errAnswer: Decision{Action: ActionHold},
		stat:      "resume_replayed",
	}, {
		name: "released over unknown link resumes",
		v:    activeView(StateReleased), height: startHeight,
		link: linkUnknown, answer: Decision{Action: ActionResume},
		write: writeTransition, to: StateResumed,
		errAnswer: Decision{Action: ActionHold},
		stat:      "resume_replayed",
	}, {
		name: "released over inactive link holds",
		v:    activeView(StateReleased), height: startHeight,
		link: linkInactive, answer: Decision{Action: ActionHold},
		stat: "hold_replayed",
	}, {
		name: "past fail-back height fails",
		v:    activeView(StateReleased), height: startHeight + 10,
		link: linkActive,
		answer: Decision{Action: ActionFail,
			Reason: FailExpiry},
		write: writeTransition, to: StateFailed,
		errAnswer: Decision{Action: ActionFail, Reason: FailStore},
		stat:      "fail_expiry",
	}, {
		name: "other hash fails", v: activeView(StateHeld),
		hash: hashOf(2), height: startHeight,
		answer: Decision{Action: ActionFail, Reason: FailStore},
		stat:   "fail_store_error",
	}, {
		name: "resumed repeats resume",
		v:    final(StateResumed, ""), height: startHeight,
		answer: Decision{Action: ActionResume},
		stat:   "resume_replayed",
	}, {
		name: "failed repeats fail",
		v:    final(StateFailed, "manual"), height: startHeight,
		answer: Decision{Action: ActionFail, Reason: FailManual},
		stat:   "fail_replayed",
	}, {
		name: "stored held but not active fails",
		v:    final(StateHeld, ""), height: startHeight,
		answer: Decision{Action: ActionFail, Reason: FailStore},
		stat:   "fail_store_error",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := h
			if tc.hash != (lntypes.Hash{}) {
				in.PaymentHash = tc.hash
			}
			s := decideReplay(tc.v, in, tc.height, tc.link)
			require.Equal(t, tc.answer, s.answer)
			require.Equal(t, tc.write, s.write)
			require.Equal(t, tc.to, s.to)
			require.Equal(t, tc.errAnswer, s.errAnswer)
			require.Equal(t, tc.stat, s.stat)
			require.Equal(t, resolveNone, s.resolve)
		})
	}
}

func TestDecideRelease(t *testing.T) {
	now := testStart
	in := releaseInput{key: key(1, 2), hash: hashOf(1), source: "onion",
		now: now, ttl: time.Minute}
	failed := activeView(StateFailed)
	failed.active = false
	resumed := activeView(StateResumed)
	resumed.active = false
	tests := []struct {
		name    string
		v       keyView
		hash    lntypes.Hash
		link    linkState
		outcome ReleaseOutcome
		write   writeKind
		resolve resolveKind
	}{
		{"unknown key is kept", keyView{}, hashOf(1), linkActive,
			ReleaseEarly, writePending, resolveNone},
		{"held over active link resumes",
			activeView(StateHeld), hashOf(1), linkActive,
			ReleaseMatched, writeTransition, resolveResume},
		{"held over unknown link resumes",
			activeView(StateHeld), hashOf(1), linkUnknown,
			ReleaseMatched, writeTransition, resolveResume},
		{"held over inactive link stays released",
			activeView(StateHeld), hashOf(1), linkInactive,
			ReleaseMatched, writeTransition, resolveNone},
		{"released is a duplicate",
			activeView(StateReleased), hashOf(1), linkActive,
			ReleaseDuplicate, writeNone, resolveNone},
		{"resumed is a duplicate", resumed, hashOf(1), linkActive,
			ReleaseDuplicate, writeNone, resolveNone},
		{"failed is too late", failed, hashOf(1), linkActive,
			ReleaseTooLate, writeNone, resolveNone},
		{"other hash is a mismatch", activeView(StateHeld),
			hashOf(2), linkActive, ReleaseMismatch, writeNone,
			resolveNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := in
			in.hash, in.link = tc.hash, tc.link
			s := decideRelease(tc.v, in)
			require.Equal(t, tc.outcome, s.outcome)
			require.Equal(t, tc.write, s.write)
			require.Equal(t, tc.resolve, s.resolve)
			if s.write == writeTransition {
				require.Equal(t, StateHeld, s.from)
				require.Equal(t, StateReleased, s.to)
				require.Equal(t, "onion", s.note)
			}
			if s.write == writePending {
				require.Equal(t, PendingRelease{
					Key: in.key, PaymentHash: in.hash,
					Source: "onion", ReceivedAt: now,
					ExpiresAt: now.Add(time.Minute),
				}, s.pending)
			}
		})
	}
}

func TestDecideLinkActive(t *testing.T) {
	tests := []struct {
		name    string
		v       keyView
		link    linkState
		resolve resolveKind
	}{
		{"released over active link", activeView(StateReleased),
			linkActive, resolveResume},
		{"released over inactive link",
			activeView(StateReleased), linkInactive,
			resolveNone},
		{"held", activeView(StateHeld), linkActive, resolveNone},
		{"gone", keyView{}, linkActive, resolveNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := decideLinkActive(tc.v, tc.link)
			require.Equal(t, tc.resolve, s.resolve)
			require.Equal(t, writeNone, s.write)
		})
	}
}

func TestDecideNew(t *testing.T) {
	p := DefaultPolicy()
	base := newHTLCInput{
		h:                 flagged(key(1, 2), hashOf(1), 10_000),
		policy:            &p,
		height:            startHeight,
		now:               testStart,
		private:           true,
		readsDeliveries:   true,
		pathBlockInterval: DefaultPathBlockInterval,
	}
	base.peer[0] = 2
	tests := []struct {
		name   string
		mutate func(*newHTLCInput)
		answer Decision
		write  writeKind
		stat   string
	}{{
		name: "held", answer: Decision{Action: ActionHold},
		write: writeInsertHeld, stat: "hold",
	}, {
		name: "early release resumes",
		mutate: func(in *newHTLCInput) {
			in.hasPending = true
			in.pending.Source = "onion"
		},
		answer: Decision{Action: ActionResume},
		write:  writeInsertResumed, stat: "resume_early_release",
	}, {
		name: "unknown channel passes",
		mutate: func(in *newHTLCInput) {
			in.chanErr = errors.New("gone")
		},
		answer: Decision{Action: ActionResume},
		stat:   DecisionChannelUnknown,
	}, {
		name:   "public channel passes",
		mutate: func(in *newHTLCInput) { in.private = false },
		answer: Decision{Action: ActionResume},
		stat:   DecisionNotClient,
	}, {
		name: "unproven sender passes",
		mutate: func(in *newHTLCInput) {
			in.readsDeliveries = false
			in.unproven = UnprovenResume
		},
		answer: Decision{Action: ActionResume},
		stat:   "resume_sender_not_capable",
	}, {
		name: "unproven sender fails",
		mutate: func(in *newHTLCInput) {
			in.readsDeliveries = false
			in.unproven = UnprovenFail
		},
		answer: Decision{Action: ActionFail,
			Reason: FailSenderNotCapable},
		stat: "fail_sender_not_capable",
	}, {
		name: "unproven sender held",
		mutate: func(in *newHTLCInput) {
			in.readsDeliveries = false
			in.unproven = UnprovenHold
		},
		answer: Decision{Action: ActionHold},
		write:  writeInsertHeld, stat: "hold_unproven_sender",
	}, {
		name: "fail-back height reached fails",
		mutate: func(in *newHTLCInput) {
			in.h.AutoFailHeight = startHeight + p.FailbackMargin
		},
		answer: Decision{Action: ActionFail,
			Reason: FailExpiryMargin},
		stat: "fail_expiry_margin",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			s := decideNew(in)
			require.Equal(t, tc.answer, s.answer)
			require.Equal(t, tc.write, s.write)
			require.Equal(t, tc.stat, s.stat)
			if s.write != writeNone {
				require.Equal(t, StateHeld, s.rec.State)
				require.Equal(t, in.h.AutoFailHeight-
					p.FailbackMargin, s.rec.FailbackHeight)
				require.Equal(t, in.peer, s.rec.IncomingPeer)
			}
		})
	}
}

func TestDecideFail(t *testing.T) {
	s := decideFail(activeView(StateHeld), FailManual, startHeight)
	require.Equal(t, writeTransition, s.write)
	require.Equal(t, StateFailed, s.to)
	require.Equal(t, string(FailManual), s.note)
	require.Equal(t, resolveFail, s.resolve)

	s = decideFail(activeView(StateReleased), FailPathExpired,
		startHeight)
	require.ErrorIs(t, s.err, ErrNotHeld)
	require.Equal(t, writeNone, s.write)

	s = decideFail(keyView{}, FailExpiry, startHeight)
	require.ErrorIs(t, s.err, ErrNotHeld)
}

func TestCapExceeded(t *testing.T) {
	p := Policy{MaxHeldTotal: 2, MaxHeldMsatTotal: 100,
		MaxHeldPerPeer: 1, MaxHeldMsatPerPeer: 50}
	tests := []struct {
		peer, total usage
		amt         uint64
		want        FailReason
	}{
		{usage{}, usage{}, 10, ""},
		{usage{}, usage{count: 2}, 10, FailCapTotal},
		{usage{}, usage{count: 1, msat: 95}, 10, FailCapTotalMsat},
		{usage{count: 1}, usage{count: 1}, 10, FailCapPeerCount},
		{usage{}, usage{}, 51, FailCapPeerMsat},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want,
			capExceeded(&p, tc.peer, tc.total, tc.amt))
	}
}
