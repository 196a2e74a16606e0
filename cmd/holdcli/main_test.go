package main

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/plugin"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// peerHex is secp256k1's generator point, a valid compressed key.
const peerHex = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815" +
	"b16f81798"

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// testFake returns a fake whose fixtures the expected outputs below were
// written from by hand.
func testFake(t *testing.T) *fakeHold {
	return &fakeHold{
		info: &holdrpc.GetInfoResponse{
			Version:              "0.1.0-test",
			LndVersion:           "0.21.2-beta",
			LndPubkey:            mustHex(t, "02"+strings.Repeat("11", 32)),
			NodeKey:              mustHex(t, "03"+strings.Repeat("22", 32)),
			InterceptorConnected: true,
			PeerLinkState:        "connected",
			HeldCount:            2,
			HeldMsat:             3000500,
			BlockHeight:          850100,
			Releases:             map[string]uint64{"matched": 4, "expired": 1},
			Decisions:            map[string]uint64{"pass": 10, "hold": 6},
			Network:              "regtest",
			Transport:            "peer",
			Roles:                []string{"lsp", "recipient"},
			HeldHtlcAvailable:    map[string]uint64{"replied": 3},
		},
		htlcs: []*holdrpc.HeldHtlc{{
			Incoming: &holdrpc.CircuitKey{
				ChanId: 123456789012345678, HtlcId: 7,
			},
			PaymentHash:       bytes.Repeat([]byte{0xab}, 32),
			State:             "held",
			IncomingAmtMsat:   1000500,
			OutgoingAmtMsat:   1000000,
			IncomingExpiry:    850200,
			OutgoingExpiry:    850160,
			OutgoingChanId:    42,
			AutoFailHeight:    850190,
			FailbackHeight:    850150,
			IncomingPeer:      mustHex(t, peerHex),
			HeldAtUnixNs:      1699996276500000000,
			IncomingPeerAlias: "carol",
			CurrentHeight:     850100,
		}, {
			Incoming:         &holdrpc.CircuitKey{ChanId: 5},
			PaymentHash:      bytes.Repeat([]byte{0x01}, 32),
			State:            "resumed",
			IncomingAmtMsat:  2000000,
			OutgoingAmtMsat:  1999000,
			IncomingExpiry:   850300,
			OutgoingExpiry:   850260,
			OutgoingChanId:   43,
			AutoFailHeight:   850290,
			FailbackHeight:   850250,
			HeldAtUnixNs:     1699827200000000000,
			ReleasedAtUnixNs: 1699827260000000000,
			ResolvedAtUnixNs: 1699827261000000000,
			ReleaseSource:    "onion",
			CurrentHeight:    850100,
		}},
		policy: &holdrpc.Policy{
			HoldTypes:                []uint64{75537},
			FailbackMargin:           30,
			MaxHoldTimeSeconds:       86400,
			MaxHeldPerPeer:           10,
			MaxHeldMsatPerPeer:       5_000_000_000,
			MaxHeldTotal:             100,
			MaxHeldMsatTotal:         100_000_000_000,
			PendingReleaseTtlSeconds: 600,
		},
		events: []*holdrpc.HoldEvent{{
			Kind: "held",
			Htlc: &holdrpc.HeldHtlc{
				Incoming:    &holdrpc.CircuitKey{ChanId: 9, HtlcId: 1},
				PaymentHash: []byte{0xca, 0xfe},
				State:       "held",
			},
			TimestampUnixNs: 1700000000000000001,
		}, {
			Kind:            "resumed",
			Htlc:            &holdrpc.HeldHtlc{State: "resumed"},
			TimestampUnixNs: 1700000000000000002,
		}},
	}
}

func TestGetInfo(t *testing.T) {
	h := newHarness(t, testFake(t))

	out, err := h.run("getinfo")
	require.NoError(t, err)
	require.Equal(t, `{
    "version": "0.1.0-test",
    "lnd_version": "0.21.2-beta",
    "lnd_pubkey": "021111111111111111111111111111111111111111111111111111111111111111",
    "node_key": "032222222222222222222222222222222222222222222222222222222222222222",
    "interceptor_connected": true,
    "peer_link_state": "connected",
    "held_count": 2,
    "held_msat": "3000500",
    "block_height": 850100,
    "releases": {
        "expired": "1",
        "matched": "4"
    },
    "decisions": {
        "hold": "6",
        "pass": "10"
    },
    "network": "regtest",
    "transport": "peer",
    "roles": [
        "lsp",
        "recipient"
    ],
    "held_htlc_available": {
        "replied": "3"
    },
    "mailbox_lsp": "",
    "mailbox_registered": false,
    "mailbox": null
}
`, out)
}

