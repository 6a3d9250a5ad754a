package filemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/logcap/logcap/internal/natstest"
	core "github.com/logcap/logcap/sources/filemon"
	"github.com/logcap/logcap/streams"
)

// Two rotations while NATS is down: the file created by the first one is renamed away before
// NATS is back. Found by the soak (NATS restarted every 2 minutes, the file rotated every 2 s):
// the monitor gave up on a new file whose position it could not read, and a file rotated away
// before the next try was never read — 400 to 800 lines lost per NATS restart.
func TestRotationsWhileNATSDown(t *testing.T) {
	h, s1, opts := restartableHarness(t)
	nc := h.nc
	path := h.path("app.log")
	r := h.start(core.Options{Paths: []string{path}, StartAt: "beginning"})
	defer r.stop(t)

	appendFile(t, path, numbered("a", 0, 100))
	h.waitLines(path, 100, 20*time.Second)

	s1.Shutdown()
	s1.WaitForShutdown()
	natstest.Eventually(t, 10*time.Second, func() error {
		if nc.IsConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	appendFile(t, path, numbered("a", 100, 200))
	rotate := func(to string) {
		if err := os.Rename(path, h.path(to)); err != nil {
			t.Fatal(err)
		}
	}
	rotate("app.log.1")
	appendFile(t, path, numbered("a", 200, 300))
	time.Sleep(500 * time.Millisecond) // several polls see the new file while NATS is away
	waitHeld(t, r, 1)
	rotate("app.log.2")
	appendFile(t, path, numbered("a", 300, 400))
	time.Sleep(500 * time.Millisecond)

	natstest.RunServer(t, opts) // same port, same store
	natstest.Eventually(t, 10*time.Second, func() error {
		if !nc.IsConnected() {
			return errors.New("not reconnected yet")
		}
		return nil
	})
	got := h.waitLines(path, 400, 30*time.Second)
	exactlyOnce(t, got, numbered("a", 0, 400))
}

// Eight rotations while NATS is down, generations older than three deleted: each generation
// is held from its creation and read through its descriptor once NATS is back, in order.
// A monitor that opened a file only once NATS answered for its position lost every
// generation created and renamed away meanwhile; one that looked at a successor by its path
// (now another file, or none) waited close_removed_after per generation.
func TestHeldGenerationsWhileNATSDown(t *testing.T) {
	h, s1, opts := restartableHarness(t)
	nc := h.nc
	path := h.path("app.log")
	r := h.start(core.Options{Paths: []string{path}, StartAt: "beginning"})
	defer r.stop(t)

	appendFile(t, path, numbered("a", 0, 100))
	h.waitLines(path, 100, 20*time.Second)
	s1.Shutdown()
	s1.WaitForShutdown()
	n := 100
	var gens []string
	for g := 1; g <= 8; g++ {
		appendFile(t, path, numbered("a", n, n+100))
		n += 100
		time.Sleep(100 * time.Millisecond)
		waitHeld(t, r, g-1) // each generation after the first is a new file
		to := fmt.Sprintf("%s.%d", path, g)
		if err := os.Rename(path, to); err != nil {
			t.Fatal(err)
		}
		gens = append(gens, to)
		if len(gens) > 3 {
			os.Remove(gens[0])
			gens = gens[1:]
		}
	}
	natstest.RunServer(t, opts)
	natstest.Eventually(t, 10*time.Second, func() error {
		if !nc.IsConnected() {
			return errors.New("not reconnected yet")
		}
		return nil
	})
	got := h.waitLines(path, n, 30*time.Second)
	exactlyOnce(t, got, numbered("a", 0, n))
}

// waitHeld waits until the monitor holds n files it could not place (NATS is away): the
// file just created is held before the test renames it out of the glob. How soon a new file
// is held depends on the machine's load (its fsnotify event, a rescan); one renamed away
// and deleted before is lost and counted as such, which is not what these tests are about.
func waitHeld(t *testing.T, r *running, n int) {
	t.Helper()
	natstest.Eventually(t, 10*time.Second, func() error {
		if st := r.m.Stats(); st.Pending < n {
			return fmt.Errorf("%d files held, want %d: %+v", st.Pending, n, st)
		}
		return nil
	})
}

// restartableHarness is a harness on a nats-server the test can shut down and start again
// (RunServer(t, opts): same port, same store), connected as logcap connects: reconnecting
// for ever, failing requests at once while disconnected.
func restartableHarness(t *testing.T) (*harness, *server.Server, *server.Options) {
	opts := natstest.Options(t.TempDir())
	s1 := natstest.RunServer(t, opts)
	opts.Port = s1.Addr().(*net.TCPAddr).Port
	nc, err := nats.Connect(s1.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	t.Cleanup(func() { nc.Close(); <-closed })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30, MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}); err != nil {
		t.Fatal(err)
	}
	obs, logs := observer.New(zapcore.DebugLevel)
	return &harness{t: t, srv: s1, nc: nc, js: js, dir: t.TempDir(), logs: logs, log: zap.New(obs)}, s1, opts
}
