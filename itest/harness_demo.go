//go:build itest

package itest

import (
	"os"
	"path/filepath"
	"sync"
	"time"
)

// setupMilestones are the log files NewNetwork creates and what each one's
// appearance means. build-holdd.log is written when the build ends, which
// happens while the chain and channels are set up.
var setupMilestones = []struct {
	file  string
	stage string
}{
	{"btcd.log", "btcd started (regtest)"},
	{"lnd-S.log", "lnd S, L (LSP), P starting; then funding the " +
		"wallets, mining past segwit, opening S->L and L->P and " +
		"waiting for gossip"},
	{"build-holdd.log", "holdd compiled (./cmd/holdd)"},
	{"holdd.log", "holdd starting on L (HTLC interceptor, peer link)"},
}

// WatchSetup reports the stages of a NewNetwork running in this process, by
// watching for the log files it creates, so that a program showing the
// setup live (make demo) can say what the seconds go to without a hook in
// NewNetwork. parent must be the directory NewNetwork creates its BaseDir
// in (os.TempDir(); point TMPDIR at a fresh directory so that nothing else
// creates one there). report is called from a goroutine, once per stage;
// the returned stop ends the watch and waits for it.
func WatchSetup(parent string, report func(stage string)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(100 * time.Millisecond)
		defer ticker.Stop()

		seen := make([]bool, len(setupMilestones))
		left := len(setupMilestones)
		for left > 0 {
			select {
			case <-done:
				return
			case <-ticker.C:
			}
			logDirs, _ := filepath.Glob(filepath.Join(parent, "*",
				"logs"))
			for i, m := range setupMilestones {
				if !seen[i] && exists(logDirs, m.file) {
					seen[i] = true
					left--
					report(m.stage)
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// exists reports whether name is in any of dirs.
func exists(dirs []string, name string) bool {
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}
