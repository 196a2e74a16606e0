package peerlink

import (
	"context"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()

	ours, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	lnd, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	valid := func() Config {
		return Config{
			NodeKey:    ours,
			PeerPubKey: lnd.PubKey(),
			PeerAddr:   "127.0.0.1:9735",
			OnMessage:  func(context.Context, *lnwire.OnionMessage) {},
		}
	}

	tests := []struct {
		name   string
		modify func(*Config)
		errMsg string // empty: valid
	}{
		{
			name:   "valid",
			modify: func(*Config) {},
		},
		{
			name:   "host name address",
			modify: func(c *Config) { c.PeerAddr = "lnd:9735" },
		},
		{
			name:   "ipv6 address",
			modify: func(c *Config) { c.PeerAddr = "[::1]:9735" },
		},
		{
			name:   "nil node key",
			modify: func(c *Config) { c.NodeKey = nil },
			errMsg: "node key is required",
		},
		{
			name:   "nil peer key",
			modify: func(c *Config) { c.PeerPubKey = nil },
			errMsg: "peer (lnd) public key is required",
		},
		{
			name: "peer key is our own",
			modify: func(c *Config) {
				c.PeerPubKey = ours.PubKey()
			},
			errMsg: "equals our own node key",
		},
		{
			name:   "empty address",
			modify: func(c *Config) { c.PeerAddr = "" },
			errMsg: "address is required",
		},
		{
			name:   "address without port",
			modify: func(c *Config) { c.PeerAddr = "127.0.0.1" },
			errMsg: "missing port",
		},
		{
			name:   "address without host",
			modify: func(c *Config) { c.PeerAddr = ":9735" },
			errMsg: "must be host:port",
		},
		{
			name:   "nil handler",
			modify: func(c *Config) { c.OnMessage = nil },
			errMsg: "handler is required",
		},
		{
			name: "min backoff above max",
			modify: func(c *Config) {
				c.MinBackoff = time.Minute
				c.MaxBackoff = time.Second
			},
			errMsg: "min backoff 1m0s exceeds max backoff 1s",
		},
		{
			name: "min backoff above default max",
			modify: func(c *Config) {
				c.MinBackoff = time.Hour
			},
			errMsg: "exceeds max backoff 30s",
		},
		{
			name: "only a small max backoff",
			modify: func(c *Config) {
				c.MaxBackoff = 100 * time.Millisecond
			},
		},
		{
			name:   "negative ping timeout",
			modify: func(c *Config) { c.PingTimeout = -time.Second },
			errMsg: "ping timeout must not be negative",
		},
		{
			name: "listen without a way to ask lnd to dial",
			modify: func(c *Config) {
				c.Listen = "127.0.0.1:0"
			},
			errMsg: "needs a way to ask lnd to dial it",
		},
		{
			name: "listen address without a port",
			modify: func(c *Config) {
				c.Listen = "127.0.0.1"
				c.RequestDial = func(context.Context,
					string) error {
					return nil
				}
			},
			errMsg: "listen address",
		},
		{
			name: "advertised address with port 0",
			modify: func(c *Config) {
				c.Listen = "127.0.0.1:0"
				c.AdvertiseAddr = "127.0.0.1:0"
				c.RequestDial = func(context.Context,
					string) error {
					return nil
				}
			},
			errMsg: "advertised address",
		},
		{
			name: "listening needs no lnd address",
			modify: func(c *Config) {
				c.PeerAddr = ""
				c.Listen = "127.0.0.1:0"
				c.RequestDial = func(context.Context,
					string) error {
					return nil
				}
			},
		},
		{
			name:   "negative io timeout",
			modify: func(c *Config) { c.IOTimeout = -1 },
			errMsg: "io timeout must not be negative",
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			cfg := valid()
			tc.modify(&cfg)

			l, err := New(cfg)
			if tc.errMsg == "" {
				require.NoError(t, err)
				require.NotNil(t, l)
				require.Equal(t, StateDisconnected, l.State())
				return
			}

			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.errMsg)
			require.Nil(t, l)
		})
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	t.Parallel()

	ours, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	lnd, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	l, err := New(Config{
		NodeKey:     ours,
		PeerPubKey:  lnd.PubKey(),
		PeerAddr:    "127.0.0.1:9735",
		OnMessage:   func(context.Context, *lnwire.OnionMessage) {},
		PingTimeout: 3 * time.Second,
	})
	require.NoError(t, err)

	require.Equal(t, 500*time.Millisecond, l.cfg.MinBackoff)
	require.Equal(t, 30*time.Second, l.cfg.MaxBackoff)
	require.Equal(t, 60*time.Second, l.cfg.PingInterval)
	require.Equal(t, 3*time.Second, l.cfg.PingTimeout)
	require.NotNil(t, l.cfg.Dial)
	require.NotNil(t, l.cfg.Clock)
	require.NotNil(t, l.cfg.Logger)
}

func TestStateString(t *testing.T) {
	t.Parallel()

	require.Equal(t, "disconnected", StateDisconnected.String())
	require.Equal(t, "connecting", StateConnecting.String())
	require.Equal(t, "connected", StateConnected.String())
	require.Equal(t, "State(7)", State(7).String())
}
