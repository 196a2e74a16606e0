package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	flags "github.com/jessevdk/go-flags"
	"github.com/stretchr/testify/require"
)

// TestSampleConfigListsEveryOption keeps sample-holdd.conf in step with the
// config struct: every option appears (commented out) with its group
// namespace, and nothing appears that holdd does not know.
func TestSampleConfigListsEveryOption(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join("..",
		"sample-holdd.conf"))
	require.NoError(t, err)

	parser := flags.NewParser(defaultConfig(), flags.Default)
	known := map[string]bool{}
	var walk func(g *flags.Group)
	walk = func(g *flags.Group) {
		for _, opt := range g.Options() {
			name := opt.LongName
			if g.Namespace != "" {
				name = g.Namespace + "." + name
			}
			known[name] = true
		}
		for _, sub := range g.Groups() {
			walk(sub)
		}
	}
	walk(parser.Group)
	// Command-line only.
	delete(known, "version")
	delete(known, "configfile")

	listed := map[string]bool{}
	re := regexp.MustCompile(`(?m)^; ([a-z0-9.-]+)=`)
	for _, m := range re.FindAllStringSubmatch(string(sample), -1) {
		listed[m[1]] = true
	}
	for name := range known {
		require.True(t, listed[name], "sample-holdd.conf lacks %s", name)
	}
	for name := range listed {
		require.True(t, known[name], "sample-holdd.conf lists unknown "+
			"option %s", name)
	}
}

// TestSampleConfigUncommentedParses uncomments every single-valued default
// line and checks holdd accepts the result as its config file.
func TestSampleConfigUncommentedParses(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join("..",
		"sample-holdd.conf"))
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^; ([a-z0-9.-]+=[^\s]+)$`)
	uncommented := re.ReplaceAllString(string(sample), "$1")

	dir := t.TempDir()
	path := filepath.Join(dir, "holdd.conf")
	require.NoError(t, os.WriteFile(path, []byte(uncommented), 0o600))
	cfg, err := LoadConfig([]string{"--holddir=" + dir,
		"--configfile=" + path})
	require.NoError(t, err)

	// Spot-check that the uncommented defaults are the real defaults.
	def := defaultConfig()
	require.Equal(t, def.Hold.FailbackMargin, cfg.Hold.FailbackMargin)
	require.Equal(t, def.Release.PathExpiry, cfg.Release.PathExpiry)
	require.Equal(t, def.Lnd.P2PAddr, cfg.Lnd.P2PAddr)
	require.Equal(t, def.RPCListen, cfg.RPCListen)
	require.Equal(t, []uint64{75537}, cfg.Hold.Types)
}