func TestListHeld(t *testing.T) {
	h := newHarness(t, testFake(t))

	out, err := h.run("listheld", "--state", "held", "--state",
		"Released", "--peer", peerHex)
	require.NoError(t, err)

	// The clock is at unix 1700000000: the first HTLC was held 1h2m3.5s
	// before, the second exactly two days before. Only the held one has
	// blocks left to its failback height (850150 - 850100).
	require.Equal(t, `{
    "htlcs": [
        {
            "incoming": {
                "chan_id": "123456789012345678",
                "htlc_id": "7"
            },
            "payment_hash": "abababababababababababababababababababababababababababababababab",
            "state": "held",
            "incoming_amt_msat": "1000500",
            "outgoing_amt_msat": "1000000",
            "incoming_expiry": 850200,
            "outgoing_expiry": 850160,
            "outgoing_chan_id": "42",
            "auto_fail_height": 850190,
            "failback_height": 850150,
            "incoming_peer": "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
            "held_at_unix_ns": "1699996276500000000",
            "released_at_unix_ns": "0",
            "resolved_at_unix_ns": "0",
            "fail_reason": "",
            "release_source": "",
            "incoming_peer_alias": "carol",
            "current_height": 850100,
            "amount_sat": 1000,
            "age": "1h2m3s",
            "blocks_to_failback": 50,
            "peer_alias": "carol"
        },
        {
            "incoming": {
                "chan_id": "5",
                "htlc_id": "0"
            },
            "payment_hash": "0101010101010101010101010101010101010101010101010101010101010101",
            "state": "resumed",
            "incoming_amt_msat": "2000000",
            "outgoing_amt_msat": "1999000",
            "incoming_expiry": 850300,
            "outgoing_expiry": 850260,
            "outgoing_chan_id": "43",
            "auto_fail_height": 850290,
            "failback_height": 850250,
            "incoming_peer": "",
            "held_at_unix_ns": "1699827200000000000",
            "released_at_unix_ns": "1699827260000000000",
            "resolved_at_unix_ns": "1699827261000000000",
            "fail_reason": "",
            "release_source": "onion",
            "incoming_peer_alias": "",
            "current_height": 850100,
            "amount_sat": 2000,
            "age": "48h0m0s",
            "blocks_to_failback": null,
            "peer_alias": ""
        }
    ]
}
`, out)

	require.Len(t, h.fake.listReqs, 1)
	require.Equal(t, []string{"held", "released"}, h.fake.listReqs[0].States)
	require.Equal(t, mustHex(t, peerHex), h.fake.listReqs[0].Peer)
}

func TestListHeldEmpty(t *testing.T) {
	fake := testFake(t)
	fake.htlcs = nil
	h := newHarness(t, fake)

	out, err := h.run("listheld")
	require.NoError(t, err)
	require.Equal(t, "{\n    \"htlcs\": []\n}\n", out)
	require.Empty(t, h.fake.listReqs[0].States)
	require.Empty(t, h.fake.listReqs[0].Peer)
}

func TestGetHeldKeyForms(t *testing.T) {
	h := newHarness(t, testFake(t))

	_, err := h.run("getheld", "123456789012345678:7")
	require.NoError(t, err)
	_, err = h.run("getheld", "--chan_id", "5", "--htlc_id", "0")
	require.NoError(t, err)

	require.Len(t, h.fake.getReqs, 2)
	require.Equal(t, uint64(123456789012345678),
		h.fake.getReqs[0].Incoming.ChanId)
	require.Equal(t, uint64(7), h.fake.getReqs[0].Incoming.HtlcId)
	require.Equal(t, uint64(5), h.fake.getReqs[1].Incoming.ChanId)
	require.Equal(t, uint64(0), h.fake.getReqs[1].Incoming.HtlcId)
}

func TestReleaseHeld(t *testing.T) {
	h := newHarness(t, testFake(t))

	// Flags after the argument are parsed too, as with lncli.
	out, err := h.run("releaseheld", "850000:3", "--reason",
		"sender confirmed out of band")
	require.NoError(t, err)

	require.Len(t, h.fake.relReqs, 1)
	req := h.fake.relReqs[0]
	require.Equal(t, uint64(850000), req.Incoming.ChanId)
	require.Equal(t, uint64(3), req.Incoming.HtlcId)
	require.Equal(t, "sender confirmed out of band", req.Reason)
	require.Contains(t, out, `"outcome": "matched"`)
	require.Contains(t, out, `"state": "released"`)
}

func TestFailHeld(t *testing.T) {
	h := newHarness(t, testFake(t))

	_, err := h.run("failheld", "--chan_id", "11", "--htlc_id", "2",
		"--reason", "peer offline for a week")
	require.NoError(t, err)

	require.Len(t, h.fake.failReqs, 1)
	req := h.fake.failReqs[0]
	require.Equal(t, uint64(11), req.Incoming.ChanId)
	require.Equal(t, uint64(2), req.Incoming.HtlcId)
	require.Equal(t, "peer offline for a week", req.Reason)
}

func TestSetPolicyChangesOnlyGivenFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		change func(p *holdrpc.Policy)
	}{{
		name: "two limits",
		args: []string{"--maxperpeer", "3", "--maxholdtime", "1h"},
		change: func(p *holdrpc.Policy) {
			p.MaxHeldPerPeer = 3
			p.MaxHoldTimeSeconds = 3600
		},
	}, {
		name: "zero lifts a cap",
		args: []string{"--maxtotalmsat", "0"},
		change: func(p *holdrpc.Policy) {
			p.MaxHeldMsatTotal = 0
		},
	}, {
		name: "everything",
		args: []string{"--failbackmargin", "12", "--maxholdtime",
			"0", "--maxperpeer", "4", "--maxperpeermsat", "7",
			"--maxtotal", "40", "--maxtotalmsat", "9",
			"--holdtype", "75537", "--holdtype", "80001",
			"--pendingreleasettl", "10m"},
		change: func(p *holdrpc.Policy) {
			p.FailbackMargin = 12
			p.MaxHoldTimeSeconds = 0
			p.MaxHeldPerPeer = 4
			p.MaxHeldMsatPerPeer = 7
			p.MaxHeldTotal = 40
			p.MaxHeldMsatTotal = 9
			p.HoldTypes = []uint64{75537, 80001}
			p.PendingReleaseTtlSeconds = 600
		},
	}}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := testFake(t)
			want := proto.Clone(fake.policy).(*holdrpc.Policy)
			tc.change(want)
			h := newHarness(t, fake)

			out, err := h.run(append([]string{"setpolicy"},
				tc.args...)...)
			require.NoError(t, err)

			require.Equal(t, []string{"GetPolicy", "SetPolicy"},
				fake.callLog())
			require.Len(t, fake.setReqs, 1)
			require.False(t, fake.setReqs[0].Reset_)
			require.True(t, proto.Equal(want, fake.setReqs[0].Policy),
				"want %v\ngot  %v", want, fake.setReqs[0].Policy)

			var printed bytes.Buffer
			require.NoError(t, printProto(&printed, want))
			require.Equal(t, printed.String(), out)
		})
	}
}

func TestSetPolicyReset(t *testing.T) {
	h := newHarness(t, testFake(t))

	_, err := h.run("setpolicy", "--reset")
	require.NoError(t, err)

	// A reset needs no current policy and sends none.
	require.Equal(t, []string{"SetPolicy"}, h.fake.callLog())
	require.True(t, h.fake.setReqs[0].Reset_)
	require.Nil(t, h.fake.setReqs[0].Policy)
}

func TestSubscribeEvents(t *testing.T) {
	h := newHarness(t, testFake(t))

	out, err := h.run("subscribeevents")
	require.NoError(t, err)

	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 2)
	require.JSONEq(t, `{"kind":"held","htlc":{"incoming":{"chan_id":"9",
		"htlc_id":"1"},"payment_hash":"cafe","state":"held",
		"incoming_amt_msat":"0","outgoing_amt_msat":"0",
		"incoming_expiry":0,"outgoing_expiry":0,"outgoing_chan_id":"0",
		"auto_fail_height":0,"failback_height":0,"incoming_peer":"",
		"held_at_unix_ns":"0","released_at_unix_ns":"0",
		"resolved_at_unix_ns":"0","fail_reason":"","release_source":"",
		"incoming_peer_alias":"","current_height":0},
		"timestamp_unix_ns":"1700000000000000001"}`, lines[0])
	require.Contains(t, lines[1], `"kind":"resumed"`)
	require.Contains(t, lines[1], `"timestamp_unix_ns":"1700000000000000002"`)
}

func TestConnectionErrors(t *testing.T) {
	h := newHarness(t, testFake(t))

	missing := filepath.Join(t.TempDir(), "nope.macaroon")
	_, err := h.run("--macaroonpath", missing, "getinfo")
	require.ErrorIs(t, err, errMacaroon)
	require.ErrorContains(t, err, "--macaroonpath "+missing)

	// The default path follows --network.
	_, err = h.run("--network", "signet", "getinfo")
	require.ErrorIs(t, err, errMacaroon)
	require.ErrorContains(t, err, "--macaroonpath "+filepath.Join(
		h.holdDir, "data", "signet", "admin.macaroon"))

	_, err = h.run("--tlscertpath", missing, "getinfo")
	require.ErrorIs(t, err, errTLSCert)
	require.ErrorContains(t, err, "--tlscertpath "+missing)

	// A cert that is not PEM is caught before dialing too.
	_, err = h.run("--tlscertpath", filepath.Join(h.macDir,
		"admin.macaroon"), "getinfo")
	require.ErrorIs(t, err, errTLSCert)

	require.Empty(t, h.fake.callLog())
}

