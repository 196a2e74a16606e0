package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHoldcliDoesNotLinkDaemonState keeps the CLI a client: it must not
// link holdd's store, the daemon or the engine's persistence. (lnd's lnrpc
// itself links lnd's sqldb through invoices and graph/db, so SQLite as
// such cannot be kept out while holdcli speaks to lnd; holdd's own state
// can.)
func TestHoldcliDoesNotLinkDaemonState(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "github.com/holdd/holdd/store",
			"github.com/holdd/holdd/daemon":

			t.Errorf("holdcli links %s", pkg)
		}
	}
}
