package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/app"
)

// reloadConfig writes a config whose body (sources, processors, sinks) is body, with the
// fixed keys of base, and loads it.
func reloadConfig(t *testing.T, dir, head, body string) *config.Config {
	t.Helper()
	f := filepath.Join(dir, "logcap.yaml")
	if err := os.WriteFile(f, []byte(head+body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// 20 reloads that swap a file source and a file sink back and forth, with the admin
// endpoint serving /metrics throughout: every reload applies (the sink named by the config
// gets the lines), the goroutine count comes back to where it was (goleak names any left),
// and no metric is registered twice.
func TestReload20Goroutines(t *testing.T) {
	dir, logs, out := t.TempDir(), t.TempDir(), t.TempDir()
	ln := listen(t)
	adminAddr := ln.Addr().String()
	ln.Close()
	head := fmt.Sprintf("node: test\ndata_dir: %s\nshutdown_timeout: 5s\nnats: {embedded: {listen: none}}\nadmin: {listen: %q}\n",
		filepath.Join(dir, "data"), adminAddr)
	body := func(i int) string {
		name := []string{"a", "b"}[i%2]
		return fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_line_bytes: %s}
sinks:
  - {name: out-%s, type: file, input: logs.>, path: %q, format: raw}
`, filepath.Join(logs, "*.log"), []string{"4KiB", "8KiB"}[i%2], name, filepath.Join(out, name+".log"))
	}
	if err := os.WriteFile(filepath.Join(logs, "app.log"), []byte("line 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	baseline := goleak.IgnoreCurrent()
	before := runtime.NumGoroutine()
	rt := app.NewRuntime(reloadConfig(t, dir, head, body(0)), zap.NewNop())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, adminAddr)
	var counts []int
	for i := 1; i <= 20; i++ {
		change, err := rt.Reload(reloadConfig(t, dir, head, body(i)))
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if len(change.Sinks.Added) != 1 || len(change.Sinks.Removed) != 1 || !slices.Equal(change.Sources.Changed, []string{"app"}) {
			t.Fatalf("reload %d: %s", i, change)
		}
		waitReady(t, adminAddr)
		if code, _ := get(t, "http://"+adminAddr+"/metrics"); code != http.StatusOK {
			t.Fatalf("reload %d: /metrics %d", i, code)
		}
		counts = append(counts, runtime.NumGoroutine())
	}
	// The sink of the last config (out-a, i=20) wrote the line: its durable consumer is new
	// the first time only, so it has every line once.
	natstest.Eventually(t, 20*time.Second, func() error {
		b, _ := os.ReadFile(filepath.Join(out, "a.log"))
		if string(b) != "line 0\n" {
			return fmt.Errorf("out-a holds %q", b)
		}
		return nil
	})
	if err := rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(baseline); err != nil {
		t.Errorf("goroutines left after 20 reloads (before: %d, now: %d): %v", before, runtime.NumGoroutine(), err)
	}
	t.Logf("goroutines before start %d; after each reload %v; after stop %d", before, counts, runtime.NumGoroutine())
	if lo, hi := slices.Min(counts[5:]), slices.Max(counts[5:]); hi-lo > 10 {
		t.Errorf("goroutines after reloads 6..20 range from %d to %d: %v", lo, hi, counts)
	}
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	natstest.Eventually(t, 30*time.Second, func() error {
		if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		return nil
	})
}

// A change Reload cannot apply is refused, naming the keys; nothing stops.
func TestReloadNeedsRestart(t *testing.T) {
	dir := t.TempDir()
	head := fmt.Sprintf("node: test\ndata_dir: %s\nshutdown_timeout: 5s\nadmin: {listen: none}\n", filepath.Join(dir, "data"))
	rt := app.NewRuntime(reloadConfig(t, dir, head+"nats: {embedded: {listen: none}}\n", ""), zap.NewNop())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rt.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	change, err := rt.Reload(reloadConfig(t, dir, head+"nats: {embedded: {listen: none, sync_interval: always}}\nstreams: {logs: {max_bytes: 1GiB}}\n", ""))
	if !errors.Is(err, app.ErrNeedsRestart) || !strings.Contains(err.Error(), "nats.embedded.sync_interval, streams.logs.max_bytes changed") {
		t.Fatalf("want a refusal naming the keys, got %v (%v)", err, change.Restart)
	}
}

// While a reload has the components stopped, /readyz says so (503, "reloading"): asked from
// an OnStop hook of the components being replaced. After it, /readyz is 200 again.
func TestReloadReadyz(t *testing.T) {
	dir, logs := t.TempDir(), t.TempDir()
	ln := listen(t)
	adminAddr := ln.Addr().String()
	ln.Close()
	head := fmt.Sprintf("node: test\ndata_dir: %s\nshutdown_timeout: 5s\nnats: {embedded: {listen: none}}\nadmin: {listen: %q}\n",
		filepath.Join(dir, "data"), adminAddr)
	src := func(lineBytes string) string {
		return fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], max_line_bytes: %s}\n", filepath.Join(logs, "*.log"), lineBytes)
	}
	var reloading bool
	var during []string
	probe := fx.Invoke(func(lc fx.Lifecycle) {
		lc.Append(fx.Hook{OnStop: func(context.Context) error {
			if reloading {
				code, body := get(t, "http://"+adminAddr+"/readyz")
				during = append(during, fmt.Sprintf("%d %s", code, body))
			}
			return nil
		}})
	})
	rt := app.NewRuntime(reloadConfig(t, dir, head, src("4KiB")), zap.NewNop(), probe)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, adminAddr)
	reloading = true
	change, err := rt.Reload(reloadConfig(t, dir, head, src("8KiB")))
	reloading = false
	if err != nil || change.String() != "sources: changed [app]" {
		t.Fatalf("reload: %v, %s", err, change)
	}
	if len(during) != 1 || !strings.HasPrefix(during[0], "503 not ready: reloading the configuration") {
		t.Errorf("/readyz during the reload: %q", during)
	}
	rt.Note("last reload: " + change.String())
	if code, body := get(t, "http://"+adminAddr+"/readyz"); code != http.StatusOK || body != "ready\nlast reload: sources: changed [app]\n" {
		t.Errorf("/readyz after the reload: %d %q", code, body)
	}
	if err := rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReloadDiff(t *testing.T) {
	dir := t.TempDir()
	load := func(body string) *config.Config {
		t.Helper()
		f := filepath.Join(dir, fmt.Sprintf("c%d.yaml", len(body)))
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := "data_dir: /tmp/x\nsinks:\n  - {name: a, type: stdout, input: logs.>}\n  - {name: b, type: http, input: logs.>, url: 'http://u:pw1@h/'}\n"
	for _, tc := range []struct {
		name, body, want string
		restart          []string
	}{
		{"same", base, "no component changed", nil},
		{"secret in a sink's options changed", strings.Replace(base, "pw1", "pw2", 1), "sinks: changed [b]", nil},
		{"sink added and removed", "data_dir: /tmp/x\nsinks:\n  - {name: c, type: stdout, input: logs.>}\n  - {name: b, type: http, input: logs.>, url: 'http://u:pw1@h/'}\n",
			"sinks: added [c], removed [a]", nil},
		{"batch changed", strings.Replace(base, "{name: a, type: stdout, input: logs.>}", "{name: a, type: stdout, input: logs.>, batch: {max_entries: 7}}", 1), "sinks: changed [a]", nil},
		{"processor added, keys that need a restart", "node: other\nadmin: {listen: '127.0.0.1:1'}\n" + base +
			"processors:\n  - {name: p, input: logs.>, steps: [{json: {}}]}\n", "processors: added [p]", []string{"node", "admin.listen"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := app.Diff(load(base), load(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.String() != tc.want || !slices.Equal(c.Restart, tc.restart) {
				t.Errorf("got %q restart %v, want %q restart %v", c, c.Restart, tc.want, tc.restart)
			}
		})
	}
}

// New components that fail to start: Reload says so, the previous ones run again (their
// sink writes what comes next) and the running config stays; a second failure, of the
// previous ones too, is a FatalError.
func TestReloadStartFailsRollsBack(t *testing.T) {
	dir, logs, out := t.TempDir(), t.TempDir(), t.TempDir()
	head := fmt.Sprintf("node: test\ndata_dir: %s\nshutdown_timeout: 5s\nnats: {embedded: {listen: none}}\nadmin: {listen: none}\n", filepath.Join(dir, "data"))
	body := func(sink string) string {
		return fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning}\nsinks:\n  - {name: %s, type: file, input: logs.>, path: %q, format: raw}\n",
			filepath.Join(logs, "*.log"), sink, filepath.Join(out, sink+".log"))
	}
	failStarts := 0
	inject := fx.Invoke(func(lc fx.Lifecycle) {
		lc.Append(fx.Hook{OnStart: func(context.Context) error {
			if failStarts > 0 {
				failStarts--
				return errors.New("injected start failure")
			}
			return nil
		}})
	})
	rt := app.NewRuntime(reloadConfig(t, dir, head, body("a")), zap.NewNop(), inject)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	failStarts = 1
	_, err := rt.Reload(reloadConfig(t, dir, head, body("b")))
	var fatal *app.FatalError
	if err == nil || errors.As(err, &fatal) || !strings.Contains(err.Error(), "injected start failure") {
		t.Fatalf("want a non-fatal reload error, got %v", err)
	}
	if err := os.WriteFile(filepath.Join(logs, "app.log"), []byte("line 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, func() error {
		if b, _ := os.ReadFile(filepath.Join(out, "a.log")); string(b) != "line 0\n" {
			return fmt.Errorf("the previous sink a holds %q", b)
		}
		return nil
	})
	// The running config is still a's: the same failure again is now fatal.
	failStarts = 2
	if _, err := rt.Reload(reloadConfig(t, dir, head, body("c"))); !errors.As(err, &fatal) {
		t.Fatalf("want a FatalError, got %v", err)
	}
	if err := rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