// TestReadOnlyMacaroon checks that holdcli sends the macaroon it is given:
// the read-only one may read but not release.
func TestReadOnlyMacaroon(t *testing.T) {
	h := newHarness(t, testFake(t))
	ro := filepath.Join(h.macDir, holdrpc.ReadOnlyMacaroonFilename)

	_, err := h.run("--macaroonpath", ro, "getinfo")
	require.NoError(t, err)

	_, err = h.run("--macaroonpath", ro, "releaseheld", "1:2",
		"--reason", "x")
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Equal(t, []string{"GetInfo"}, h.fake.callLog())
}

// TestRunMissingMacaroon goes through run, main's entry point.
func TestRunMissingMacaroon(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run([]string{"holdcli", "--holddir", dir, "--rpcserver",
		"127.0.0.1:1", "--tlscertpath", filepath.Join(dir, "missing.cert"),
		"getpolicy"}, &out)
	require.ErrorIs(t, err, errTLSCert)

	// With a readable cert, the missing default macaroon is named.
	h := newHarness(t, testFake(t))
	err = run([]string{"holdcli", "--holddir", dir, "--rpcserver", h.addr,
		"--tlscertpath", filepath.Join(h.holdDir, "tls.cert"),
		"getpolicy"}, &out)
	require.ErrorIs(t, err, errMacaroon)
	require.ErrorContains(t, err, "--macaroonpath "+filepath.Join(dir,
		"data", "mainnet", "admin.macaroon"))
	require.Empty(t, out.String())
}

func TestArgumentErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// wantErr is checked with errors.Is besides errUsage.
		wantErr error
		msg     string
	}{
		{"key without colon", []string{"getheld", "12"},
			plugin.ErrInvalidCircuitKey, "not chan:htlc"},
		{"key not a number", []string{"getheld", "a:1"},
			plugin.ErrInvalidCircuitKey, "chan id"},
		{"key negative", []string{"getreleasepaths", "1:-1"},
			plugin.ErrInvalidCircuitKey, "htlc id"},
		{"no key", []string{"getheld"}, nil, "chan_id:htlc_id"},
		{"two keys", []string{"getheld", "1:2", "3:4"}, nil,
			"one chan_id:htlc_id"},
		{"key and flags", []string{"getheld", "1:2", "--chan_id", "1"},
			nil, "not both"},
		{"half flags", []string{"getheld", "--chan_id", "1"}, nil,
			"together"},
		{"release no reason", []string{"releaseheld", "1:2"}, nil,
			"--reason"},
		{"release blank reason", []string{"releaseheld", "1:2",
			"--reason", "  "}, nil, "--reason"},
		{"release bad key", []string{"releaseheld", "x:2", "--reason",
			"r"}, plugin.ErrInvalidCircuitKey, "chan id"},
		{"fail no reason", []string{"failheld", "--chan_id", "1",
			"--htlc_id", "2"}, nil, "--reason"},
		{"bad state", []string{"listheld", "--state", "parked"}, nil,
			`--state "parked"`},
		{"peer not hex", []string{"listheld", "--peer", "zz"}, nil,
			"--peer"},
		{"peer too short", []string{"listheld", "--peer", "02ab"}, nil,
			"--peer"},
		{"setpolicy nothing", []string{"setpolicy"}, nil,
			"at least one flag"},
		{"setpolicy reset and flag", []string{"setpolicy", "--reset",
			"--maxtotal", "1"}, nil, "--reset takes no other flag"},
		{"setpolicy fraction", []string{"setpolicy", "--maxholdtime",
			"1500ms"}, nil, "whole number of seconds"},
		{"setpolicy negative", []string{"setpolicy",
			"--pendingreleasettl", "-1m"}, nil, "non-negative"},
		{"setpolicy bad holdtype", []string{"setpolicy", "--holdtype",
			"abc"}, nil, "--holdtype"},
		{"setpolicy huge margin", []string{"setpolicy",
			"--failbackmargin", "3000000000"}, nil, "out of range"},
		{"stray argument", []string{"getinfo", "now"}, nil,
			"takes no arguments"},
		{"bad network", []string{"--network", "litecoin", "getinfo"},
			nil, "--network"},
	}

	h := newHarness(t, testFake(t))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.run(tc.args...)
			require.ErrorIs(t, err, errUsage)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			require.ErrorContains(t, err, tc.msg)
		})
	}

	// None of them reached holdd.
	require.Empty(t, h.fake.callLog())
}
