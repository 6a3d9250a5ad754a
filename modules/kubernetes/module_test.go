package kubernetes

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/filemon"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/sources"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestModule runs a kubernetes source beside a file source (they share the file monitor's
// metrics) on CRI files written by hand: entries arrive joined, with the runtime's times,
// under the pod's subject, and are counted under the source's name.
func TestModule(t *testing.T) {
	nc, js := logsServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pods := t.TempDir()
	dir := filepath.Join(pods, "default_web-1_u-1", "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "0.log")
	write(t, log, "2026-12-06T07:00:00.06599113Z stdout P hel\n2026-12-06T07:00:00.1Z stderr F oops\n")
	k8sOpts, _ := config.OptionsFrom(map[string]any{"name": "pods", "type": "kubernetes", "pods_dir": pods, "start_at": "beginning", "poll_interval": "100ms"})
	fileOpts, _ := config.OptionsFrom(map[string]any{"name": "files", "type": "file", "paths": []string{t.TempDir() + "/*.log"}})
	cfg := &config.Config{Node: "n1", Sources: []config.Component{{Name: "pods", Type: Type, Options: k8sOpts}, {Name: "files", Type: "file", Options: fileOpts}}}
	client := natsd.NewClient(nc, js)
	client.MarkReady()
	reg := prometheus.NewRegistry()
	app := fx.New(
		fx.Supply(cfg, client, zap.NewNop(), fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		filemon.Module, Module, fx.NopLogger,
	)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, log, "2026-12-06T07:00:00.2Z stdout F lo\n")
	subj := streams.SourceSubject(streams.KindKubernetes, "n1", "default/web-1/nginx/0/u-1")
	var got []string
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		got = entries(t, js, subj)
		if len(got) < 2 {
			return os.ErrNotExist
		}
		return nil
	})
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := "2026-12-06T07:00:00.06599113Z stdout hello default|2026-12-06T07:00:00.1Z stderr oops default"
	if strings.Join(got, "|") != want {
		t.Fatalf("entries %q, want %q", got, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "logcap_filemon_lines_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "pods" && m.GetCounter().GetValue() != 2 {
				t.Errorf("logcap_filemon_lines_total{source=pods} = %v, want 2", m.GetCounter().GetValue())
			}
		}
	}
}

// logsServer is an embedded nats-server with the LOGS stream.
func logsServer(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := natstest.RunServer(t, nil)
	nc, js := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30, MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}); err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// TestModuleGzip: a rotated, gzipped log first seen as such (logcap started after the
// kubelet compressed it) is read decompressed under a subject of its own, with the pod's
// identity.
func TestModuleGzip(t *testing.T) {
	nc, js := logsServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pods := t.TempDir()
	dir := filepath.Join(pods, "prod_api-7_u-9", "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("2026-12-06T07:00:00Z stdout P a\n2026-12-06T07:00:01Z stdout F b\n"))
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "0.log.20261206-070000.gz"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, _ := config.OptionsFrom(map[string]any{"name": "pods", "type": "kubernetes", "pods_dir": pods, "start_at": "beginning", "poll_interval": "100ms"})
	cfg := &config.Config{Node: "n1", Sources: []config.Component{{Name: "pods", Type: Type, Options: opts}}}
	client := natsd.NewClient(nc, js)
	client.MarkReady()
	app := fx.New(fx.Supply(cfg, client, zap.NewNop(), fx.Annotate(prometheus.NewRegistry(), fx.As(new(prometheus.Registerer)))), Module, fx.NopLogger)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	subj := streams.SourceSubject(streams.KindKubernetes, "n1", "prod/api-7/app/0/u-9/0.log.20261206-070000.gz")
	var got []string
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if got = entries(t, js, subj); len(got) < 1 {
			return os.ErrNotExist
		}
		return nil
	})
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if want := "2026-12-06T07:00:00Z stdout ab prod"; len(got) != 1 || got[0] != want {
		t.Fatalf("entries %q, want [%q]", got, want)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// entries reads the entries on subj as "<time> <stream> <message> <namespace>".
func entries(t *testing.T, js jetstream.JetStream, subj string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "LOGS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return out
		}
		es, err := streams.Entries(m.Subject(), m.Headers(), m.Data())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			ns := e.Fields["kubernetes"].(map[string]any)["namespace"]
			out = append(out, e.Time.UTC().Format(time.RFC3339Nano)+" "+e.Stream+" "+e.Message+" "+ns.(string))
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, tt := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"pods_dir": "/var/log/pods", "bogus": 1}, "bogus"},
		{map[string]any{"namespaces": []string{"a_b"}}, "namespaces"},
		{map[string]any{"exclude": []string{"kube-system/*"}}, "<namespace>/<pod>/<container>"},
		{map[string]any{"start_at": "middle"}, "start_at"},
		{map[string]any{"containers": []string{"[x"}}, "invalid pattern"},
	} {
		opts, _ := config.OptionsFrom(tt.opts)
		_, err := sources.DecodeIn(&config.Config{DataDir: "/var/lib/logcap"}, config.Component{Name: "pods", Type: Type, Options: opts})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one naming %q", tt.opts, err, tt.want)
		}
	}
}
