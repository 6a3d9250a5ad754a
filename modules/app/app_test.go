package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/app"
	"github.com/logcap/logcap/modules/natsd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Node = "test"
	cfg.DataDir = t.TempDir()
	cfg.NATS.Embedded.Listen = "none"
	cfg.Admin.Listen = "none"
	cfg.ShutdownTimeout = config.Duration(5 * time.Second)
	return cfg
}

// Start and stop the whole app 50 times on one data_dir: the goroutine count returns to
// where it was (goleak names any goroutine left behind), every stop well inside
// shutdown_timeout.
func TestStartStop50(t *testing.T) {
	cfg := testConfig(t)
	cfg.Admin.Listen = "127.0.0.1:0"
	baseline := goleak.IgnoreCurrent()
	before := runtime.NumGoroutine()
	var slowest time.Duration
	for i := range 50 {
		a := app.New(cfg, zap.NewNop())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := a.Start(ctx); err != nil {
			cancel()
			t.Fatalf("start %d: %v", i, err)
		}
		began := time.Now()
		if err := a.Stop(ctx); err != nil {
			cancel()
			t.Fatalf("stop %d: %v", i, err)
		}
		cancel()
		slowest = max(slowest, time.Since(began))
	}
	// Find retries until the goroutines that are not in the baseline are gone, or fails
	// naming them with their stacks.
	if err := goleak.Find(baseline); err != nil {
		t.Errorf("goroutines left after 50 start/stop cycles (before: %d, now: %d): %v", before, runtime.NumGoroutine(), err)
	}
	t.Logf("50 start/stop cycles; slowest stop %v; goroutines before %d, after %d", slowest, before, runtime.NumGoroutine())
	if slowest > cfg.ShutdownTimeout.D()/2 {
		t.Errorf("slowest stop %v is not well inside shutdown_timeout %v", slowest, cfg.ShutdownTimeout)
	}
}

func start(t *testing.T, cfg *config.Config, opts ...fx.Option) (*fx.App, error) {
	t.Helper()
	a := app.New(cfg, zap.NewNop(), opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a, a.Start(ctx)
}

func stopWithin(t *testing.T, a *fx.App, bound time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	began := time.Now()
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(began); took > bound {
		t.Fatalf("stop took %v, bound %v", took, bound)
	}
}

func TestBadEnvironment(t *testing.T) {
	t.Run("data_dir not writable", func(t *testing.T) {
		cfg := testConfig(t)
		file := filepath.Join(t.TempDir(), "plain-file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.DataDir = filepath.Join(file, "data") // a path under a regular file: even root cannot
		_, err := start(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "data_dir "+cfg.DataDir) {
			t.Fatalf("want an error naming data_dir, got %v", err)
		}
	})
	t.Run("admin port in use", func(t *testing.T) {
		ln := listen(t)
		cfg := testConfig(t)
		cfg.Admin.Listen = ln.Addr().String()
		_, err := start(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "admin.listen "+ln.Addr().String()) {
			t.Fatalf("want an error naming admin.listen, got %v", err)
		}
	})
	t.Run("nats port in use", func(t *testing.T) {
		ln := listen(t)
		cfg := testConfig(t)
		cfg.NATS.Embedded.Listen = ln.Addr().String()
		_, err := start(t, cfg)
		if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Fatalf("want an error naming the address, got %v", err)
		}
	})
	t.Run("incompatible LOGS stream", func(t *testing.T) {
		s := natstest.RunServer(t, nil)
		_, js := natstest.Connect(t, s)
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
			Name: "LOGS", Subjects: []string{"logs.>"}, Storage: jetstream.MemoryStorage,
		}); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t)
		cfg.NATS.Embedded = nil
		cfg.NATS.URLs = []string{s.ClientURL()}
		_, err := start(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "stream LOGS: storage") {
			t.Fatalf("want an error naming the storage field, got %v", err)
		}
	})
}

// External NATS down at start: logcap keeps retrying, /readyz says why, nothing crashes, and
// the stop is still bounded. When NATS comes up, logcap provisions and becomes ready.
func TestExternalNATSDownAtStart(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().(*net.TCPAddr)
	cfg := testConfig(t)
	cfg.NATS.Embedded = nil
	cfg.NATS.URLs = []string{fmt.Sprintf("nats://127.0.0.1:%d", addr.Port)}
	admin := listen(t) // while ln is open: the kernel cannot hand out its port again
	cfg.Admin.Listen = admin.Addr().String()
	ln.Close() // a port nobody listens on, for now
	admin.Close()
	var client *natsd.Client
	a, err := start(t, cfg, fx.Populate(&client))
	if err != nil {
		t.Fatalf("start with NATS down must not fail: %v", err)
	}
	code, body := get(t, "http://"+cfg.Admin.Listen+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: nats: ") {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	if code, _ := get(t, "http://"+cfg.Admin.Listen+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}

	opts := natstest.Options(t.TempDir())
	opts.Port = addr.Port
	natstest.RunServer(t, opts)
	natstest.Eventually(t, 20*time.Second, func() error {
		if code, body := get(t, "http://"+cfg.Admin.Listen+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz = %d %q", code, body)
		}
		return nil
	})
	code, body = get(t, "http://"+cfg.Admin.Listen+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_open_fds") {
		t.Fatalf("/metrics = %d, missing collectors", code)
	}
	stopWithin(t, a, cfg.ShutdownTimeout.D())
}

// NATS gone for good: the stop is still bounded.
func TestStopBoundedWithNATSNeverUp(t *testing.T) {
	ln := listen(t)
	cfg := testConfig(t)
	cfg.NATS.Embedded = nil
	cfg.NATS.URLs = []string{"nats://" + ln.Addr().String()} // accepts, never speaks NATS
	cfg.ShutdownTimeout = config.Duration(3 * time.Second)
	a, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopWithin(t, a, cfg.ShutdownTimeout.D()+time.Second)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
