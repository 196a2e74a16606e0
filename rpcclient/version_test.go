package rpcclient

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    Version
		wantErr bool
	}{
		{"0.21.2-beta commit=v0.21.2-beta", Version{0, 21, 2}, false},
		{"0.20.2-beta", Version{0, 20, 2}, false},
		{"0.18.0-beta.rc1 commit=abc", Version{0, 18, 0}, false},
		{"1.2.3", Version{1, 2, 3}, false},
		{"", Version{}, true},
		{"0.21", Version{}, true},
		{"x.y.z", Version{}, true},
		{"0.-1.2", Version{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVersion(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestVersionLess(t *testing.T) {
	require.True(t, Version{0, 17, 9}.Less(MinVersion))
	require.False(t, Version{0, 18, 0}.Less(MinVersion))
	require.True(t, Version{0, 20, 2}.Less(Version{0, 21, 0}))
	require.False(t, Version{1, 0, 0}.Less(Version{0, 99, 99}))
	require.True(t, Version{0, 21, 1}.Less(Version{0, 21, 2}))
}

func TestConfigValidateNamesMissingSetting(t *testing.T) {
	full := Config{Host: "h:1", TLSCertPath: "c", MacaroonPath: "m",
		Network: "regtest"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"host", func(c *Config) { c.Host = "" }, "lnd.host"},
		{"cert", func(c *Config) { c.TLSCertPath = "" }, "lnd.tlscertpath"},
		{"mac", func(c *Config) { c.MacaroonPath = "" }, "lnd.macaroonpath"},
		{"net", func(c *Config) { c.Network = "" }, "network"},
	}
	require.NoError(t, full.validate())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := full
			tc.mutate(&cfg)
			err := cfg.validate()
			require.ErrorIs(t, err, ErrConfig)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
