package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	conf := `
network=regtest
rpclisten=127.0.0.1:9999

[lnd]
lnd.host=10.0.0.1:10009
lnd.p2paddr=127.0.0.1:9736

[hold]
hold.failbackmargin=20
hold.type=65539
hold.type=75537
hold.maxholdtime=1h
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "holdd.conf"),
		[]byte(conf), 0o600))

	cfg, err := LoadConfig([]string{"--holddir=" + dir,
		"--hold.failbackmargin=30"})
	require.NoError(t, err)
	require.Equal(t, "regtest", cfg.Network)
	require.Equal(t, "127.0.0.1:9999", cfg.RPCListen)
	require.Equal(t, "10.0.0.1:10009", cfg.Lnd.Host)
	require.Equal(t, "127.0.0.1:9736", cfg.Lnd.P2PAddr)
	// The command line wins over the file.
	require.Equal(t, int32(30), cfg.Hold.FailbackMargin)
	require.Equal(t, filepath.Join(dir, "data", "regtest"), cfg.dataDir())

	p, err := cfg.policy()
	require.NoError(t, err)
	require.Equal(t, []uint64{65539, 75537}, p.HoldTypes)
	require.Equal(t, int32(30), p.FailbackMargin)
	require.Equal(t, time.Hour, p.MaxHoldTime)
	require.Equal(t, plugin.DefaultPolicy().MaxHeldPerPeer, p.MaxHeldPerPeer)
}

func TestLoadConfigDefaults(t *testing.T) {
	dir := t.TempDir()
	cfg, err := LoadConfig([]string{"--holddir=" + dir})
	require.NoError(t, err)
	require.Equal(t, "mainnet", cfg.Network)
	require.Equal(t, defaultRPCListen, cfg.RPCListen)
	require.Equal(t, defaultLndP2PAddr, cfg.Lnd.P2PAddr)
	require.Equal(t, filepath.Join(defaultLndDir, "data", "chain",
		"bitcoin", "mainnet", "admin.macaroon"), cfg.Lnd.MacaroonPath)
	p, err := cfg.policy()
	require.NoError(t, err)
	require.Equal(t, []uint64{plugin.DefaultHoldType}, p.HoldTypes)
	require.Equal(t, []string{roleLSP}, cfg.Roles)
}

func TestLoadConfigRoles(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"lsp"}},
		{[]string{"--role=recipient"}, []string{"recipient"}},
		{[]string{"--role=recipient", "--role=lsp"},
			[]string{"lsp", "recipient"}},
		{[]string{"--role=Recipient,lsp,recipient"},
			[]string{"lsp", "recipient"}},
		{[]string{"--role=lsp", "--role=server"},
			[]string{"lsp", "server"}},
		{[]string{"--role=server,mailbox,lsp"},
			[]string{"lsp", "mailbox", "server"}},
	}
	for _, tc := range tests {
		cfg, err := LoadConfig(append([]string{"--holddir=" +
			t.TempDir()}, tc.args...))
		require.NoError(t, err, tc.args)
		require.Equal(t, tc.want, cfg.Roles, tc.args)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad network", []string{"--network=moon"}, "network"},
		{"no p2p addr", []string{"--lnd.p2paddr="}, "lnd.p2paddr"},
		{"bad p2p addr", []string{"--lnd.p2paddr=nohost"}, "lnd.p2paddr"},
		{"zero margin", []string{"--hold.failbackmargin=0"},
			"failback margin"},
		{"low hold type", []string{"--hold.type=72"}, "custom record"},
		{"path count", []string{"--release.pathcount=0"},
			"release.pathcount"},
		{"unknown role", []string{"--role=lsp,relay"},
			`unknown role "relay"`},
		{"reply burst", []string{"--recipient.replyburst=0"},
			"recipient.replyburst"},
		{"server not hex", []string{"--recipient.server=zz"},
			"recipient.server"},
		{"server not a path", []string{"--recipient.server=02ab"},
			"recipient.server"},
		{"no offer slots", []string{"--recipient.offerslots=0"},
			"recipient.offerslots"},
		{"too many offer slots", []string{"--recipient.offerslots=17"},
			"recipient.offerslots"},
		{"allowpeer not a key", []string{"--hold.allowpeer=02abcd"},
			"hold.allowpeer"},
		{"server max slots", []string{"--server.maxslots=0"},
			"server.maxslots"},
		{"server invoice size over LDK's", []string{
			"--server.maxinvoicesize=5121"}, "server.maxinvoicesize"},
		{"server offer paths", []string{"--server.offerpaths=9"},
			"server.offerpaths"},
		{"server offer path ttl", []string{"--server.offerpathttl=1m"},
			"server.offerpathttl"},
		{"server burst", []string{"--server.requesterburst=0"},
			"bursts"},
		{"server interval", []string{
			"--server.invoicerequestinterval=0s"}, "intervals"},
		{"path expiry under a minute",
			[]string{"--release.pathexpiry=30s"}, "release.pathexpiry"},
		{"missing explicit config file",
			[]string{"--configfile=/nonexistent/holdd.conf"},
			"/nonexistent/holdd.conf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--holddir=" + t.TempDir()},
				tc.args...)
			_, err := LoadConfig(args)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestLoadConfigServer: the server's options default to invoiceserver's
// safe defaults and are read from holdd.conf.
func TestLoadConfigServer(t *testing.T) {
	cfg, err := LoadConfig([]string{"--holddir=" + t.TempDir()})
	require.NoError(t, err)
	require.Equal(t, &serverConfig{
		MaxRecipients:          10_000,
		MaxSlots:               16,
		MaxInvoiceSize:         5120,
		OfferPathTTL:           365 * 24 * time.Hour,
		OfferPaths:             1,
		RecipientBurst:         5,
		RecipientInterval:      100 * time.Millisecond,
		RequesterBurst:         5,
		RequesterInterval:      100 * time.Millisecond,
		InvoiceRequestBurst:    50,
		InvoiceRequestInterval: 20 * time.Millisecond,
	}, cfg.Server)

	dir := t.TempDir()
	conf := `
