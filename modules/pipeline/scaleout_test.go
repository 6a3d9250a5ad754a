package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/app"
	"github.com/logcap/logcap/streams"
)

// counter reads one labelled counter from a registry.
func counter(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// Two whole logcap apps (fx, natsd against one external server, the pipeline module) share
// one processor's durable consumer: both do part of the work, the union is complete, and the
// derived stream holds every chunk exactly once. Both stop cleanly (goleak at the end).
func TestTwoAppsShareProcessor(t *testing.T) {
	s := natstest.RunServer(t, nil)
	e := connectEnv(t, s)
	const chunks, perChunk = 200, 250
	regs := make([]*prometheus.Registry, 2)
	apps := make([]*fx.App, 2)
	for i := range apps {
		cfg := parseConfig(t, fmt.Sprintf(`
data_dir: %s
nats: { urls: [%q] }
admin: { listen: none }
`+chainYAML, t.TempDir(), s.ClientURL()))
		cfg.Node = fmt.Sprintf("node%d", i)
		apps[i] = app.New(cfg, zap.NewNop(), fx.Supply(&fastTuning), fx.Populate(&regs[i]))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := apps[i].Start(ctx); err != nil {
			cancel()
			t.Fatal(err)
		}
		cancel()
		a := apps[i]
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
			defer cancel()
			if err := a.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
	// Wait until both apps' consumers are bound, so the work can split from the first chunk.
	natstest.Eventually(t, 10*time.Second, func() error {
		c, err := e.js.Consumer(context.Background(), "LOGS", "parsed")
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumWaiting < 2 {
			return fmt.Errorf("%d pull requests waiting", info.NumWaiting)
		}
		return nil
	})
	publish(t, e.js, "/var/log/split.log", jsonLines(chunks*perChunk), perChunk)
	waitMsgs(t, e.js, "PARSED", chunks, 60*time.Second)
	ids := map[string]bool{}
	for _, m := range readStream(t, e.js, "PARSED") {
		if ids[m.ID] {
			t.Fatalf("duplicate derived chunk %s", m.ID)
		}
		ids[m.ID] = true
	}
	for seq := 1; seq <= chunks; seq++ {
		if !ids[fmt.Sprintf("LOGS:%d", seq)] {
			t.Fatalf("chunk LOGS:%d missing", seq)
		}
	}
	var per [2]float64
	for i, reg := range regs {
		per[i] = counter(t, reg, "logcap_pipeline_processor_entries_in_total", "parsed")
	}
	t.Logf("entries processed per app: %v", per)
	if per[0] == 0 || per[1] == 0 || per[0]+per[1] < chunks*perChunk {
		t.Fatalf("work not split or incomplete: %v", per)
	}
	if sub := streams.Subject("parsed", "file", "h1", "/var/log/split.log"); len(ids) != chunks {
		t.Fatalf("%d chunks on %s", len(ids), sub)
	}
}
