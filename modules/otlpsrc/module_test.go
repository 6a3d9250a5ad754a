package otlpsrc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/otlp"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newApp(t *testing.T, listen string) (*fx.App, *natsd.Client) {
	return newAppWith(t, map[string]any{"listen": listen})
}

func newAppWith(t *testing.T, src map[string]any) (*fx.App, *natsd.Client) {
	t.Helper()
	nc, js := natstest.Connect(t, natstest.RunServer(t, nil))
	if _, err := streams.Provision(t.Context(), js, streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30,
		MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}); err != nil {
		t.Fatal(err)
	}
	client := natsd.NewClient(nc, js)
	client.MarkReady()
	opts, err := config.OptionsFrom(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Node: "node1", Sources: []config.Component{{Name: "otel", Type: Type, Options: opts}, {Name: "other", Type: "file"}}}
	app := fx.New(
		fx.Supply(cfg, client, zaptest.NewLogger(t), fx.Annotate(prometheus.NewRegistry(), fx.As(new(prometheus.Registerer)))),
		Module,
		fx.NopLogger,
	)
	return app, client
}

// The module serves the source on its address until stop, and the stop leaves no
// goroutine behind (TestMain); what was answered 200 is in LOGS.
func TestModuleServes(t *testing.T) {
	addr := freeAddr(t)
	app, client := newApp(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	body := otlp.AppendProto(nil, &otlp.Logs{Resources: []otlp.ResourceLogs{{
		Attrs:  []otlp.KV{{Key: "service.name", Value: "api"}},
		Scopes: []otlp.ScopeLogs{{Records: []otlp.Record{{Body: "one"}, {Body: "two"}}}},
	}}})
	hc := &http.Client{Transport: &http.Transport{}}
	resp, err := hc.Post("http://"+addr+"/v1/logs", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	m, err := streams.LastMsg(ctx, client.JS, "LOGS", "logs.otlp.node1.api")
	if err != nil || m == nil {
		t.Fatalf("stored: %v", err)
	}
	ents, err := streams.Entries(m.Subject, m.Header, m.Data)
	if err != nil || len(ents) != 2 || ents[1].Message != "two" {
		t.Fatalf("entries %+v, %v", ents, err)
	}
	began := time.Now()
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > shutdownGrace {
		t.Fatalf("stop took %v", d)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still listening after stop")
	}
}

// An address in use fails the start, naming the source and the address.
func TestModuleAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	app, _ := newApp(t, l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = app.Start(ctx)
	if err == nil {
		_ = app.Stop(ctx)
		t.Fatal("started on an address in use")
	}
	if want := fmt.Sprintf("source otel: listen %s", l.Addr()); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to say %q", err, want)
	}
}
