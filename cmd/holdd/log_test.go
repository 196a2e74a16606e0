package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
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
	engn := l.sub(subENGN).(*logrus.Entry)
	intc := l.sub(subINTC).(*logrus.Entry)
	require.True(t, engn.Logger.IsLevelEnabled(logrus.DebugLevel))
	require.False(t, intc.Logger.IsLevelEnabled(logrus.InfoLevel))
	require.True(t, intc.Logger.IsLevelEnabled(logrus.WarnLevel))
	require.Equal(t, "ENGN", engn.Data["sub"])
}

// TestDebugLevelAcceptsEveryLoggerTag sets each subsystem that has a logger
// on its own. The tags named outright are those holdd logs under and once
// refused (debuglevel=MBOX=debug stopped holdd from starting).
func TestDebugLevelAcceptsEveryLoggerTag(t *testing.T) {
	tags := append([]string{"MBOX", "MBXC", "RCPT"}, subsystemTags()...)
	for _, tag := range tags {
		for _, in := range []string{
			tag + "=debug",
			"warn," + strings.ToLower(tag) + "=trace",
		} {
			t.Run(in, func(t *testing.T) {
				def, subs, err := parseDebugLevel(in)
				require.NoError(t, err)
				want := logrus.InfoLevel
				if strings.HasPrefix(in, "warn,") {
					want = logrus.WarnLevel
				}
				require.Equal(t, want, def)
				require.Len(t, subs, 1)
				require.Contains(t, subs, tag)
			})
		}
	}
}

// TestSubsystemRegistry checks the table debuglevel and the docs come from.
func TestSubsystemRegistry(t *testing.T) {
	tests := []struct {
		name string
		reg  func()
	}{
		{"repeated tag", func() { newSubsystem("HOLD", "again") }},
		{"lower case", func() { newSubsystem("hold", "") }},
		{"too long", func() { newSubsystem("HOLDD", "") }},
		{"unregistered logger", func() {
			l := &loggers{def: logrus.InfoLevel}
			l.sub(subsystem{tag: "NOPE"})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := subsystemTags()
			require.Panics(t, tc.reg)
			require.Equal(t, before, subsystemTags())
		})
	}
}

// TestLogLineHasOneSubsystemField logs through a subsystem's logger the way
// the mailbox, custom-message and peer-link packages do, adding a
// "subsystem" field of their own: each line names its subsystem once, as
// sub=TAG.
func TestLogLineHasOneSubsystemField(t *testing.T) {
	tests := []struct {
		name string
		log  func(logrus.FieldLogger)
		want string
	}{
		{
			name: "plain",
			log:  func(l logrus.FieldLogger) { l.Info("up") },
			want: `level=info msg=up sub=MBOX`,
		},
		{
			name: "package names itself",
			log: func(l logrus.FieldLogger) {
				l.WithField("subsystem", "mailbox").
					WithField("peer", "02ab").Info("up")
			},
			want: `level=info msg=up peer=02ab sub=MBOX`,
		},
		{
			name: "package names itself with fields",
			log: func(l logrus.FieldLogger) {
				l.WithFields(logrus.Fields{
					"subsystem": "peerlink",
					"peer":      "02ab",
				}).Warn("down")
			},
			want: `level=warning msg=down peer=02ab sub=MBOX`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := &loggers{out: &buf, def: logrus.InfoLevel}
			tc.log(l.sub(subMBOX))

			line := strings.TrimSuffix(buf.String(), "\n")
			require.NotContains(t, line, "\n")
			_, rest, ok := strings.Cut(line, `" `)
			require.True(t, ok, line)
			require.Equal(t, tc.want, rest)
		})
	}
}

// TestOperatorDocListsEverySubsystem keeps docs/operator.md's table of log
// subsystems equal to the registry.
func TestOperatorDocListsEverySubsystem(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operator.md")
	require.NoError(t, err)
	_, logs, ok := strings.Cut(string(doc), "\n## Logs\n")
	require.True(t, ok, "operator.md has no Logs section")
	logs, _, _ = strings.Cut(logs, "\n## ")

	row := regexp.MustCompile("(?m)^\\| `([A-Z]{4})` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(logs, -1) {
		documented = append(documented, m[1])
	}
	require.Equal(t, subsystemTags(), documented)
}