role=lsp
role=server

[server]
server.maxslots=10
server.maxinvoicesize=4096
server.requesterburst=3
server.requesterinterval=1s
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "holdd.conf"),
		[]byte(conf), 0o600))
	cfg, err = LoadConfig([]string{"--holddir=" + dir})
	require.NoError(t, err)
	require.Equal(t, []string{roleLSP, roleServer}, cfg.Roles)
	require.Equal(t, uint16(10), cfg.Server.MaxSlots)
	require.Equal(t, 4096, cfg.Server.MaxInvoiceSize)
	require.Equal(t, 3, cfg.Server.RequesterBurst)
	require.Equal(t, time.Second, cfg.Server.RequesterInterval)
}

// TestLoadConfigAdmission: by default only HTLCs over private channels are
// held, one peer may have DefaultMaxHeldMsatPerPeer held, and release paths
// have no cap; hold.allowpeer and hold.allowpublic widen who is held.
func TestLoadConfigAdmission(t *testing.T) {
	cfg, err := LoadConfig([]string{"--holddir=" + t.TempDir()})
	require.NoError(t, err)
	a, err := cfg.admission()
	require.NoError(t, err)
	require.Equal(t, plugin.Admission{}, a)
	p, err := cfg.policy()
	require.NoError(t, err)
	require.Equal(t, plugin.DefaultMaxHeldMsatPerPeer, p.MaxHeldMsatPerPeer)
	require.Zero(t, cfg.Release.PathExpiry)

	const (
		k1 = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
		k2 = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
	)
	cfg, err = LoadConfig([]string{"--holddir=" + t.TempDir(),
		"--hold.allowpeer=" + k1, "--hold.allowpeer=" + k2,
		"--hold.allowpublic", "--hold.maxperpeermsat=0"})
	require.NoError(t, err)
	a, err = cfg.admission()
	require.NoError(t, err)
	key1, err := parseNodeKey(k1)
	require.NoError(t, err)
	key2, err := parseNodeKey(k2)
	require.NoError(t, err)
	require.Equal(t, plugin.Admission{AllowPublic: true,
		AllowPeers: map[route.Vertex]bool{key1: true, key2: true}}, a)
	p, err = cfg.policy()
	require.NoError(t, err)
	require.Zero(t, p.MaxHeldMsatPerPeer)
}
