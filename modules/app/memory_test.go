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
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/memlimit"
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
