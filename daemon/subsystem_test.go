package daemon

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// events records the lifecycle calls of fake subsystems in order.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

// fakeSubsystem records its start and stop. startErr fails its Start;
// blockStart makes Start wait for its ctx; fatal is set once started.
type fakeSubsystem struct {
	name       string
	ev         *events
	startErr   error
	blockStart bool
	started    chan func(error)
}

func newFake(name string, ev *events) *fakeSubsystem {
	return &fakeSubsystem{name: name, ev: ev,
		started: make(chan func(error), 1)}
}

func (f *fakeSubsystem) Name() string { return f.name }

func (f *fakeSubsystem) Start(ctx context.Context, fatal func(error)) error {
	f.ev.add("start " + f.name)
	if f.blockStart {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.startErr != nil {
		return f.startErr
	}
	f.started <- fatal
	return nil
}

func (f *fakeSubsystem) Stop() error {
	f.ev.add("stop " + f.name)
	return nil
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// runAsync runs subs on a goroutine and returns where its result arrives.
func runAsync(ctx context.Context, subs []lifecycle) <-chan error {
	done := make(chan error, 1)
	go func() { done <- runSubsystems(ctx, subs, quietLog()) }()
	return done
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("runSubsystems did not return")
		return nil
	}
}

// TestSubsystemsStartInOrderStopInReverse: a shutdown asked for through
// ctx stops every subsystem, last started first, and is no error.
func TestSubsystemsStartInOrderStopInReverse(t *testing.T) {
	ev := &events{}
	a, b, c := newFake("a", ev), newFake("b", ev), newFake("c", ev)
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, []lifecycle{a, b, c})
	<-c.started
	cancel()

	require.NoError(t, result(t, done))
	require.Equal(t, []string{"start a", "start b", "start c",
		"stop c", "stop b", "stop a"}, ev.get())
}

// TestSubsystemFatalErrorStopsAll: a fatal error in one subsystem stops
// them all, in reverse order, and is returned naming the subsystem.
func TestSubsystemFatalErrorStopsAll(t *testing.T) {
	ev := &events{}
	a, b, c := newFake("a", ev), newFake("rpc", ev), newFake("c", ev)
	errServe := errors.New("listener closed")
	done := runAsync(context.Background(), []lifecycle{a, b, c})
	<-a.started
	fatal := <-b.started
	<-c.started
	fatal(errServe)
	// A second report is dropped, never blocks.
	fatal(errors.New("again"))

	err := result(t, done)
	require.ErrorIs(t, err, errServe)
	require.EqualError(t, err, "rpc: listener closed")
	require.Equal(t, []string{"start a", "start rpc", "start c",
		"stop c", "stop rpc", "stop a"}, ev.get())
}

// TestSubsystemStartFailureStopsStarted: a failed start stops the
// subsystems already started, in reverse, starts none after it, and is
// returned.
func TestSubsystemStartFailureStopsStarted(t *testing.T) {
	ev := &events{}
	errBind := errors.New("address in use")
	a, b, c, d := newFake("a", ev), newFake("b", ev), newFake("c", ev),
		newFake("d", ev)
	c.startErr = errBind

	err := result(t, runAsync(context.Background(),
		[]lifecycle{a, b, c, d}))
	require.ErrorIs(t, err, errBind)
	require.EqualError(t, err, "c: start: address in use")
	require.Equal(t, []string{"start a", "start b", "start c",
		"stop b", "stop a"}, ev.get())
}

// TestSubsystemStartCutShortByShutdown: a shutdown asked for while a
// subsystem still starts ends that start and stops the ones before it.
func TestSubsystemStartCutShortByShutdown(t *testing.T) {
	ev := &events{}
	a, b := newFake("a", ev), newFake("engine", ev)
	b.blockStart = true
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, []lifecycle{a, b})
	<-a.started
	require.Eventually(t, func() bool {
		return len(ev.get()) == 2
	}, 5*time.Second, time.Millisecond)
	cancel()

	err := result(t, done)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []string{"start a", "start engine", "stop a"},
		ev.get())
}

// TestSubsystemContextOutlivesShutdownSignal: the subsystems' context is
// still live while they stop, so each stops in its turn rather than all
// at once when the daemon's context ends.
func TestSubsystemContextOutlivesShutdownSignal(t *testing.T) {
	ev := &events{}
	var live context.Context
	probe := &ctxProbe{fakeSubsystem: newFake("probe", ev), ctx: &live}
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, []lifecycle{probe})
	<-probe.started
	cancel()

	require.NoError(t, result(t, done))
	require.Equal(t, []string{"start probe", "stop probe"}, ev.get())
	require.True(t, probe.liveAtStop)
}

// ctxProbe records whether its Start context was live when Stop ran.
type ctxProbe struct {
	*fakeSubsystem
	ctx        *context.Context
	liveAtStop bool
}

func (p *ctxProbe) Start(ctx context.Context, fatal func(error)) error {
	*p.ctx = ctx
	return p.fakeSubsystem.Start(ctx, fatal)
}

func (p *ctxProbe) Stop() error {
	p.liveAtStop = (*p.ctx).Err() == nil
	return p.fakeSubsystem.Stop()
}
