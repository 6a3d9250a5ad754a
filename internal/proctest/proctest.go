// Package proctest runs the real logcap binary as a child process, for the tests that only a
// process can make: kill -9 in the middle of a burst, SIGTERM and exit codes, the nats CLI
// against a running logcap.
package proctest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/modules/lifecycle"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/logcap once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "logcap-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "logcap")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, "./cmd/logcap")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // every port FreePort gave out in this process
)

// FreePort returns a loopback port nobody listens on right now, and never one it gave out
// before in this process. The kernel picks a port at random for each bind to port 0, so
// one just closed can come again: 0.5% of sets of nine (an embedded cluster's ports) held
// a duplicate, and two nodes of a test then asked for the same port.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !ports[port] {
			ports[port] = true
			return port
		}
	}
	t.Fatal("proctest: no port not given out before in 100 tries")
	return 0
}

// Proc is a running logcap.
type Proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	group  *lifecycle.Group
	exited chan error
	mu     sync.Mutex
	logs   bytes.Buffer
}

// Start runs `logcap run -c config` with extra environment.
func Start(t testing.TB, config string, env ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, exited: make(chan error, 1), group: lifecycle.New("proctest", zap.NewNop())}
	p.cmd = exec.Command(Binary(t), "run", "-c", config)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &lockedWriter{p}
	p.cmd.Stderr = &lockedWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = p.group.Go("proctest: wait for logcap", func(context.Context) error {
		p.exited <- p.cmd.Wait()
		return nil
	})
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.group.Stop(context.Background())
	})
	return p
}

type lockedWriter struct{ p *Proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.logs.Write(b)
}

// Logs returns what the process printed so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// WaitLog waits up to timeout for the process's output to contain want, and reports
// whether it did. What the process writes reaches Logs through a pipe and the goroutine
// os/exec copies it with, so a line logged before an effect the test has seen (a metric,
// /readyz, a file) may not be in Logs yet: a test that asserts a log line of a running
// process waits for it here.
func (p *Proc) WaitLog(want string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Logs(), want) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// WaitReady polls url (e.g. the admin /readyz) until it answers 200.
func (p *Proc) WaitReady(url string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-p.exited:
			p.t.Fatalf("logcap exited before ready: %v\n%s", err, p.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("%s not ready after %v\n%s", url, timeout, p.Logs())
}

// Signal sends sig and waits up to timeout for the exit; it returns the exit error (nil for
// exit 0) and how long the exit took.
func (p *Proc) Signal(sig syscall.Signal, timeout time.Duration) (error, time.Duration) {
	p.t.Helper()
	began := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		return err, time.Since(began)
	case <-time.After(timeout):
		p.t.Fatalf("logcap did not exit within %v of %v\n%s", timeout, sig, p.Logs())
		return nil, 0
	}
}

// Send sends sig and returns at once (SIGHUP: the process goes on).
func (p *Proc) Send(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// Kill9 kills the process with SIGKILL and waits for it.
func (p *Proc) Kill9() {
	p.t.Helper()
	_, _ = p.Signal(syscall.SIGKILL, 10*time.Second)
}

// AppendLines appends numbered lines "line <i> <label>" for i in [from, to) to path, in
// 64 KiB writes: the input of the kill -9, cluster and restart tests.
func AppendLines(t testing.TB, path string, from, to int, label string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	for i := from; i < to; i++ {
		fmt.Fprintf(w, "line %d %s\n", i, label)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
