package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/memlimit"
	"github.com/logcap/logcap/modules/app"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

// memory_limit end to end, in one process: while a ballast keeps the live heap over the
// limit, a real file source reads nothing into LOGS and the gate says it holds a publish
// back; once the ballast is gone the lines arrive, all of them.
func TestMemoryLimitHoldsTheSourcesBack(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // the app sets the process's soft limit
	dir := t.TempDir()
	const lines = 1000
	var data []byte
	for i := range lines {
		data = fmt.Appendf(data, "line %d\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.log"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	ballast := make([]byte, 256<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	limit := config.Size(s[0].Value.Uint64() - 128<<20)

	cfg := testConfig(t)
	cfg.MemoryLimit = &limit
	opts, err := config.OptionsFrom(map[string]any{"paths": []string{filepath.Join(dir, "*.log")}, "start_at": "beginning"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sources = []config.Component{{Name: "app", Type: "file", Options: opts}}
	var (
		c    *natsd.Client
		gate *memlimit.MemoryGate
	)
	a, err := start(t, cfg, fx.Populate(&c, &gate))
	if err != nil {
		t.Fatal(err)
	}
	defer stopWithin(t, a, cfg.ShutdownTimeout.D())
	// stored is the number of lines in LOGS.
	stored := func() int {
		ctx := context.Background()
		st, err := c.JS.Stream(ctx, c.LogsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			l, _ := strconv.Atoi(m.Header.Get(streams.HdrLines))
			n += l
		}
		return n
	}
	natstest.Eventually(t, 20*time.Second, func() error {
		if gate.Waiting() == 0 {
			return fmt.Errorf("no publish held back")
		}
		return nil
	})
	if n := stored(); n != 0 {
		t.Fatalf("%d lines in LOGS while over memory_limit", n)
	}

	runtime.KeepAlive(ballast)
	ballast = nil
	natstest.Eventually(t, 20*time.Second, func() error {
		if got := stored(); got != lines {
			return fmt.Errorf("%d of %d lines in LOGS", got, lines)
		}
		return nil
	})
	t.Logf("held back for %v", gate.Held().Round(time.Millisecond))
}

// The components (sources, processors, sinks), rebuilt by each reload, get the core's
// memory gate: the processors wait on it as the sources do. Each components app must be
// able to take *memlimit.MemoryGate, and it must be the core's.
func TestComponentsGetTheMemoryGate(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "logcap.yaml")
	yaml := fmt.Sprintf("node: test\ndata_dir: %s\nshutdown_timeout: 5s\nadmin: {listen: none}\nnats: {embedded: {listen: none}}\n"+
		"processors:\n  - {name: p1, input: logs.>, steps: [{json: {}}]}\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryLimit == nil || *cfg.MemoryLimit == 0 {
		t.Fatalf("memory_limit default %v: want one", cfg.MemoryLimit)
	}
	var gates []*memlimit.MemoryGate
	rt := app.NewRuntime(cfg, zap.NewNop(), fx.Invoke(func(g *memlimit.MemoryGate) { gates = append(gates, g) }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(yaml, "p1", "p2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg2, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if len(gates) != 2 || gates[0] == nil || gates[0] != gates[1] {
		t.Fatalf("components apps got gates %v: want the same one twice (start, reload)", gates)
	}
}
