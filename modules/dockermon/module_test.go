package dockermon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func source(t *testing.T, name string, opts map[string]any) config.Component {
	t.Helper()
	o, err := config.OptionsFrom(opts)
	if err != nil {
		t.Fatal(err)
	}
	return config.Component{Name: name, Type: Type, Options: o}
}

func TestModule(t *testing.T) {
	cli := dockertest.Engine(t)
	s := natstest.RunServer(t, nil)
	nc, js := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30,
		MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}); err != nil {
		t.Fatal(err)
	}
	nclient := natsd.NewClient(nc, js)
	nclient.MarkReady()
	prefix := fmt.Sprintf("fx-%06d-", rand.IntN(1e6))
	cfg := &config.Config{Node: "node1", Sources: []config.Component{
		source(t, "docker", map[string]any{"include_names": []string{prefix + "*"}, "reconcile_interval": "5s", "labels": []string{"team"}}),
		{Name: "other", Type: "file"},
	}}
	reg := prometheus.NewRegistry()
	app := fx.New(
		fx.Supply(cfg, nclient, zaptest.NewLogger(t), fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		Module,
		fx.NopLogger,
	)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	name := prefix + "app"
	dockertest.Run(t, cli, dockertest.Spec{Name: name, Labels: map[string]string{"team": "core"}, Args: []string{"-n", "100", "-stderr-every", "10"}})
	subject := streams.SourceSubject(streams.KindDocker, "node1", name)
	natstest.Eventually(t, 30*time.Second, func() error {
		if n := len(dockertest.ReadSubject(t, js, "LOGS", subject)); n != 100 {
			return fmt.Errorf("%d lines", n)
		}
		return nil
	})
	last, err := streams.LastMsg(ctx, js, "LOGS", subject)
	if err != nil || last == nil {
		t.Fatalf("last message: %v", err)
	}
	if got := last.Header.Get("Logcap-Label-team"); got != "core" {
		t.Errorf("label header %q, want core (headers %v)", got, last.Header)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "logcap_dockermon_events_total") {
		t.Errorf("metrics %v: no events counter", names)
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	start := time.Now()
	if err := app.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(start))
}

func TestModuleRejectsUnknownKeys(t *testing.T) {
	cfg := &config.Config{Node: "n", Sources: []config.Component{source(t, "docker", map[string]any{"hots": "unix:///x"})}}
	app := fx.New(
		fx.Supply(cfg, natsd.NewClient(nil, nil), zaptest.NewLogger(t), fx.Annotate(prometheus.NewRegistry(), fx.As(new(prometheus.Registerer)))),
		Module, fx.NopLogger,
	)
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), "hots") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
}

// TestModuleStartFailureStopsGroup: a source whose client cannot be built (here the second
// one) fails OnStart after the first source's goroutine has started. fx runs no OnStop for
// a hook whose OnStart failed, so the module itself must stop what it started and close
// the clients after the goroutines are gone.
func TestModuleStartFailureStopsGroup(t *testing.T) {
	cases := []struct {
		name string
		bad  map[string]any
	}{
		{"bad host", map[string]any{"host": "not a docker host"}},
		{"missing TLS files", map[string]any{"host": "tcp://127.0.0.1:1", "tls": map[string]any{"ca": "/nonexistent/ca.pem"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			// Not ready: the first source's goroutine waits for NATS, as during a real start.
			nclient := natsd.NewClient(nil, nil)
			cfg := &config.Config{Node: "n", Sources: []config.Component{
				source(t, "good", map[string]any{"host": "unix:///nonexistent/docker.sock"}),
				source(t, "bad", tc.bad),
			}}
			app := fx.New(
				fx.Supply(cfg, nclient, zaptest.NewLogger(t), fx.Annotate(prometheus.NewRegistry(), fx.As(new(prometheus.Registerer)))),
				Module, fx.NopLogger,
			)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Start(ctx); err == nil || !strings.Contains(err.Error(), "source bad") {
				t.Fatalf("start: want the bad source's error, got %v", err)
			}
			if err := goleak.Find(before); err != nil {
				t.Fatalf("the started source's goroutine outlived the failed start: %v", err)
			}
		})
	}
}
