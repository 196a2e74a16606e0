package plugin

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCircuitKeyString(t *testing.T) {
	tests := []struct {
		key  CircuitKey
		want string
	}{
		{CircuitKey{}, "0:0"},
		{CircuitKey{ChanID: 880_000<<40 | 12<<16 | 1, HtlcID: 7},
			"967570232443666433:7"},
		{CircuitKey{ChanID: math.MaxUint64, HtlcID: 1 << 63},
			"18446744073709551615:9223372036854775808"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, tc.key.String())
		k, err := ParseCircuitKey(tc.want)
		require.NoError(t, err)
		require.Equal(t, tc.key, k)
	}

	for _, bad := range []string{"", "1", "1:", ":1", "a:1", "1:-1",
		"18446744073709551616:0"} {

		_, err := ParseCircuitKey(bad)
		require.ErrorIs(t, err, ErrInvalidCircuitKey, bad)
	}
}
