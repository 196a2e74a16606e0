package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdd/holdd/plugin"
	"github.com/stretchr/testify/require"
)

// crashChildEnv carries the database path to the writer child process of
// TestCrashKeepsAcknowledgedWrites.
const crashChildEnv = "HOLDD_STORE_CRASH_CHILD"

// crashWorkers write concurrently in the child, so that a kill lands while
// transactions are queued and in progress.
const crashWorkers = 4

// crashSteps is the state path each key of the child takes: inserted held,
// then (for some keys) released, then (for some of those) resumed.
var crashSteps = []plugin.HoldState{plugin.StateHeld, plugin.StateReleased, plugin.StateResumed}

// stepsFor is how far along crashSteps the child takes key id.
func stepsFor(id uint64) int {
	switch {
	case id%4 == 0:
		return 3
	case id%2 == 0:
		return 2
	}
	return 1
}

// TestCrashChild is the writer TestCrashKeepsAcknowledgedWrites runs in a
// child process and kills; run directly, it skips.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("runs only as the child of " +
			"TestCrashKeepsAcknowledgedWrites")
	}
	chanID, err := strconv.ParseUint(os.Getenv(crashChildEnv+"_CHAN"),
		10, 64)
	require.NoError(t, err)

	ctx := context.Background()
	s, err := Open(ctx, path)
	require.NoError(t, err)

	// Each acknowledgement is one write(2) to the pipe, made only after
	// the store call returned: what the parent reads was committed.
	var outMu sync.Mutex
	ack := func(id uint64, st plugin.HoldState) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, "ack %d %s\n", id, st)
	}

	var wg sync.WaitGroup
	for w := range uint64(crashWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The parent kills us long before this runs out.
			for i := uint64(0); i < 1_000_000; i++ {
				id := w + crashWorkers*i
				key := plugin.CircuitKey{ChanID: chanID, HtlcID: id}
				at := t0.Add(time.Duration(id) * time.Second)
				_, _, err := s.InsertHeld(ctx, testHTLC(key, at))
				if err != nil {
					panic(err)
				}
				ack(id, plugin.StateHeld)
				for n := 1; n < stepsFor(id); n++ {
					_, err := s.Transition(ctx, key,
						[]plugin.HoldState{crashSteps[n-1]},
						crashSteps[n], "onion", at)
					if err != nil {
						panic(err)
					}
					ack(id, crashSteps[n])
				}
			}
		}()
	}
	wg.Wait()
}

// TestCrashKeepsAcknowledgedWrites SIGKILLs a process in the middle of a
// burst of concurrent holds and transitions, three times over the same
// database, and checks after each crash that the database is intact, that
// every write the process had acknowledged is there, and that no
// transaction is half applied: each HTLC's state matches its event history.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "holdd.db")
	ctx := context.Background()

	acked := make(map[plugin.CircuitKey]int)
	for round := range 3 {
		chanID := uint64(round + 1)
		killAfter := 120 + 60*round

		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$",
			"-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path,
			fmt.Sprintf("%s_CHAN=%d", crashChildEnv, chanID))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())

		// Read acknowledgements until killAfter, kill, then drain what
		// the child wrote before it died.
		n := 0
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "ack ") {
				continue
			}
			var (
				id uint64
				st string
			)
			_, err := fmt.Sscanf(line, "ack %d %s", &id, &st)
			require.NoError(t, err, line)
			key := plugin.CircuitKey{ChanID: chanID, HtlcID: id}
			step := 0
			for i, s := range crashSteps {
				if string(s) == st {
					step = i + 1
				}
			}
			require.NotZero(t, step, line)
			acked[key] = max(acked[key], step)
			n++
			if n == killAfter {
				require.NoError(t, cmd.Process.Kill())
			}
		}
		require.NoError(t, sc.Err())
		err = cmd.Wait()
		require.Error(t, err, "the child must die by the kill, not "+
			"finish")
		require.GreaterOrEqual(t, n, killAfter)

		s, err := Open(ctx, path)
		require.NoError(t, err)

		var check string
		require.NoError(t, s.db.QueryRowContext(ctx,
			"PRAGMA integrity_check").Scan(&check))
		require.Equal(t, "ok", check)

		// Every acknowledged write survived.
		for key, step := range acked {
			rec, err := s.GetHeld(ctx, key)
			require.NoError(t, err, "acknowledged %v lost", key)
			got := 0
			for i, st := range crashSteps {
				if rec.State == st {
					got = i + 1
				}
			}
			require.GreaterOrEqual(t, got, step, "%v is %s, "+
				"acknowledged %s", key, rec.State,
				crashSteps[step-1])
			require.Equal(t, testHTLC(key, rec.HeldAt).PaymentHash,
				rec.PaymentHash)
		}

		// Nothing is half written: each record's state is the end of
		// its event history, which follows the child's path, and a
		// record was written only if the child got that far.
		all, err := s.ListHTLCs(ctx, plugin.ListFilter{})
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(all), len(acked))
		for _, rec := range all {
			events, err := s.Events(ctx, rec.Key)
			require.NoError(t, err)
			require.LessOrEqual(t, len(events), stepsFor(
				rec.Key.HtlcID), "%v", rec.Key)
			for i, ev := range events {
				require.Equal(t, crashSteps[i], ev.To, "%v", rec.Key)
				if i > 0 {
					require.Equal(t, crashSteps[i-1], ev.From)
				}
			}
			require.Equal(t, events[len(events)-1].To, rec.State)
			if rec.State == plugin.StateReleased ||
				rec.State == plugin.StateResumed {

				require.Equal(t, "onion", rec.ReleaseSource)
			}
		}
		require.NoError(t, s.Close())
		t.Logf("round %d: %d acknowledgements before the kill, %d "+
			"records", round, n, len(all))
	}
}
