package daemon

import (
	"testing"

	"github.com/holdd/holdd/rpcclient"
	"github.com/stretchr/testify/require"
)

func TestChooseTransport(t *testing.T) {
	v21 := rpcclient.Version{Major: 0, Minor: 21, Patch: 2}
	v20 := rpcclient.Version{Major: 0, Minor: 20, Patch: 2}
	with513 := map[string]string{"protocol.custom-message": "[513]"}
	without := map[string]string{"protocol.custom-message": "[]"}
	other := map[string]string{"protocol.custom-message": "[5130]"}
	silent := map[string]string{"requireinterceptor": "true"}

	tests := []struct {
		name    string
		want    string
		version rpcclient.Version
		config  map[string]string
		got     string
		errLike string
	}{
		{"auto on 0.21", "auto", v21, silent, transportPeer, ""},
		{"auto on 0.20 with 513", "auto", v20, with513,
			transportCustomMsg, ""},
		{"auto on 0.20 without 513", "auto", v20, without, "",
			"protocol.custom-message=513"},
		{"auto on 0.20, 5130 is not 513", "auto", v20, other, "",
			"protocol.custom-message=513"},
		{"auto on 0.20, config unreadable", "auto", v20, nil,
			transportCustomMsg, ""},
		{"peer on 0.21", "peer", v21, nil, transportPeer, ""},
		{"peer on 0.20", "peer", v20, with513, "", "transport=custommsg"},
		{"custommsg on 0.20", "custommsg", v20, with513,
			transportCustomMsg, ""},
		{"custommsg on 0.20 without 513", "custommsg", v20, without, "",
			"protocol.custom-message=513"},
		{"custommsg on 0.21", "custommsg", v21, with513, "",
			"transport=peer"},
		{"unknown", "carrier-pigeon", v21, nil, "", "unknown transport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason, err := chooseTransport(tc.want, tc.version,
				tc.config)
			if tc.errLike != "" {
				require.ErrorIs(t, err, errConfig)
				require.Contains(t, err.Error(), tc.errLike)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.got, got)
			require.NotEmpty(t, reason)
		})
	}
}

func TestLndSettingWarnings(t *testing.T) {
	good := map[string]string{
		"protocol.custom-init":         "[153]",
		"protocol.custom-nodeann":      "[153]",
		"protocol.onion-msg-relay-all": "true",
	}
	require.Empty(t, lndSettingWarnings(transportPeer, good))
	require.Nil(t, lndSettingWarnings(transportPeer, nil))

	bare := map[string]string{
		"protocol.custom-init":         "[]",
		"protocol.custom-nodeann":      "[1530]",
		"protocol.onion-msg-relay-all": "false",
	}
	got := lndSettingWarnings(transportPeer, bare)
	require.Len(t, got, 3)
	require.Contains(t, got[0], "protocol.custom-init=153")
	require.Contains(t, got[1], "protocol.custom-nodeann=153")
	require.Contains(t, got[2], "protocol.onion-msg-relay-all")

	// lnd 0.20 has no relay-all; custommsg never asks for it.
	require.Len(t, lndSettingWarnings(transportCustomMsg, bare), 2)
}

func TestPeerLinkReachWarning(t *testing.T) {
	tests := []struct {
		name            string
		lndHost, listen string
		externalAddr    string
		wantWarning     bool
	}{
		{"both local", "127.0.0.1:10009", "127.0.0.1:0", "", false},
		{"localhost", "localhost:10009", "127.0.0.1:0", "", false},
		{"remote lnd, loopback listener", "10.0.0.5:10009",
			"127.0.0.1:0", "", true},
		{"remote lnd, external address set", "10.0.0.5:10009",
			"127.0.0.1:9736", "10.0.0.9:9736", false},
		{"remote lnd, listening on all", "lnd:10009", "0.0.0.0:9736",
			"", false},
		{"dialling lnd", "lnd:10009", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Lnd.Host = tc.lndHost
			cfg.PeerLink.Listen = tc.listen
			cfg.PeerLink.ExternalAddr = tc.externalAddr
			got := peerLinkReachWarning(cfg)
			require.Equal(t, tc.wantWarning, got != "", got)
		})
	}
}
