// Package boltvectors loads the BOLT test vectors the tests read from
// ../shared/bolts-vectors next to the repository root.
package boltvectors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Load decodes the BOLT test vector name into v. A missing vector fails the
// test when CI=true and skips it elsewhere.
func Load(t testing.TB, name string, v any) {
	t.Helper()

	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test directory")
		}
		dir = parent
	}

	path := filepath.Join(dir, "..", "shared", "bolts-vectors", name)
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test vector %s missing: %v", path, err)
		}
		t.Skipf("test vector %s missing: %v", path, err)
	}
	require.NoError(t, json.Unmarshal(b, v), name)
}
