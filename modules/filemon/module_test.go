package filemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/sources"
)

func TestModule(t *testing.T) {
	h := newHarness(t)
	p := h.path("app.log")
	appendFile(t, p, "old\n")
	opts, err := config.OptionsFrom(map[string]any{"name": "app", "type": "file", "paths": []string{h.dir + "/*.log"}, "start_at": "beginning", "poll_interval": "100ms"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Node: "n1", Sources: []config.Component{{Name: "app", Type: "file", Options: opts}, {Name: "d", Type: "docker"}}}
	client := natsd.NewClient(h.nc, h.js)
	client.MarkReady()
	reg := prometheus.NewRegistry()
	app := fx.New(
		fx.Supply(cfg, client, zap.NewNop(), fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		Module,
		fx.NopLogger,
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "new\n")
	exactlyOnce(t, h.waitLines(p, 2, 10*time.Second), "old\nnew\n")
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	lines := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "logcap_filemon_lines_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "app" {
					lines = m.GetCounter().GetValue()
				}
			}
		}
	}
	if lines != 2 {
		t.Fatalf("logcap_filemon_lines_total{source=app} = %v, want 2", lines)
	}
}

func TestModuleBadOptions(t *testing.T) {
	opts, _ := config.OptionsFrom(map[string]any{"name": "app", "type": "file", "paths": []string{"/x"}, "start_at": "middle", "bogus": 1})
	err := decode(opts)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key not reported: %v", err)
	}
	opts, _ = config.OptionsFrom(map[string]any{"paths": []string{"/x"}, "start_at": "middle"})
	if err := decode(opts); err == nil || !strings.Contains(err.Error(), "start_at") {
		t.Fatalf("bad start_at not reported: %v", err)
	}
}

// decode reads a file source's options as check and run do, with data_dir /var/lib/logcap.
func decode(opts config.Options) error {
	_, err := sources.DecodeIn(&config.Config{DataDir: "/var/lib/logcap"}, config.Component{Name: "app", Type: Type, Options: opts})
	return err
}
