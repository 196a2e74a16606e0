package main

import (
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

func TestParseDebugLevel(t *testing.T) {
	tests := []struct {
		in      string
		def     logrus.Level
		subs    map[string]logrus.Level
		errLike string
	}{
		{"info", logrus.InfoLevel, map[string]logrus.Level{}, ""},
		{"debug", logrus.DebugLevel, map[string]logrus.Level{}, ""},
		{"warn,ENGN=debug,intc=trace", logrus.WarnLevel,
			map[string]logrus.Level{"ENGN": logrus.DebugLevel,
				"INTC": logrus.TraceLevel}, ""},
		{"RLSE=error", logrus.InfoLevel,
			map[string]logrus.Level{"RLSE": logrus.ErrorLevel}, ""},
		{"loud", 0, nil, "debuglevel"},
		{"info,NOPE=debug", 0, nil, "unknown subsystem"},
		{"info,ENGN=loud", 0, nil, "ENGN=loud"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			def, subs, err := parseDebugLevel(tc.in)
			if tc.errLike != "" {
				require.ErrorIs(t, err, errConfig)
				require.Contains(t, err.Error(), tc.errLike)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.def, def)
			require.Equal(t, tc.subs, subs)
		})
	}
}

func TestSubsystemLoggersHaveTheirOwnLevel(t *testing.T) {
	l := &loggers{levels: map[string]logrus.Level{
		"ENGN": logrus.DebugLevel}, def: logrus.WarnLevel}
	engn := l.sub("ENGN").(*logrus.Entry)
	intc := l.sub("INTC").(*logrus.Entry)
	require.True(t, engn.Logger.IsLevelEnabled(logrus.DebugLevel))
	require.False(t, intc.Logger.IsLevelEnabled(logrus.InfoLevel))
	require.True(t, intc.Logger.IsLevelEnabled(logrus.WarnLevel))
	require.Equal(t, "ENGN", engn.Data["sub"])
}
