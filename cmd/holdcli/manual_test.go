package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// repoRoot walks up from the test's directory to the directory holding
// go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test")
		dir = parent
	}
}

func generateManual(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, run([]string{"holdcli", "generatemanual"}, &out))
	return out.String()
}

// TestManualUpToDate keeps docs/cli.md in step with the command
// definitions.
func TestManualUpToDate(t *testing.T) {
	path := filepath.Join(repoRoot(t), "docs", "cli.md")
	onDisk, err := os.ReadFile(path)
	require.NoError(t, err, "docs/cli.md is missing; run `%s`",
		manualCommand)

	generated := generateManual(t)
	if string(onDisk) == generated {
		return
	}
	have := strings.Split(string(onDisk), "\n")
	want := strings.Split(generated, "\n")
	line := 0
	for line < len(have) && line < len(want) && have[line] == want[line] {
		line++
	}
	at := func(lines []string) string {
		if line < len(lines) {
			return lines[line]
		}
		return "<end of file>"
	}
	t.Fatalf("docs/cli.md is stale; run `%s`\nfirst difference at "+
		"line %d:\n  docs/cli.md: %q\n  generated:   %q",
		manualCommand, line+1, at(have), at(want))
}

// TestManualCoversCommands checks the generator against the definitions:
// every visible command gets a section with all its flags, and hidden
// commands get none.
func TestManualCoversCommands(t *testing.T) {
	doc := generateManual(t)

	want := []string{"getinfo", "listheld", "getheld",
		"getreleasepaths", "releaseheld", "failheld", "getpolicy",
		"setpolicy", "subscribeevents", "addreceivepaths",
		"listreceivepaths", "revokereceivepath",
		"subscribereceiveevents", "listmailbox", "unregistermailbox",
		"addasyncrecipient", "removeasyncrecipient",
		"listasyncrecipients", "getoffer", "payasync", "decode"}
	var sections []string
	for _, line := range strings.Split(doc, "\n") {
		if name, ok := strings.CutPrefix(line, "### "); ok {
			sections = append(sections, name)
		}
	}
	require.Equal(t, want, sections)
	require.NotContains(t, doc, "generatemanual\n")
	require.NotContains(t, doc, "### help")

	for _, flag := range []string{"--rpcserver", "--holddir",
		"--tlscertpath", "--macaroonpath", "--network", "--state",
		"--peer", "--chan_id", "--htlc_id", "--reason",
		"--failbackmargin", "--maxholdtime", "--maxperpeer",
		"--maxperpeermsat", "--maxtotal", "--maxtotalmsat",
		"--holdtype", "--pendingreleasettl", "--reset", "--count",
		"--expiry", "--all", "--pay_req", "--recipient_path",
		"--lnd.rpcserver"} {

		require.Contains(t, doc, "`"+flag, flag)
	}

	// The doc must not depend on who generates it.
	home, err := os.UserHomeDir()
	if err == nil && home != "/" {
		require.NotContains(t, doc, home)
	}
}
