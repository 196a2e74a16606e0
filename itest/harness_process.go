//go:build itest

package itest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrProcessExited is returned when a process the harness waits on has
// exited.
var ErrProcessExited = errors.New("process exited")

// process is one child process (btcd, lnd or holdd) running in its own
// process group, with stdout and stderr appended to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	logFile *os.File

	// done is closed once the process has been reaped; err is its exit
	// error, valid after done is closed.
	done chan struct{}
	err  error
}

// spawnReq asks the spawner goroutine to start a command.
type spawnReq struct {
	cmd  *exec.Cmd
	resp chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// spawn starts cmd from one goroutine locked to one OS thread that never
// exits. Pdeathsig fires when the thread that forked the child exits, not the
// process, so forking from a thread the Go runtime might retire could kill a
// child in the middle of a test.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for req := range spawnCh {
				req.resp <- req.cmd.Start()
			}
		}()
	})

	resp := make(chan error, 1)
	spawnCh <- spawnReq{cmd: cmd, resp: resp}
	return <-resp
}

// startProcess starts bin with args in dir. The child gets its own process
// group (so it and anything it forks can be signalled together) and
// SIGKILL when the test binary dies, so a panic or a -timeout leaves nothing
// running.
func startProcess(name, logPath, dir, bin string, args ...string) (*process,
	error) {

	logFile, err := os.OpenFile(
		logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644,
	)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	fmt.Fprintf(logFile, "=== %s: %s %s\n", time.Now().Format(
		time.RFC3339Nano), bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := spawn(cmd); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}

	p := &process{
		name:    name,
		logPath: logPath,
		cmd:     cmd,
		logFile: logFile,
		done:    make(chan struct{}),
	}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(logFile, "=== %s: exited: %v\n",
			time.Now().Format(time.RFC3339Nano), p.err)
		logFile.Close()
		close(p.done)
	}()

	return p, nil
}

// exited reports whether the process has been reaped, and its exit error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// checkAlive returns ErrProcessExited, with the log tail, if the process is
// gone.
func (p *process) checkAlive() error {
	if gone, err := p.exited(); gone {
		return fmt.Errorf("%w: %s (%v); last log lines:\n%s",
			ErrProcessExited, p.name, err, tailFile(p.logPath, 30))
	}
	return nil
}

// signalGroup sends sig to the process group; errors (group already gone)
// are ignored.
func (p *process) signalGroup(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stop asks the process group to terminate with SIGTERM and waits up to
// grace, then kills the group.
func (p *process) stop(grace time.Duration) error {
	if gone, _ := p.exited(); gone {
		return nil
	}
	p.signalGroup(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	p.signalGroup(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: not reaped 10s after SIGKILL", p.name)
	}
	return fmt.Errorf("%s: did not stop within %v, killed", p.name, grace)
}

// kill sends SIGKILL to the process group and waits until it is reaped.
func (p *process) kill() error {
	p.signalGroup(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: not reaped 10s after SIGKILL", p.name)
	}
}

// tailFile returns the last n lines of a file, reading at most its last
// 512 KiB (lnd's debug log grows to many MB).
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot open %s: %v)", path, err)
	}
	defer f.Close()

	const maxRead = 512 << 10
	info, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot stat %s: %v)", path, err)
	}
	off := info.Size() - maxRead
	if off < 0 {
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot seek %s: %v)", path, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}

	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

var (
	portMtx   sync.Mutex
	usedPorts = make(map[int]struct{})
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that this harness has not handed out before.
func freePort() (int, error) {
	portMtx.Lock()
	defer portMtx.Unlock()

	for range 100 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("listen for a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, ok := usedPorts[port]; ok {
			continue
		}
		usedPorts[port] = struct{}{}
		return port, nil
	}
	return 0, errors.New("no free port after 100 attempts")
}

// freeAddr returns "127.0.0.1:<free port>".
func freeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}
