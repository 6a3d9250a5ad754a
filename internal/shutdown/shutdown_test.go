// Package shutdown proves that a real `logcap run` stops within shutdown_timeout + 1 s when
// everything it talks to hangs: a Docker socket that accepts and never answers, an http sink
// destination that accepts and never answers, and a NATS server that is gone. The exit is
// non-zero and stderr names what did not finish.
package shutdown

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/modules/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hung accepts connections, reads and discards what the peer sends (so its writes never
// block), and never answers: a peer that is up but stuck.
type hung struct {
	ln       net.Listener
	g        *lifecycle.Group
	accepted atomic.Int64
	read     atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func serveHung(t *testing.T, network, addr string) *hung {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &hung{ln: ln, g: lifecycle.New("hung", zap.NewNop())}
	if err := h.g.Go("hung: accept "+addr, h.accept); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		if err := h.g.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return h
}

func (h *hung) accept(context.Context) error {
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return nil // closed at cleanup
		}
		h.accepted.Add(1)
		h.mu.Lock()
		h.conns = append(h.conns, c)
		h.mu.Unlock()
		if err := h.g.Go("hung: read", func(context.Context) error {
			_, _ = io.Copy(counter{&h.read}, c)
			return nil
		}); err != nil {
			c.Close()
		}
	}
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(b []byte) (int, error) { c.n.Add(int64(len(b))); return len(b), nil }

// received is how many bytes the peers sent, counted as they arrive.
func (h *hung) received() int64 {
	return h.read.Load()
}

func TestBoundedShutdownEverythingHung(t *testing.T) {
	const shutdownTimeout = 4 * time.Second
	dir := t.TempDir()
	// A short path: unix socket paths are limited to 108 bytes.
	sockDir, err := os.MkdirTemp("", "hung")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	dockerSock := filepath.Join(sockDir, "docker.sock")
	docker := serveHung(t, "unix", dockerSock)
	dest := serveHung(t, "tcp", "127.0.0.1:0")
	ns := natstest.RunServer(t, nil)

	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	adminPort := proctest.FreePort(t)
	cfg := filepath.Join(dir, "logcap.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`node: shut
data_dir: %s
shutdown_timeout: %v
nats: {urls: [%q]}
admin: {listen: "127.0.0.1:%d"}
sources:
  - {name: app, type: file, paths: [%q], start_at: beginning}
  - {name: containers, type: docker, host: "unix://%s"}
processors:
  - {name: parsed, input: logs.>, steps: [{json: {}}]}
sinks:
  - {name: hook, type: http, input: logs.>, url: "http://%s/ingest", batch: {max_wait: 100ms}}
`, filepath.Join(dir, "data"), shutdownTimeout, ns.ClientURL(), adminPort, filepath.Join(logs, "*.log"), dockerSock, dest.ln.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}

	p := proctest.Start(t, cfg)
	p.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort), 60*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logcap's log:\n%s", p.Logs())
		}
	})
	if err := os.WriteFile(filepath.Join(logs, "app.log"), []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Everything is in the middle of a call when the signal comes: the sink's POST was sent,
	// the docker monitor's request too.
	natstest.Eventually(t, 30*time.Second, func() error {
		if dest.received() == 0 {
			return errors.New("the http sink has not sent its batch yet")
		}
		if docker.received() == 0 {
			return errors.New("the docker monitor has not sent a request yet")
		}
		return nil
	})
	ns.Shutdown()
	ns.WaitForShutdown()
	natstest.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return errors.New("logcap still ready with NATS gone")
		}
		return nil
	})

	err, took := p.Signal(syscall.SIGTERM, shutdownTimeout+time.Second) // fails the test beyond the bound
	out := p.Logs()
	var last string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		last = l
	}
	t.Logf("SIGTERM → exit in %v (%v); stderr ends with:\n%s", took.Round(time.Millisecond), err, last)
	if err == nil {
		t.Errorf("exit 0: a stop that had to cut a hung write with NATS gone must fail")
	}
	// The last line is the one a user reads: it names each thing that hung and where it is.
	for _, want := range []string{
		"logcap: stop after",
		"http sink hook: stop: write unanswered after the", dest.ln.Addr().String(), // the sink and its destination
		"NATS " + ns.ClientURL() + " unreachable", // NATS and where
	} {
		if !strings.Contains(last, want) {
			t.Errorf("the last stderr line does not name %q", want)
		}
	}
	if strings.Contains(out, "still running after") {
		t.Errorf("a goroutine did not stop in time (a blocking call without a way out):\n%s", out)
	}
}
