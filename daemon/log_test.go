package daemon

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
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

// TestLogLineHasOneSubsystemField checks that a line names its subsystem
// once, as sub=TAG: the daemon's logger adds the tag, and no package adds a
// subsystem field of its own on top (as four once did, printing both
// sub=MBOX and subsystem=mailbox).
func TestLogLineHasOneSubsystemField(t *testing.T) {
	var buf bytes.Buffer
	l := &loggers{out: &buf, def: logrus.InfoLevel}
	l.sub(subMBOX).WithField("peer", "02ab").Info("up")
	line := strings.TrimSuffix(buf.String(), "\n")
	_, rest, ok := strings.Cut(line, `" `)
	require.True(t, ok, line)
	require.Equal(t, `level=info msg=up peer=02ab sub=MBOX`, rest)

	// Every package logs through the logger it is handed; a field
	// naming the package again would repeat the tag in other words.
	ownField := regexp.MustCompile(`WithField\("subsystem"|"subsystem":`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry,
		err error) error {

		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") ||
			strings.HasSuffix(path, "_test.go") {

			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		require.False(t, ownField.Match(src),
			"%s adds a subsystem field of its own", path)
		return nil
	})
	require.NoError(t, err)
}

// TestOperatorDocListsEverySubsystem keeps docs/operator.md's table of log
// subsystems equal to the registry.
func TestOperatorDocListsEverySubsystem(t *testing.T) {
	doc, err := os.ReadFile("../docs/operator.md")
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
