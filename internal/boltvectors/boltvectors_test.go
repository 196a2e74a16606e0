package boltvectors

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records whether the test failed or was
// skipped; both end the calling goroutine, as the real ones do.
type recorder struct {
	testing.TB
	failed, skipped bool
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}

func (r *recorder) Skipf(string, ...any) {
	r.skipped = true
	runtime.Goexit()
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }

func (r *recorder) FailNow() {
	r.failed = true
	runtime.Goexit()
}

func load(t *testing.T, name string) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var v any
		Load(r, name, &v)
	}()
	<-done
	return r
}

// TestMissingVectorFailsUnderCI: under CI=true a missing vector fails the
// test; elsewhere it skips it.
func TestMissingVectorFailsUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := load(t, "no-such-vector.json")
	require.True(t, r.failed)
	require.False(t, r.skipped)

	t.Setenv("CI", "")
	r = load(t, "no-such-vector.json")
	require.False(t, r.failed)
	require.True(t, r.skipped)
}
